// @ts-check
// The reference flow through the SDK against a live authapi, built from
// this checkout and started on a free port (test/authapi.mjs at the
// repository's root). Type-checked against the built SDK by
// tsconfig.test.json.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { startAuthapi } from "../../../test/authapi.mjs";
import { Authapi, Problem } from "../dist/index.js";

/** @type {{ url: string, stop: () => Promise<void> }} */
let server;

// The live server's clock cannot be moved: a short re-authentication age
// makes a login old enough for deleteAccount's refusal within the test.
const REAUTH_MAX_AGE_MS = 3000;

before(async () => {
  server = await startAuthapi({ env: { AUTH_REAUTH_MAX_AGE: `${REAUTH_MAX_AGE_MS}ms` } });
});

after(async () => {
  await server?.stop();
});

/**
 * Runs fn and returns the Problem it throws.
 * @param {() => Promise<unknown>} fn
 * @returns {Promise<Problem>}
 */
async function problem(fn) {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof Problem, `threw ${err}, want a Problem`);
    return err;
  }
  assert.fail("no Problem thrown");
}

/**
 * Registers name and returns a client holding its JWT, and the JWT.
 * @param {string} name
 */
async function session(name) {
  const api = new Authapi({ baseUrl: server.url });
  await api.registerUser({ username: name, email: `${name}@example.com`, password: "secureP@ss123", full_name: "N" });
  const token = (await api.login(name, "secureP@ss123")).access_token;
  api.setToken(token);
  return { api, token };
}

/**
 * Registers name and returns a client holding its JWT.
 * @param {string} name
 */
async function loggedIn(name) {
  return (await session(name)).api;
}

/**
 * GET /v1/me with key, through a copy of api.
 * @param {string} key
 */
function me(key) {
  return new Authapi({ baseUrl: server.url, apiKey: key }).getCurrentUser();
}

/**
 * The caller's key id as listed.
 * @param {Authapi} api
 * @param {string} id
 */
async function listed(api, id) {
  const key = (await api.listApiKeys()).find((k) => k.id === id);
  assert.ok(key, `key ${id} is not listed`);
  return key;
}

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test("the reference flow", async () => {
  const api = new Authapi({ baseUrl: server.url });

  const user = await api.registerUser({
    username: "hershel",
    email: "hershel@example.com",
    password: "secureP@ss123",
    full_name: "Hershel Moshkovitz",
  });
  assert.equal(user.username, "hershel");
  assert.match(user.id, /^[0-9a-f-]{36}$/);

  const tok = await api.login("Hershel", "secureP@ss123");
  assert.equal(tok.token_type, "bearer");
  assert.equal(tok.expires_in, 3600);
  api.setToken(tok.access_token);

  const key = await api.createApiKey("my-app-key");
  assert.match(key.raw_key, /^rst_[A-Za-z0-9]{38}$/);
  assert.equal(key.prefix, key.raw_key.slice(0, 8));
  assert.equal(key.is_active, true);

  const keys = await api.listApiKeys();
  assert.deepEqual(
    keys.map((k) => [k.id, k.name, k.is_active]),
    [[key.id, "my-app-key", true]],
  );
  assert.equal(JSON.stringify(keys).includes(key.raw_key), false, "a listing shows the raw key");

  api.setApiKey(key.raw_key);
  assert.deepEqual(await api.getCurrentUser(), user);

  await api.revokeApiKey(key.id);
  await api.revokeApiKey(key.id); // idempotent
  const revoked = await problem(() => api.getCurrentUser());
  assert.equal(revoked.status, 401);
  assert.equal(revoked.type, "urn:authapi:problem:invalid-api-key");
  assert.equal((await api.listApiKeys())[0]?.is_active, false);
});

test("refusals are Problems", async () => {
  const api = new Authapi({ baseUrl: server.url + "/" });

  const invalid = await problem(() =>
    api.registerUser({ username: "x", email: "not an address", password: "short", full_name: " " }),
  );
  assert.equal(invalid.status, 422);
  assert.equal(invalid.type, "urn:authapi:problem:validation-failed");
  assert.deepEqual(
    invalid.errors.map((e) => e.field),
    ["email", "full_name", "password", "username"],
  );
  assert.equal(invalid.field("username"), "must be at least 3 characters");
  assert.ok(invalid.requestId, "a request ID");

  await api.registerUser({ username: "taken", email: "taken@example.com", password: "secureP@ss123", full_name: "T" });
  const taken = await problem(() =>
    api.registerUser({ username: "TAKEN", email: "other@example.com", password: "secureP@ss123", full_name: "T" }),
  );
  assert.equal(taken.status, 409);
  assert.deepEqual(taken.errors.map((e) => e.field), ["username"]);

  const wrong = await problem(() => api.login("taken", "wrong password"));
  assert.equal(wrong.status, 401);
  assert.equal(wrong.type, "urn:authapi:problem:invalid-credentials");

  // Each credential goes only where it is accepted: an API key alone
  // never authenticates key management.
  const keyOnly = new Authapi({ baseUrl: server.url, apiKey: "rst_" + "a".repeat(38) });
  const noJWT = await problem(() => keyOnly.createApiKey("k"));
  assert.equal(noJWT.status, 401);
  assert.equal(noJWT.type, "urn:authapi:problem:unauthenticated");

  const tok = await api.login("taken", "secureP@ss123");
  api.setToken(tok.access_token);
  const unknown = await problem(() => api.revokeApiKey("00000000-0000-4000-8000-000000000000"));
  assert.equal(unknown.status, 404);
  const malformed = await problem(() => api.revokeApiKey("not-a-uuid"));
  assert.equal(malformed.status, 422);
  assert.deepEqual(malformed.errors.map((e) => e.field), ["key_id"]);
});

test("scopes", async () => {
  const api = await loggedIn("scoper");
  const all = await api.createApiKey("all");
  assert.deepEqual(all.scopes, ["me:read", "me:write"]);
  const readOnly = await api.createApiKey("read", { scopes: ["me:read"] });
  const writeOnly = await api.createApiKey("write", { scopes: ["me:write"] });
  assert.deepEqual([readOnly.scopes, writeOnly.scopes], [["me:read"], ["me:write"]]);
  assert.equal((await me(all.raw_key)).username, "scoper");
  assert.equal((await me(readOnly.raw_key)).username, "scoper");

  const denied = await problem(() => me(writeOnly.raw_key));
  assert.equal(denied.status, 403);
  assert.equal(denied.type, "urn:authapi:problem:insufficient-scope");
  assert.deepEqual((await listed(api, writeOnly.id)).scopes, ["me:write"]);

  const unknown = await problem(() => api.createApiKey("bad", { scopes: ["me:read", /** @type {any} */ ("admin")] }));
  assert.equal(unknown.status, 422);
  assert.deepEqual(unknown.errors.map((e) => e.field), ["scopes.1"]);
  const none = await problem(() => api.createApiKey("none", { scopes: [] }));
  assert.deepEqual(none.errors.map((e) => e.field), ["scopes"]);
});

test("verifying a key for a gateway", async () => {
  const api = await loggedIn("gatekept");
  const all = await api.createApiKey("all");
  const readOnly = await api.createApiKey("read", { scopes: ["me:read"] });
  const user = await me(all.raw_key);

  const p = await new Authapi({ baseUrl: server.url, apiKey: all.raw_key }).verifyApiKey("POST", "/v1/me/things?limit=10");
  assert.deepEqual(p, { userId: user.id, username: "gatekept", keyId: all.id, scopes: ["me:read", "me:write"] });

  const verifier = new Authapi({ baseUrl: server.url, apiKey: readOnly.raw_key });
  assert.equal((await verifier.verifyApiKey("GET", "/v1/me/things")).keyId, readOnly.id);
  const denied = await problem(() => verifier.verifyApiKey("POST", "/v1/me/things"));
  assert.equal(denied.status, 403);
  assert.equal(denied.type, "urn:authapi:problem:insufficient-scope");
  const outside = await problem(() => verifier.verifyApiKey("GET", "/v1/me/../admin"));
  assert.equal(outside.status, 403);
  assert.equal(outside.type, "urn:authapi:problem:path-not-allowed");
  const anonymous = await problem(() => new Authapi({ baseUrl: server.url }).verifyApiKey("GET", "/v1/me"));
  assert.equal(anonymous.status, 401);
  assert.equal(anonymous.type, "urn:authapi:problem:unauthenticated");
});

test("expiry", async () => {
  const api = await loggedIn("expiring");
  const past = await problem(() => api.createApiKey("past", { expiresAt: new Date(Date.now() - 60_000) }));
  assert.equal(past.status, 422);
  assert.deepEqual(past.errors.map((e) => e.field), ["expires_at"]);

  // The live server's clock cannot be moved: this key lives two seconds.
  const expiresAt = new Date(Date.now() + 2000);
  const key = await api.createApiKey("short", { expiresAt });
  assert.equal(Date.parse(key.expires_at ?? ""), expiresAt.getTime());
  assert.equal((await me(key.raw_key)).username, "expiring");
  assert.equal((await listed(api, key.id)).is_active, true);

  await sleep(expiresAt.getTime() - Date.now() + 50);
  const expired = await problem(() => me(key.raw_key));
  assert.equal(expired.status, 401);
  assert.equal(expired.type, "urn:authapi:problem:api-key-expired");
  const after = await listed(api, key.id);
  assert.equal(after.is_active, false);
  assert.equal(Date.parse(after.expires_at ?? ""), expiresAt.getTime());
});

test("rotation", async () => {
  const api = await loggedIn("rotator");
  const old = await api.createApiKey("deploy", { scopes: ["me:read"] });
  const asked = Date.now();
  const next = await api.rotateApiKey(old.id, 3600);
  assert.equal(next.name, "deploy");
  assert.deepEqual(next.scopes, ["me:read"]);
  assert.notEqual(next.id, old.id);
  assert.notEqual(next.raw_key, old.raw_key);
  // During the grace period both keys work, and the old one shows its end.
  assert.equal((await me(old.raw_key)).username, "rotator");
  assert.equal((await me(next.raw_key)).username, "rotator");
  const graceEnd = Date.parse((await listed(api, old.id)).expires_at ?? "");
  assert.ok(graceEnd >= asked + 3_600_000 - 1000 && graceEnd <= Date.now() + 3_600_000 + 1000, `grace ends at ${new Date(graceEnd).toISOString()}`);

  // Without a grace period (no body at all) the old key stops at once.
  const third = await api.rotateApiKey(next.id);
  const stopped = await problem(() => me(next.raw_key));
  assert.equal(stopped.status, 401);
  assert.equal(stopped.type, "urn:authapi:problem:api-key-expired");
  assert.equal((await me(third.raw_key)).username, "rotator");

  const tooLong = await problem(() => api.rotateApiKey(third.id, 7 * 24 * 3600 + 1));
  assert.equal(tooLong.status, 422);
  assert.deepEqual(tooLong.errors.map((e) => e.field), ["grace_seconds"]);
  await api.revokeApiKey(third.id);
  for (const id of [third.id, next.id, "00000000-0000-4000-8000-000000000000"]) {
    const gone = await problem(() => api.rotateApiKey(id, 60));
    assert.equal(gone.status, 404, `rotating ${id}`);
    assert.equal(gone.type, "urn:authapi:problem:not-found");
  }
});

test("each credential goes only where it is accepted", async () => {
  /** @type {Record<string, string>} */
  const seen = {};
  /** @type {typeof fetch} */
  const recording = async (input, init) => {
    const req = new Request(input, init);
    const creds = [req.headers.has("Authorization") && "jwt", req.headers.has("X-API-Key") && "key"].filter(Boolean);
    const path = new URL(req.url).pathname.replace(/^\/v1\/auth\/api-keys\/[^/]+/, "/v1/auth/api-keys/{key_id}");
    seen[`${req.method} ${path}`] = creds.join("+");
    return fetch(req);
  };
  const setup = new Authapi({ baseUrl: server.url });
  await setup.registerUser({ username: "both", email: "both@example.com", password: "secureP@ss123", full_name: "B" });
  setup.setToken((await setup.login("both", "secureP@ss123")).access_token);
  const key = await setup.createApiKey("k");

  const api = new Authapi({ baseUrl: server.url, fetch: recording, apiKey: key.raw_key });
  await api.registerUser({ username: "other", email: "other2@example.com", password: "secureP@ss123", full_name: "O" });
  api.setToken((await api.login("both", "secureP@ss123")).access_token);
  const k2 = await api.createApiKey("k2");
  await api.listApiKeys();
  const k3 = await api.rotateApiKey(k2.id, 0);
  await api.revokeApiKey(k3.id);
  await api.getCurrentUser();
  await api.updateCurrentUser({ full_name: "B2" });
  await api.listSecurityEventsPage();
  await api.changePassword("secureP@ss123", "an0ther-Secure-passw0rd");
  api.setToken((await api.login("both", "an0ther-Secure-passw0rd")).access_token);
  await api.logout();
  api.setToken((await api.login("both", "an0ther-Secure-passw0rd")).access_token);
  await api.deleteAccount();
  assert.deepEqual(seen, {
    "POST /v1/auth/register": "",
    "POST /v1/auth/login": "",
    "POST /v1/auth/api-keys": "jwt",
    "GET /v1/auth/api-keys": "jwt",
    "DELETE /v1/auth/api-keys/{key_id}": "jwt",
    "POST /v1/auth/api-keys/{key_id}/rotate": "jwt",
    "GET /v1/me": "key",
    "PATCH /v1/me": "key",
    "GET /v1/auth/events": "jwt",
    "POST /v1/auth/password": "jwt",
    "POST /v1/auth/logout": "jwt",
    "DELETE /v1/auth/account": "jwt",
  });
});

test("the key listing comes a page at a time, and the iterator follows every page", async () => {
  const api = await loggedIn("pagedts");
  const ids = [];
  for (let i = 0; i < 5; i++) ids.unshift((await api.createApiKey(`k${i}`)).id); // newest first
  const first = await api.listApiKeysPage({ limit: 2 });
  assert.deepEqual(first.items.map((k) => k.id), ids.slice(0, 2));
  assert.ok(first.next, "a next cursor while more remain");
  const second = await api.listApiKeysPage({ limit: 2, cursor: first.next });
  assert.deepEqual(second.items.map((k) => k.id), ids.slice(2, 4));
  const last = await api.listApiKeysPage({ limit: 2, cursor: second.next });
  assert.deepEqual(last.items.map((k) => k.id), ids.slice(4));
  assert.equal(last.next, undefined);

  const iterated = [];
  for await (const k of api.apiKeys(2)) iterated.push(k.id);
  assert.deepEqual(iterated, ids);
  assert.deepEqual((await api.listApiKeys()).map((k) => k.id), ids);

  const bad = await problem(() => api.listApiKeysPage({ cursor: "not-a-cursor" }));
  assert.equal(bad.status, 422);
  assert.deepEqual([...new Set(bad.errors?.map((e) => e.field))], ["cursor"]);
});

/**
 * Resolves to the Problem a JWT gets when it lists keys, or undefined when
 * it works.
 * @param {string | undefined} token
 */
async function tokenRefusal(token) {
  const api = new Authapi({ baseUrl: server.url, token });
  try {
    await api.listApiKeysPage({ limit: 1 });
    return undefined;
  } catch (err) {
    assert.ok(err instanceof Problem, `threw ${err}, want a Problem`);
    return err;
  }
}

/**
 * Logs name in with password on a client of its own and returns the token.
 * @param {string} name
 * @param {string} [password]
 */
async function newToken(name, password = "secureP@ss123") {
  return (await new Authapi({ baseUrl: server.url }).login(name, password)).access_token;
}

test("the key's owner updates their profile", async () => {
  const api = await loggedIn("profiled");
  await loggedIn("othertaken");
  const writer = await api.createApiKey("writer");
  const reader = await api.createApiKey("reader", { scopes: ["me:read"] });
  api.setApiKey(writer.raw_key);
  const before = await api.getCurrentUser();

  const named = await api.updateCurrentUser({ full_name: "Hershel M." });
  assert.deepEqual(named, { ...before, full_name: "Hershel M." });
  const both = await api.updateCurrentUser({ email: "New.Address@example.org", full_name: "Both" });
  assert.deepEqual(both, { ...before, email: "New.Address@example.org", full_name: "Both" });
  assert.deepEqual(await api.getCurrentUser(), both);

  const taken = await problem(() => api.updateCurrentUser({ email: "OTHERTAKEN@example.com" }));
  assert.equal(taken.status, 409);
  assert.equal(taken.type, "urn:authapi:problem:already-registered");
  assert.deepEqual(taken.errors.map((e) => e.field), ["email"]);
  const empty = await problem(() => api.updateCurrentUser({}));
  assert.equal(empty.status, 422);
  assert.equal(empty.type, "urn:authapi:problem:validation-failed");
  const blank = await problem(() => api.updateCurrentUser({ full_name: "  " }));
  assert.deepEqual(blank.errors.map((e) => e.field), ["full_name"]);

  const readOnly = await problem(() => new Authapi({ baseUrl: server.url, apiKey: reader.raw_key }).updateCurrentUser({ full_name: "x" }));
  assert.equal(readOnly.status, 403);
  assert.equal(readOnly.type, "urn:authapi:problem:insufficient-scope");
  api.setApiKey(undefined);
  const jwtOnly = await problem(() => api.updateCurrentUser({ full_name: "x" }));
  assert.equal(jwtOnly.status, 401);
  assert.equal(jwtOnly.type, "urn:authapi:problem:unauthenticated");
  assert.deepEqual(await me(writer.raw_key), both, "the refused updates changed nothing");
});

test("a password change ends every earlier token", async () => {
  const { api, token: used } = await session("changer");
  const other = await newToken("changer"); // another device
  const key = await api.createApiKey("k");

  const wrong = await problem(() => api.changePassword("wrong password", "a new Passw0rd"));
  assert.equal(wrong.status, 403);
  assert.equal(wrong.type, "urn:authapi:problem:wrong-password");
  const same = await problem(() => api.changePassword("secureP@ss123", "secureP@ss123"));
  assert.equal(same.status, 422);
  assert.deepEqual(same.errors.map((e) => e.field), ["new_password"]);
  // A refused change keeps the JWT: it still works.
  assert.equal((await api.listApiKeys()).length, 1);

  await api.changePassword("secureP@ss123", "a new Passw0rd");
  // The client forgot the ended JWT: it sends none.
  const none = await problem(() => api.listApiKeys());
  assert.equal(none.type, "urn:authapi:problem:unauthenticated");
  for (const tok of [used, other]) {
    const ended = await tokenRefusal(tok);
    assert.equal(ended?.status, 401);
    assert.equal(ended?.type, "urn:authapi:problem:invalid-token");
  }
  const oldPassword = await problem(() => api.login("changer", "secureP@ss123"));
  assert.equal(oldPassword.type, "urn:authapi:problem:invalid-credentials");
  assert.equal(await tokenRefusal(await newToken("changer", "a new Passw0rd")), undefined);
  assert.equal((await me(key.raw_key)).username, "changer", "API keys keep working");
});

test("logout ends this token, or all of them", async () => {
  const { api, token: first } = await session("leaver");
  const [second, third] = [await newToken("leaver"), await newToken("leaver")];

  await api.logout();
  const none = await problem(() => api.listApiKeys());
  assert.equal(none.type, "urn:authapi:problem:unauthenticated", "the client forgot the ended JWT");
  assert.equal((await tokenRefusal(first))?.type, "urn:authapi:problem:invalid-token");
  assert.equal(await tokenRefusal(second), undefined, "another token of the user");

  const again = new Authapi({ baseUrl: server.url, token: first });
  const ended = await problem(() => again.logout());
  assert.equal(ended.status, 401);
  assert.equal(ended.type, "urn:authapi:problem:invalid-token");

  await new Authapi({ baseUrl: server.url, token: second }).logout({ all: true });
  for (const tok of [second, third]) assert.equal((await tokenRefusal(tok))?.type, "urn:authapi:problem:invalid-token");
  assert.equal(await tokenRefusal(await newToken("leaver")), undefined, "a token issued after");
  const anonymous = await problem(() => new Authapi({ baseUrl: server.url }).logout());
  assert.equal(anonymous.type, "urn:authapi:problem:unauthenticated");
});

test("account deletion needs a recent login", async () => {
  const api = await loggedIn("deleted");
  const key = await api.createApiKey("k");
  api.setApiKey(key.raw_key);

  await sleep(REAUTH_MAX_AGE_MS + 1100); // auth_time is in whole seconds
  const stale = await problem(() => api.deleteAccount());
  assert.equal(stale.status, 401);
  assert.equal(stale.type, "urn:authapi:problem:reauthentication-required");
  assert.equal((await api.getCurrentUser()).username, "deleted", "a refused deletion keeps the credentials");
  assert.equal((await api.listApiKeys()).length, 1, "a refused deletion keeps the credentials");

  api.setToken(await newToken("deleted"));
  await api.deleteAccount();
  const forgotten = await problem(() => api.getCurrentUser());
  assert.equal(forgotten.type, "urn:authapi:problem:unauthenticated", "the client forgot the key");
  const noJWT = await problem(() => api.listApiKeys());
  assert.equal(noJWT.type, "urn:authapi:problem:unauthenticated", "the client forgot the JWT");
  const gone = await problem(() => me(key.raw_key));
  assert.equal(gone.type, "urn:authapi:problem:invalid-api-key");
  const login = await problem(() => api.login("deleted", "secureP@ss123"));
  assert.equal(login.type, "urn:authapi:problem:invalid-credentials");
  await loggedIn("deleted"); // the name and the address are free again
});

test("the security log comes a page at a time, and the iterator follows every page", async () => {
  const { api, token } = await session("loggedts");
  await problem(() => api.login("loggedts", "wrong password"));
  const key = await api.createApiKey("k");
  await new Authapi({ baseUrl: server.url, apiKey: key.raw_key }).updateCurrentUser({ full_name: "N2" });

  const all = await api.listSecurityEventsPage();
  assert.deepEqual(all.items.map((e) => e.type), ["profile_updated", "api_key_created", "login_failed", "login_succeeded"]);
  assert.equal(all.next, undefined);
  const created = all.items[1];
  assert.equal(created?.key_id, key.id);
  assert.equal(created?.key_prefix, key.prefix);
  assert.equal(created?.client_address, "127.0.0.1");
  assert.equal(all.items[3]?.key_id, null);
  assert.equal(JSON.stringify(all.items).includes(key.raw_key), false, "the log shows the raw key");

  const first = await api.listSecurityEventsPage({ limit: 3 });
  assert.deepEqual(first.items.map((e) => e.id), all.items.slice(0, 3).map((e) => e.id));
  assert.ok(first.next, "a next cursor while more remain");
  const last = await api.listSecurityEventsPage({ limit: 3, cursor: first.next });
  assert.deepEqual(last.items.map((e) => e.id), all.items.slice(3).map((e) => e.id));
  assert.equal(last.next, undefined);

  /** @type {string[]} */
  const urls = [];
  const counting = new Authapi({
    baseUrl: server.url,
    token,
    fetch: async (input, init) => {
      urls.push(new Request(input, init).url);
      return fetch(input, init);
    },
  });
  const iterated = [];
  for await (const e of counting.securityEvents(1)) iterated.push(e.id);
  assert.deepEqual(iterated, all.items.map((e) => e.id));
  assert.equal(urls.length, 4, `one request a page of 1: ${urls.join(" ")}`);

  const bad = await problem(() => api.listSecurityEventsPage({ cursor: "not-a-cursor" }));
  assert.equal(bad.status, 422);
  assert.deepEqual([...new Set(bad.errors.map((e) => e.field))], ["cursor"]);
  const keyOnly = await problem(async () => {
    for await (const e of new Authapi({ baseUrl: server.url, apiKey: key.raw_key }).securityEvents()) assert.fail(`yielded ${e.type}`);
  });
  assert.equal(keyOnly.type, "urn:authapi:problem:unauthenticated");
});
