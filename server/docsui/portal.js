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

  // Captures the access_token of a login and the raw_key of a new key,
  // created or the replacement of a rotated one.
  function capture(res) {
    if (!el("capture").checked || !res.ok || !res.body || typeof res.body !== "object") {
      return res;
    }
    const path = new URL(res.url, window.location.href).pathname;
    const makesKey = path === "/v1/auth/api-keys" || /^\/v1\/auth\/api-keys\/[^/]+\/rotate$/.test(path);
    if (path === "/v1/auth/login" && typeof res.body.access_token === "string") {
      setCredential(BEARER, res.body.access_token);
    } else if (makesKey && typeof res.body.raw_key === "string") {
      setCredential(API_KEY, res.body.raw_key);
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
  });
})();
