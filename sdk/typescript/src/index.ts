// The TypeScript SDK of authapi: a thin layer over openapi-fetch, typed by
// src/schema.d.ts, which openapi-typescript generates from openapi.yaml
// (`make sdk`). Every refused request throws a Problem, the RFC 9457
// document authapi answers with.
import createClient, { type Client } from "openapi-fetch";

import type { components, paths } from "./schema.js";

export type { components, paths } from "./schema.js";

type Schemas = components["schemas"];
export type RegisterRequest = Schemas["RegisterRequest"];
export type User = Schemas["User"];
export type AccessToken = Schemas["AccessToken"];
export type CreatedAPIKey = Schemas["CreatedAPIKey"];
export type APIKey = Schemas["APIKey"];
/** A permission of an API key: "me:read" (GET /v1/me) or "me:write". */
export type Scope = Schemas["Scope"];
export type FieldError = Schemas["FieldError"];
/** What updateCurrentUser changes: full_name and/or email (at least one). */
export type UserUpdate = Schemas["UpdateUserRequest"];
/** One thing that happened to the account, as the security log lists it. */
export type SecurityEvent = Schemas["SecurityEvent"];
/** What a security event records, e.g. "login_failed" or "api_key_created". */
export type SecurityEventType = Schemas["SecurityEventType"];
export type ProblemDocument = Schemas["Problem"];

/** A refused request: the server's problem document, thrown. */
export class Problem extends Error {
  readonly status: number;
  /** Stable URI to switch on, e.g. "urn:authapi:problem:validation-failed". */
  readonly type: string;
  readonly title: string;
  readonly detail: string;
  readonly instance?: string;
  readonly requestId?: string;
  /** Every invalid field (422) or taken field (409). */
  readonly errors: FieldError[];
  /** Seconds to wait, from Retry-After (429, 503). */
  readonly retryAfter?: number;

  constructor(status: number, doc: Partial<ProblemDocument>, retryAfter?: number) {
    const title = doc.title ?? `HTTP ${status}`;
    super(`authapi: ${status} ${title}${doc.detail ? ": " + doc.detail : ""}`);
    this.name = "Problem";
    this.status = status;
    this.type = doc.type ?? "about:blank";
    this.title = title;
    this.detail = doc.detail ?? "";
    this.instance = doc.instance;
    this.requestId = doc.request_id;
    this.errors = doc.errors ?? [];
    this.retryAfter = retryAfter;
  }

  /** The message for one invalid field, if the problem names it. */
  field(name: string): string | undefined {
    return this.errors.find((e) => e.field === name)?.message;
  }
}

/** Who a request authapi verified acts as: the key's owner, the key, its scopes. */
export interface Principal {
  userId: string;
  username: string;
  keyId: string;
  scopes: Scope[];
}

/** Limits of a new API key. */
export interface KeyOptions {
  /** What the key may do (at least one scope); by default every scope. */
  scopes?: Scope[];
  /**
   * When the key stops working: in the future, at most the server's
   * maximum key lifetime ahead (a year by default). Without it the key
   * lives as long as the server's default lifetime, if any, or forever.
   */
  expiresAt?: Date | string;
}

export interface Options {
  /** Scheme and host of the server, e.g. "http://127.0.0.1:8080". */
  baseUrl: string;
  /** JWT for the /v1/auth operations that need one (keys, the account's own). */
  token?: string;
  /** API key (rst_…) for /v1/me and verifyApiKey. */
  apiKey?: string;
  /** A fetch to use instead of the global one. */
  fetch?: typeof globalThis.fetch;
}

/** The outcome openapi-fetch reports for one request. */
interface Outcome<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

function unwrap<T>({ data, error, response }: Outcome<T>): T {
  if (response.ok && data !== undefined) return data;
  const seconds = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
  const retryAfter = Number.isFinite(seconds) ? seconds : undefined;
  const doc = response.headers.get("Content-Type")?.startsWith("application/problem+json") && typeof error === "object" && error !== null
    ? (error as Partial<ProblemDocument>)
    : { title: response.statusText || undefined };
  throw new Problem(response.status, doc, retryAfter);
}

/** Which page of a listing to fetch. */
export interface PageOptions {
  /** Items per page, 1 to 100 (by default the server's, 100). */
  limit?: number;
  /** The next cursor of the previous page (by default, the first page). */
  cursor?: string;
}

/** A page of a listing, and the cursor of the next (undefined on the last). */
export interface Page<T> {
  items: T[];
  next?: string;
}

/** The cursor of a response's Link rel="next" (RFC 8288), if any. */
function nextCursor(response: Response): string | undefined {
  for (const link of (response.headers.get("Link") ?? "").split(",")) {
    const [, target, params] = /^\s*<([^>]*)>\s*;(.*)$/.exec(link) ?? [];
    if (target !== undefined && params !== undefined && /rel="?next"?/.test(params)) {
      return new URL(target, "http://relative.invalid").searchParams.get("cursor") ?? undefined;
    }
  }
  return undefined;
}

/** Which tokens logout ends. */
export interface LogoutOptions {
  /** Every token of the user issued so far, on every device, not only this one. */
  all?: boolean;
}

/**
 * A client of one authapi server. Each credential goes only to the
 * operations that accept it: the JWT to key management and the account's
 * own operations under /v1/auth, the API key to /v1/me and to verifyApiKey.
 */
export class Authapi {
  /** The typed openapi-fetch client underneath, for anything else. */
  readonly raw: Client<paths>;
  private token?: string;
  private apiKey?: string;

  constructor(options: Options) {
    this.raw = createClient<paths>({ baseUrl: options.baseUrl.replace(/\/+$/, ""), fetch: options.fetch });
    this.token = options.token;
    this.apiKey = options.apiKey;
  }

  /** Sets (or, with undefined, forgets) the JWT. */
  setToken(token: string | undefined): void {
    this.token = token;
  }

  /** Sets (or, with undefined, forgets) the API key. */
  setApiKey(key: string | undefined): void {
    this.apiKey = key;
  }

  private bearer(): Record<string, string> {
    return this.token ? { Authorization: `Bearer ${this.token}` } : {};
  }

  private key(): Record<string, string> {
    return this.apiKey ? { "X-API-Key": this.apiKey } : {};
  }

  /** Creates a user account. */
  async registerUser(body: RegisterRequest): Promise<User> {
    return unwrap(await this.raw.POST("/v1/auth/register", { body }));
  }

  /** Exchanges credentials for a JWT; call setToken with its access_token. */
  async login(username: string, password: string): Promise<AccessToken> {
    return unwrap(await this.raw.POST("/v1/auth/login", { body: { username, password } }));
  }

  /**
   * Creates an API key; its raw_key is shown this once. A key without the
   * scope an operation needs gets a 403 Problem there
   * ("urn:authapi:problem:insufficient-scope"), an expired one a 401
   * ("urn:authapi:problem:api-key-expired"). Needs a JWT.
   */
  async createApiKey(name: string, options: KeyOptions = {}): Promise<CreatedAPIKey> {
    const { scopes, expiresAt } = options;
    const body = {
      name,
      ...(scopes !== undefined && { scopes }),
      ...(expiresAt !== undefined && { expires_at: expiresAt instanceof Date ? expiresAt.toISOString() : expiresAt }),
    };
    return unwrap(await this.raw.POST("/v1/auth/api-keys", { body, headers: this.bearer() }));
  }

  /**
   * Replaces one of the caller's working keys with a new one of the same
   * name and scopes (its raw_key is shown this once). The old key keeps
   * working for graceSeconds (at most 7 days; by default 0, it stops at
   * once); the listing shows its end as expires_at. A revoked, expired,
   * unknown or foreign key is a 404 Problem. Needs a JWT.
   */
  async rotateApiKey(keyId: string, graceSeconds?: number): Promise<CreatedAPIKey> {
    return unwrap(
      await this.raw.POST("/v1/auth/api-keys/{key_id}/rotate", {
        params: { path: { key_id: keyId } },
        // No body at all is the server's default, no grace.
        ...(graceSeconds !== undefined && { body: { grace_seconds: graceSeconds } }),
        headers: this.bearer(),
      }),
    );
  }

  /** Lists all the caller's API keys, newest first, following every page. Needs a JWT. */
  async listApiKeys(): Promise<APIKey[]> {
    const all: APIKey[] = [];
    for await (const key of this.apiKeys()) all.push(key);
    return all;
  }

  /** Iterates over the caller's API keys, newest first, fetching a page at a time. Needs a JWT. */
  async *apiKeys(pageSize?: number): AsyncGenerator<APIKey> {
    let cursor: string | undefined;
    do {
      const page = await this.listApiKeysPage({ limit: pageSize, cursor });
      yield* page.items;
      cursor = page.next;
    } while (cursor !== undefined);
  }

  /**
   * One page of the caller's API keys, newest first: at most limit (by
   * default the server's, 100), starting at cursor (by default the newest).
   * next is the cursor of the following page, undefined on the last. Needs a JWT.
   */
  async listApiKeysPage(page: PageOptions = {}): Promise<Page<APIKey>> {
    const out = await this.raw.GET("/v1/auth/api-keys", {
      params: { query: { limit: page.limit, cursor: page.cursor } },
      headers: this.bearer(),
    });
    return { items: unwrap(out), next: nextCursor(out.response) };
  }

  /** Revokes one of the caller's API keys. Needs a JWT. */
  async revokeApiKey(keyId: string): Promise<void> {
    const out = await this.raw.DELETE("/v1/auth/api-keys/{key_id}", {
      params: { path: { key_id: keyId } },
      headers: this.bearer(),
    });
    if (out.response.status !== 204) unwrap(out);
  }

  /** The user who owns the API key. Needs an API key with the "me:read" scope. */
  async getCurrentUser(): Promise<User> {
    return unwrap(await this.raw.GET("/v1/me", { headers: this.key() }));
  }

  /**
   * Asks authapi, as an API gateway does before passing a request on,
   * whether the API key may make a request of `method` to `target` (the
   * request target as the client sent it, e.g. "/v1/me/things?limit=10"),
   * and returns who the request acts as. The target must be /v1/me or
   * under /v1/me/; GET, HEAD and OPTIONS need "me:read", other methods
   * "me:write". A refusal throws a Problem: 401 as getCurrentUser's for
   * the same key, 403 "urn:authapi:problem:insufficient-scope" or
   * "urn:authapi:problem:path-not-allowed".
   */
  async verifyApiKey(method: string, target: string): Promise<Principal> {
    const out = await this.raw.GET("/v1/auth/verify", {
      params: { header: { "X-Forwarded-Method": method, "X-Forwarded-Uri": target } },
      headers: this.key(),
    });
    if (out.response.status !== 200) unwrap(out); // throws the refusal
    const h = out.response.headers;
    const [userId, username, keyId] = ["X-Authapi-User-Id", "X-Authapi-Username", "X-Authapi-Key-Id"].map((k) => h.get(k) ?? "");
    if (!userId || !username || !keyId) {
      throw new Error("authapi: an allowed verification without its X-Authapi-* headers");
    }
    const scopes = (h.get("X-Authapi-Scopes") ?? "").split(" ").filter((s) => s !== "") as Scope[];
    return { userId, username, keyId, scopes };
  }

  /**
   * Changes the full name and/or the email address of the API key's owner
   * and returns the user as updated. Nothing to change, or a value that
   * breaks the registration rules, is a 422 Problem; an email address
   * another account has is a 409 ("urn:authapi:problem:already-registered").
   * Needs an API key with the "me:write" scope.
   */
  async updateCurrentUser(changes: UserUpdate): Promise<User> {
    return unwrap(await this.raw.PATCH("/v1/me", { body: changes, headers: this.key() }));
  }

  /**
   * Replaces the caller's password. A wrong current password is a 403
   * Problem ("urn:authapi:problem:wrong-password") and counts as a failed
   * login; a new one equal to it, or too weak, a 422. Once it resolves,
   * every token issued before is refused, this client's too, so the client
   * forgets its JWT: log in again with the new password and setToken. API
   * keys keep working. Needs a JWT.
   */
  async changePassword(currentPassword: string, newPassword: string): Promise<void> {
    const sent = this.token;
    const out = await this.raw.POST("/v1/auth/password", {
      body: { current_password: currentPassword, new_password: newPassword },
      headers: this.bearer(),
    });
    if (out.response.status !== 204) unwrap(out);
    this.forget(sent);
  }

  /**
   * Ends this client's JWT, or with { all: true } every token of the user
   * issued so far, on every device; the client then forgets its JWT. API
   * keys keep working. Needs a JWT.
   */
  async logout(options: LogoutOptions = {}): Promise<void> {
    const sent = this.token;
    const out = await this.raw.POST("/v1/auth/logout", {
      // No body is the server's default: this token only.
      ...(options.all !== undefined && { body: { all: options.all } }),
      headers: this.bearer(),
    });
    if (out.response.status !== 204) unwrap(out);
    this.forget(sent);
  }

  /**
   * Deletes the caller's account with its API keys and security log; the
   * client then forgets both credentials, which no longer work. It needs a
   * recent login (5 minutes by default): an older JWT gets a 401 Problem
   * ("urn:authapi:problem:reauthentication-required"), after which log in
   * again, setToken, and retry. Needs a JWT.
   */
  async deleteAccount(): Promise<void> {
    const [sent, key] = [this.token, this.apiKey];
    const out = await this.raw.DELETE("/v1/auth/account", { headers: this.bearer() });
    if (out.response.status !== 204) unwrap(out);
    this.forget(sent, key);
  }

  // Forgets the credentials a request ended, but not any set while it was
  // on its way: those are the caller's new ones.
  private forget(token: string | undefined, apiKey?: string): void {
    if (token !== undefined && this.token === token) this.token = undefined;
    if (apiKey !== undefined && this.apiKey === apiKey) this.apiKey = undefined;
  }

  /** Iterates over the caller's security log, newest first, fetching a page at a time. Needs a JWT. */
  async *securityEvents(pageSize?: number): AsyncGenerator<SecurityEvent> {
    let cursor: string | undefined;
    do {
      const page = await this.listSecurityEventsPage({ limit: pageSize, cursor });
      yield* page.items;
      cursor = page.next;
    } while (cursor !== undefined);
  }

  /**
   * One page of the caller's security log, newest first: at most limit (by
   * default the server's, 100), starting at cursor (by default the newest).
   * next is the cursor of the following page, undefined on the last. Needs a JWT.
   */
  async listSecurityEventsPage(page: PageOptions = {}): Promise<Page<SecurityEvent>> {
    const out = await this.raw.GET("/v1/auth/events", {
      params: { query: { limit: page.limit, cursor: page.cursor } },
      headers: this.bearer(),
    });
    return { items: unwrap(out), next: nextCursor(out.response) };
  }
}
