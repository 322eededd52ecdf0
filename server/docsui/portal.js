// The docs portal: Swagger UI rendering the server's own description, and
// an auth bar that holds a JWT and an API key for "Try it out". Everything
// is served by authapi itself; nothing is fetched from elsewhere.
"use strict";

(function () {
  // The security schemes of openapi.yaml.
  const BEARER = "bearerAuth";
  const API_KEY = "apiKeyAuth";

  const el = (id) => document.getElementById(id);

  function showError(message) {
    const p = el("portal-error");
    p.textContent = message;
    p.hidden = false;
  }

  if (typeof window.SwaggerUIBundle !== "function") {
    showError("Swagger UI did not load; the description is at /openapi.yaml.");
    return;
  }

  let ui;

  // The badges show what Swagger UI will send, whichever way it was set:
  // this bar, a captured response, or Swagger UI's own Authorize dialog.
  function render() {
    const authorized = ui.authSelectors.authorized();
    const jwt = authorized.has(BEARER);
    const key = authorized.has(API_KEY);
    el("status-jwt").hidden = !jwt;
    el("status-key").hidden = !key;
    el("status-none").hidden = jwt || key;
  }

  function setCredential(scheme, value) {
    value = value.trim();
    if (value === "") {
      ui.authActions.logout([scheme]);
    } else {
      ui.preauthorizeApiKey(scheme, value);
    }
  }

  function held(scheme) {
    return ui.authSelectors.authorized().getIn([scheme, "value"]) || "";
  }

  const pathOf = (url) => new URL(url, window.location.href).pathname;

  // The JWT each request on its way carried, by path: Swagger UI hands the
  // response interceptor nothing of the request. The operations read back
  // here have a path each to themselves.
  const sentJWT = new Map();

  function remember(req) {
    const auth = (req.headers && (req.headers.Authorization || req.headers.authorization)) || "";
    sentJWT.set(pathOf(req.url), auth.startsWith("Bearer ") ? auth.slice(7) : "");
    return req;
  }

  // The user a JWT is for (sub), read without verifying it: it only tells
  // whose the captured key is, for forgetting it with the account.
  function subjectOf(jwt) {
    try {
      const sub = JSON.parse(atob(jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub;
      return typeof sub === "string" ? sub : "";
    } catch (err) {
      return "";
    }
  }

  // The last key captured, and the user whose JWT created it.
  let capturedKey = { key: "", owner: "" };

  // Operations whose success ends the JWT they were sent with: a sign-out
  // (this token, or all the user's), a password change (every token
  // issued before it), an account deletion (the user, keys too). Which
  // credential each operation takes comes from its security in the spec,
  // which Swagger UI applies; what a success ends is in the operations'
  // descriptions only, hence this list.
  const ENDS_JWT = new Set(["/v1/auth/logout", "/v1/auth/password", "/v1/auth/account"]);

  // Keeps the bar in step with responses (while "Capture from responses"
  // is on, as for setting them): sets the access_token of a login and the
  // raw_key of a new key, created or the replacement of a rotated one, and
  // forgets the JWT a sign-out, password change or account deletion ended,
  // so that the badges do not offer a credential the page itself ended.
  // Only the JWT that request carried is forgotten: one set meanwhile is
  // new. An account deletion forgets the key too when it was captured from
  // that user's key creation; a key set by hand is left, its owner unknown.
  function capture(res) {
    const path = pathOf(res.url);
    const sent = sentJWT.get(path) || "";
    sentJWT.delete(path); // no token kept past its request
    if (!el("capture").checked || !res.ok) {
      return res;
    }
    if (ENDS_JWT.has(path)) {
      const ended = [];
      if (sent !== "" && held(BEARER) === sent) {
        ended.push(BEARER);
      }
      const key = held(API_KEY);
      if (path === "/v1/auth/account" && key !== "" && key === capturedKey.key && capturedKey.owner !== "" && capturedKey.owner === subjectOf(sent)) {
        ended.push(API_KEY);
      }
      if (ended.length > 0) {
        ui.authActions.logout(ended);
      }
      return res;
    }
    if (!res.body || typeof res.body !== "object") {
      return res;
    }
    const makesKey = path === "/v1/auth/api-keys" || /^\/v1\/auth\/api-keys\/[^/]+\/rotate$/.test(path);
    if (path === "/v1/auth/login" && typeof res.body.access_token === "string") {
      setCredential(BEARER, res.body.access_token);
    } else if (makesKey && typeof res.body.raw_key === "string") {
      setCredential(API_KEY, res.body.raw_key);
      capturedKey = { key: res.body.raw_key, owner: subjectOf(sent) };
    }
    return res;
  }

  ui = window.SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    tryItOutEnabled: true,
    displayRequestDuration: true,
    defaultModelsExpandDepth: 0,
    persistAuthorization: false, // credentials never reach localStorage
    validatorUrl: null, // the public validator badge would call out
    requestInterceptor: remember,
    responseInterceptor: capture,
    onComplete: render,
  });
  window.ui = ui; // for the browser test and the curious
  ui.getStore().subscribe(render);

  el("jwt-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    setCredential(BEARER, el("jwt-input").value);
    el("jwt-input").value = "";
  });
  el("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    setCredential(API_KEY, el("key-input").value);
    el("key-input").value = "";
  });
  el("clear").addEventListener("click", () => {
    ui.authActions.logout([BEARER, API_KEY]);
    capturedKey = { key: "", owner: "" };
  });
})();
