// Package client is the Go SDK of authapi. It wraps the client generated
// from openapi.yaml (authapi/client/gen) with one typed method per operation,
// credentials set once, and errors as *Problem, the RFC 9457 problem
// document every authapi error is.
//
// A JWT (from Login) authenticates the API key management methods and the
// account's own (ChangePassword, Logout, DeleteAccount, SecurityEvents);
// an API key (from CreateAPIKey) authenticates GetCurrentUser and
// UpdateCurrentUser. Each credential is sent only to the operations that
// accept it.
//
// A key may be limited to some scopes and may expire (WithScopes,
// WithExpiry); RotateAPIKey replaces one with a grace period during which
// both work.
//
//	c, err := client.New("http://127.0.0.1:8080")
//	tok, err := c.Login(ctx, "hershel", "secureP@ss123")
//	key, err := c.UsingToken(tok.AccessToken).CreateAPIKey(ctx, "my-app-key")
//	me, err := c.UsingAPIKey(key.RawKey).GetCurrentUser(ctx)
//
// A service without an API gateway in front puts its handlers behind a
// Verifier, which asks authapi about each request's key, method and path
// (VerifyAPIKey) and hands the handler who the request acts as:
//
//	v, err := client.NewVerifier("http://127.0.0.1:8080")
//	http.ListenAndServe(addr, v.Middleware(mux)) // handlers: client.PrincipalFrom(r.Context())
//
// A refused request returns a *Problem:
//
//	var p *client.Problem
//	if errors.As(err, &p) && p.Type == client.TypeValidationFailed {
//		for _, f := range p.Errors { fmt.Println(f.Field, f.Message) }
//	}
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"authapi/client/gen"
)

// The API's models, as openapi.yaml defines them.
type (
	// User is a user account.
	User = gen.User
	// AccessToken is a JWT and its lifetime.
	AccessToken = gen.AccessToken
	// CreatedAPIKey is a new API key, with the raw key shown this once.
	CreatedAPIKey = gen.CreatedAPIKey
	// APIKey is an API key as listed, without the raw key.
	APIKey = gen.APIKey
	// FieldError is one invalid field of a refused request.
	FieldError = gen.FieldError
	// Scope is a permission of an API key.
	Scope = gen.Scope
)

// The scopes an API key can have. A key created without WithScopes has
// them all.
const (
	// ScopeMeRead reads the key owner's resources under /v1/me
	// (GetCurrentUser).
	ScopeMeRead Scope = gen.MeRead
	// ScopeMeWrite will change them.
	ScopeMeWrite Scope = gen.MeWrite
)

// RegisterRequest is a new account. It is gen.RegisterRequest with the
// email address as a plain string: the generated type would parse the
// address on the way out, refusing some and rewriting others ("Name
// <a@b.c>" to "a@b.c"), where the server is the judge of what is valid.
type RegisterRequest struct {
	Username string `json:"username"`
	Email    string `json:"email"`
	Password string `json:"password"`
	FullName string `json:"full_name"`
}

// Doer sends HTTP requests; *http.Client is one.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Client calls one authapi server. It is safe for concurrent use, and
// cheap to copy with other credentials (UsingToken, UsingAPIKey).
type Client struct {
	api    *gen.Client
	token  string // JWT for the /v1/auth operations that need one
	apiKey string // API key for /v1/me
}

// Option configures a Client.
type Option func(*options)

type options struct {
	doer   Doer
	token  string
	apiKey string
}

// WithHTTPClient sends requests through doer instead of
// http.DefaultClient: set timeouts, proxies or TLS there.
func WithHTTPClient(doer Doer) Option { return func(o *options) { o.doer = doer } }

// WithToken authenticates the operations that need a JWT (key
// management, the account's own) with an access token from Login.
func WithToken(jwt string) Option { return func(o *options) { o.token = jwt } }

// WithAPIKey authenticates GetCurrentUser and UpdateCurrentUser with an
// API key (rst_...).
func WithAPIKey(key string) Option { return func(o *options) { o.apiKey = key } }

// New returns a client of the server at baseURL (scheme and host, and a
// path prefix if the server is mounted under one).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q is not an http(s) URL", baseURL)
	}
	o := options{doer: http.DefaultClient}
	for _, opt := range opts {
		opt(&o)
	}
	if o.doer == nil {
		return nil, errors.New("client: WithHTTPClient(nil)")
	}
	api, err := gen.NewClient(baseURL, gen.WithHTTPClient(o.doer))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return &Client{api: api, token: o.token, apiKey: o.apiKey}, nil
}

// UsingToken returns a copy of c that sends jwt to the operations that
// need a JWT.
func (c *Client) UsingToken(jwt string) *Client {
	cp := *c
	cp.token = jwt
	return &cp
}

// UsingAPIKey returns a copy of c that sends key to GetCurrentUser and
// UpdateCurrentUser.
func (c *Client) UsingAPIKey(key string) *Client {
	cp := *c
	cp.apiKey = key
	return &cp
}

// RegisterUser creates a user account. A taken username or email address
// is a 409 Problem naming the field; invalid fields are a 422 Problem
// listing every one.
func (c *Client) RegisterUser(ctx context.Context, req RegisterRequest) (*User, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("client: registerUser: %w", err)
	}
	return decode[User]("registerUser", http.StatusOK)(c.api.RegisterUserWithBody(ctx, "application/json", bytes.NewReader(body)))
}

// Login exchanges a username and password for a JWT access token. Wrong
// credentials are a 401 Problem of TypeInvalidCredentials; too many
// failures a 429 Problem with RetryAfter.
func (c *Client) Login(ctx context.Context, username, password string) (*AccessToken, error) {
	return decode[AccessToken]("login", http.StatusOK)(c.api.Login(ctx, gen.LoginRequest{Username: username, Password: password}))
}

// KeyOption sets a property of a new API key.
type KeyOption func(*gen.CreateAPIKeyRequest)

// WithScopes limits a new key to scopes (at least one); without it a key
// has every scope. A key without the scope an operation needs gets a 403
// Problem of TypeInsufficientScope there.
func WithScopes(scopes ...Scope) KeyOption {
	return func(r *gen.CreateAPIKeyRequest) {
		s := append([]Scope{}, scopes...)
		r.Scopes = &s
	}
}

// WithExpiry makes a new key stop working at at, which must be in the
// future and within the server's maximum key lifetime (a year by default).
// Without it a key lives as long as the server's default lifetime, if it
// has one, or forever. An expired key gets a 401 Problem of
// TypeAPIKeyExpired.
func WithExpiry(at time.Time) KeyOption {
	return func(r *gen.CreateAPIKeyRequest) { r.ExpiresAt = &at }
}

// CreateAPIKey creates an API key named name. The raw key is in the
// result's RawKey and nowhere else, ever. Needs a JWT.
func (c *Client) CreateAPIKey(ctx context.Context, name string, opts ...KeyOption) (*CreatedAPIKey, error) {
	req := gen.CreateAPIKeyRequest{Name: name}
	for _, opt := range opts {
		opt(&req)
	}
	return decode[CreatedAPIKey]("createApiKey", http.StatusOK)(c.api.CreateAPIKey(ctx, req, c.bearer))
}

// RotateAPIKey replaces one of the caller's working keys with a new one of
// the same name and scopes, returned like CreateAPIKey's (the raw key is
// shown this once). The old key keeps working for grace (at most 7 days;
// 0 ends it at once), sent in whole seconds, rounded up; the listing shows
// its end as ExpiresAt. A revoked, expired, unknown or foreign key is a
// 404 Problem. Needs a JWT.
func (c *Client) RotateAPIKey(ctx context.Context, keyID uuid.UUID, grace time.Duration) (*CreatedAPIKey, error) {
	// Out of int32's range the server refuses the value all the same, with
	// a 422 naming grace_seconds.
	secs := int32(max(math.MinInt32, min(math.MaxInt32, math.Ceil(grace.Seconds()))))
	return decode[CreatedAPIKey]("rotateApiKey", http.StatusOK)(c.api.RotateAPIKey(ctx, keyID, gen.RotateAPIKeyRequest{GraceSeconds: &secs}, c.bearer))
}

// ListAPIKeys lists all the caller's API keys, newest first, revoked ones
// included, following every page. Needs a JWT.
func (c *Client) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	var all []APIKey
	for k, err := range c.APIKeys(ctx) {
		if err != nil {
			return nil, err
		}
		all = append(all, k)
	}
	return all, nil
}

// APIKeys iterates over the caller's API keys, newest first, fetching a
// page at a time; it stops at the first error, which it yields. Needs a
// JWT.
func (c *Client) APIKeys(ctx context.Context) iter.Seq2[APIKey, error] {
	return pages(func(cursor string) ([]APIKey, string, error) {
		p, err := c.ListAPIKeysPage(ctx, 0, cursor)
		if err != nil {
			return nil, "", err
		}
		return p.Keys, p.Next, nil
	})
}

// KeyPage is a page of the caller's API keys.
type KeyPage struct {
	Keys []APIKey
	Next string // the cursor of the next page; "" on the last
}

// ListAPIKeysPage returns the page of at most limit keys (0: the server's
// default, 100) that starts at cursor ("": the newest). Needs a JWT.
func (c *Client) ListAPIKeysPage(ctx context.Context, limit int, cursor string) (*KeyPage, error) {
	var params gen.ListAPIKeysParams
	params.Limit, params.Cursor = pageQuery(limit, cursor)
	var next string
	keys, err := decode[[]APIKey]("listApiKeys", http.StatusOK)(nextCursor(&next)(c.api.ListAPIKeys(ctx, &params, c.bearer)))
	if err != nil {
		return nil, err
	}
	return &KeyPage{Keys: *keys, Next: next}, nil
}

// pageQuery is a page's limit (0: the server's default) and cursor (""
// for the first page) as the generated client takes them.
func pageQuery(limit int, cursor string) (*gen.Limit, *gen.Cursor) {
	var l *gen.Limit
	if limit > 0 {
		n := gen.Limit(limit)
		l = &n
	}
	if cursor == "" {
		return l, nil
	}
	return l, &cursor
}

// pages iterates over the items of the pages that fetch returns, starting
// from the first, until a page names no next cursor.
func pages[T any](fetch func(cursor string) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		cursor := ""
		for {
			items, next, err := fetch(cursor)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			cursor = next
		}
	}
}

// nextCursor stores the cursor of a response's Link rel="next" (RFC 8288)
// in next, or "" when it has none.
func nextCursor(next *string) func(*http.Response, error) (*http.Response, error) {
	return func(resp *http.Response, err error) (*http.Response, error) {
		if err != nil {
			return resp, err
		}
		for _, link := range strings.Split(resp.Header.Get("Link"), ",") {
			target, params, ok := strings.Cut(strings.TrimSpace(link), ";")
			if !ok || !strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) {
				continue
			}
			u, perr := url.Parse(strings.Trim(strings.TrimSpace(target), "<>"))
			if perr == nil {
				*next = u.Query().Get("cursor")
			}
		}
		return resp, nil
	}
}

// RevokeAPIKey revokes one of the caller's API keys; revoking a revoked
// key succeeds again. A key that is not the caller's is a 404 Problem.
// Needs a JWT.
func (c *Client) RevokeAPIKey(ctx context.Context, keyID uuid.UUID) error {
	_, err := decode[struct{}]("revokeApiKey", http.StatusNoContent)(c.api.RevokeAPIKey(ctx, keyID, c.bearer))
	return err
}

// GetCurrentUser returns the user who owns the API key. Needs an API key
// with ScopeMeRead.
func (c *Client) GetCurrentUser(ctx context.Context) (*User, error) {
	return decode[User]("getCurrentUser", http.StatusOK)(c.api.GetCurrentUser(ctx, c.key))
}

// bearer and key are request editors: each credential goes only to the
// operations that take it, so an API key never travels to /v1/auth and a
// JWT never to /v1/me.
func (c *Client) bearer(_ context.Context, req *http.Request) error {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return nil
}

func (c *Client) key(_ context.Context, req *http.Request) error {
	if c.apiKey != "" {
		req.Header.Set("X-API-Key", c.apiKey)
	}
	return nil
}

// decode returns a function that reads a response of operation op: the
// body as a T when the status is the success one (no body for 204), and
// the *Problem it is otherwise.
func decode[T any](op string, success int) func(*http.Response, error) (*T, error) {
	return func(resp *http.Response, err error) (*T, error) {
		if err != nil {
			return nil, fmt.Errorf("client: %s: %w", op, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("client: %s: read the response: %w", op, err)
		}
		if resp.StatusCode != success {
			return nil, responseError(resp, body)
		}
		var out T
		if success == http.StatusNoContent {
			return &out, nil
		}
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
			return nil, responseError(resp, body)
		}
		if err := json.Unmarshal(body, &out); err != nil {
			return nil, fmt.Errorf("client: %s: decode the response: %w", op, err)
		}
		return &out, nil
	}
}
