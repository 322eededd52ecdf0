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

before(async () => {
  server = await startAuthapi();
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

test("each credential goes only where it is accepted", async () => {
  /** @type {Record<string, string>} */
  const seen = {};
  /** @type {typeof fetch} */
  const recording = async (input, init) => {
    const req = new Request(input, init);
    const creds = [req.headers.has("Authorization") && "jwt", req.headers.has("X-API-Key") && "key"].filter(Boolean);
    const path = new URL(req.url).pathname.replace(/^\/v1\/auth\/api-keys\/.+/, "/v1/auth/api-keys/{key_id}");
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
  await api.revokeApiKey(k2.id);
  await api.getCurrentUser();
  assert.deepEqual(seen, {
    "POST /v1/auth/register": "",
    "POST /v1/auth/login": "",
    "POST /v1/auth/api-keys": "jwt",
    "GET /v1/auth/api-keys": "jwt",
    "DELETE /v1/auth/api-keys/{key_id}": "jwt",
    "GET /v1/me": "key",
  });
});
