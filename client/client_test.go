package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"authapi/client"
	"authapi/server"
)

var ctx = context.Background()

// MustClient returns a client of baseURL with opts.
func MustClient(tb testing.TB, baseURL string, opts ...client.Option) *client.Client {
	tb.Helper()
	c, err := client.New(baseURL, opts...)
	if err != nil {
		tb.Fatalf("client.New(%q) = %v", baseURL, err)
	}
	return c
}

// MustLogin registers name and returns a client holding its JWT.
func MustLogin(tb testing.TB, c *client.Client, name string) *client.Client {
	tb.Helper()
	if _, err := c.RegisterUser(ctx, client.RegisterRequest{Username: name, Email: name + "@example.com", Password: "secureP@ss123", FullName: "Full Name"}); err != nil {
		tb.Fatalf("RegisterUser(%q) = %v", name, err)
	}
	tok, err := c.Login(ctx, name, "secureP@ss123")
	if err != nil {
		tb.Fatalf("Login(%q) = %v", name, err)
	}
	return c.UsingToken(tok.AccessToken)
}

func TestReferenceFlow(t *testing.T) {
	c := MustClient(t, MustServer(t))
	u, err := c.RegisterUser(ctx, client.RegisterRequest{Username: "Hershel", Email: "hershel@example.com", Password: "secureP@ss123", FullName: "Hershel Moshkovitz"})
	if err != nil {
		t.Fatalf("RegisterUser = %v", err)
	}
	if u.Username != "Hershel" || u.Email != "hershel@example.com" || u.FullName != "Hershel Moshkovitz" || u.ID == uuid.Nil {
		t.Fatalf("RegisterUser = %+v, want the registered fields and an ID", u)
	}
	tok, err := c.Login(ctx, "hershel", "secureP@ss123")
	if err != nil {
		t.Fatalf("Login = %v", err)
	}
	if tok.TokenType != "bearer" || tok.ExpiresIn != 3600 || strings.Count(tok.AccessToken, ".") != 2 {
		t.Fatalf("Login = %+v, want a bearer JWT for 3600 s", tok)
	}
	jc := c.UsingToken(tok.AccessToken)
	first, err := jc.CreateAPIKey(ctx, "first")
	if err != nil {
		t.Fatalf("CreateAPIKey = %v", err)
	}
	second, err := jc.CreateAPIKey(ctx, "second")
	if err != nil {
		t.Fatalf("CreateAPIKey = %v", err)
	}
	if !strings.HasPrefix(first.RawKey, "rst_") || first.Prefix != first.RawKey[:8] || !first.IsActive {
		t.Fatalf("CreateAPIKey = %+v, want an active rst_ key whose prefix is its first 8 characters", first)
	}
	me, err := c.UsingAPIKey(first.RawKey).GetCurrentUser(ctx)
	if err != nil {
		t.Fatalf("GetCurrentUser = %v", err)
	}
	if *me != *u {
		t.Fatalf("GetCurrentUser = %+v, want %+v", me, u)
	}
	if err := jc.RevokeAPIKey(ctx, first.ID); err != nil {
		t.Fatalf("RevokeAPIKey = %v", err)
	}
	if err := jc.RevokeAPIKey(ctx, first.ID); err != nil {
		t.Fatalf("RevokeAPIKey again = %v, want nil (idempotent)", err)
	}
	keys, err := jc.ListAPIKeys(ctx)
	if err != nil {
		t.Fatalf("ListAPIKeys = %v", err)
	}
	var got []string
	for _, k := range keys {
		got = append(got, k.Name+map[bool]string{true: "+", false: "-"}[k.IsActive])
	}
	if want := []string{"second+", "first-"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ListAPIKeys = %v, want %v (newest first, + active)", got, want)
	}
	if _, err := c.UsingAPIKey(second.RawKey).GetCurrentUser(ctx); err != nil {
		t.Fatalf("GetCurrentUser with the unrevoked key = %v", err)
	}
}

func TestProblems(t *testing.T) {
	base := MustServer(t)
	anon := MustClient(t, base)
	alice := MustLogin(t, anon, "alice")
	key, err := alice.CreateAPIKey(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		call   func() error
		status int
		typ    string
		fields []string // the invalid fields named, in order
	}{
		{"register invalid fields", func() error {
			_, err := anon.RegisterUser(ctx, client.RegisterRequest{Username: "a!x", Email: "Alice <a@example.com>", Password: "short", FullName: " "})
			return err
		}, 422, client.TypeValidationFailed, []string{"email", "full_name", "password", "username"}},
		{"register taken", func() error {
			_, err := anon.RegisterUser(ctx, client.RegisterRequest{Username: "ALICE", Email: "Alice@Example.com", Password: "secureP@ss123", FullName: "A"})
			return err
		}, 409, client.TypeAlreadyRegistered, []string{"username", "email"}},
		{"login wrong password", func() error {
			_, err := anon.Login(ctx, "alice", "wrong password")
			return err
		}, 401, client.TypeInvalidCredentials, nil},
		{"login empty fields", func() error {
			_, err := anon.Login(ctx, "", "")
			return err
		}, 422, client.TypeValidationFailed, []string{"password", "username"}},
		{"create key without a token", func() error {
			_, err := anon.CreateAPIKey(ctx, "k")
			return err
		}, 401, client.TypeUnauthenticated, nil},
		{"create key with a bad token", func() error {
			_, err := anon.UsingToken("not.a.jwt").CreateAPIKey(ctx, "k")
			return err
		}, 401, client.TypeInvalidToken, nil},
		{"create key with an API key", func() error {
			_, err := anon.UsingAPIKey(key.RawKey).CreateAPIKey(ctx, "k")
			return err
		}, 401, client.TypeUnauthenticated, nil},
		{"create key with an empty name", func() error {
			_, err := alice.CreateAPIKey(ctx, "")
			return err
		}, 422, client.TypeValidationFailed, []string{"name"}},
		{"list keys without a token", func() error {
			_, err := anon.ListAPIKeys(ctx)
			return err
		}, 401, client.TypeUnauthenticated, nil},
		{"revoke an unknown key", func() error {
			return alice.RevokeAPIKey(ctx, uuid.New())
		}, 404, client.TypeNotFound, nil},
		{"me without a key", func() error {
			_, err := anon.GetCurrentUser(ctx)
			return err
		}, 401, client.TypeUnauthenticated, nil},
		{"me with a JWT only", func() error {
			_, err := alice.GetCurrentUser(ctx)
			return err
		}, 401, client.TypeUnauthenticated, nil},
		{"me with a mistyped key", func() error {
			_, err := anon.UsingAPIKey(mistype(key.RawKey)).GetCurrentUser(ctx)
			return err
		}, 401, client.TypeInvalidAPIKey, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var p *client.Problem
			if !errors.As(err, &p) {
				t.Fatalf("error = %v (%T), want a *client.Problem", err, err)
			}
			var fields []string
			for _, f := range p.Errors {
				fields = append(fields, f.Field)
				if msg, ok := p.Field(f.Field); !ok || msg == "" {
					t.Errorf("Field(%q) = %q, %v, want its message", f.Field, msg, ok)
				}
			}
			if p.Status != tc.status || p.Type != tc.typ || !reflect.DeepEqual(fields, tc.fields) {
				t.Fatalf("Problem = %d %s fields %v, want %d %s fields %v", p.Status, p.Type, fields, tc.status, tc.typ, tc.fields)
			}
			if p.Title == "" || p.Detail == "" || p.RequestID == "" || !strings.Contains(p.Instance, p.RequestID) {
				t.Fatalf("Problem = %+v, want a title, a detail and the request ID", p)
			}
			if !strings.Contains(err.Error(), p.Title) {
				t.Fatalf("Error() = %q, want it to carry the title %q", err.Error(), p.Title)
			}
		})
	}
}

// mistype changes the last character of key (to one it was not: a key
// ending in x stayed valid when every key's x was written over it).
func mistype(key string) string {
	last := "x"
	if strings.HasSuffix(key, last) {
		last = "y"
	}
	return key[:len(key)-1] + last
}

func TestRetryAfter(t *testing.T) {
	c := MustClient(t, MustServer(t, func(c *server.Config) { c.LoginMaxFailures = 1 }))
	MustLogin(t, c, "bob")
	c.Login(ctx, "bob", "wrong password 1")
	_, err := c.Login(ctx, "bob", "wrong password 2")
	var p *client.Problem
	if !errors.As(err, &p) || p.Status != 429 || p.Type != client.TypeTooManyAttempts {
		t.Fatalf("second failed login = %v, want a 429 Problem", err)
	}
	if p.RetryAfter < time.Second || p.RetryAfter > 15*time.Minute {
		t.Fatalf("RetryAfter = %v, want 1s..15m", p.RetryAfter)
	}
}

// recorder remembers which credentials each request carried.
type recorder struct {
	mu   sync.Mutex
	seen map[string]string // "METHOD /path" -> "jwt", "key", "jwt+key" or ""
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var creds []string
	if req.Header.Get("Authorization") != "" {
		creds = append(creds, "jwt")
	}
	if req.Header.Get("X-API-Key") != "" {
		creds = append(creds, "key")
	}
	path := req.URL.Path
	if rest, ok := strings.CutPrefix(path, "/v1/auth/api-keys/"); ok {
		path = "/v1/auth/api-keys/{key_id}"
		if strings.HasSuffix(rest, "/rotate") {
			path += "/rotate"
		}
	}
	r.mu.Lock()
	r.seen[req.Method+" "+path] = strings.Join(creds, "+")
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// TestCredentialsGoOnlyWhereAccepted holds the SDK to sending each
// credential only to the operations that take it, even when both are set.
func TestCredentialsGoOnlyWhereAccepted(t *testing.T) {
	base := MustServer(t)
	rec := &recorder{seen: map[string]string{}}
	c := MustLogin(t, MustClient(t, base), "carol")
	key, err := c.CreateAPIKey(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	both := MustClient(t, base, client.WithHTTPClient(&http.Client{Transport: rec}), client.WithAPIKey(key.RawKey)).UsingToken(mustToken(t, c, "carol"))
	both.RegisterUser(ctx, client.RegisterRequest{Username: "dave", Email: "dave@example.com", Password: "secureP@ss123", FullName: "D"})
	both.Login(ctx, "dave", "secureP@ss123")
	both.ListAPIKeys(ctx)
	k2, err := both.CreateAPIKey(ctx, "k2")
	if err != nil {
		t.Fatalf("CreateAPIKey with both credentials = %v", err)
	}
	k3, err := both.RotateAPIKey(ctx, k2.ID, 0)
	if err != nil {
		t.Fatalf("RotateAPIKey with both credentials = %v", err)
	}
	if err := both.RevokeAPIKey(ctx, k3.ID); err != nil {
		t.Fatalf("RevokeAPIKey with both credentials = %v", err)
	}
	if _, err := both.GetCurrentUser(ctx); err != nil {
		t.Fatalf("GetCurrentUser with both credentials = %v", err)
	}
	if _, err := both.UpdateCurrentUser(ctx, client.WithFullName("C")); err != nil {
		t.Fatalf("UpdateCurrentUser with both credentials = %v", err)
	}
	if _, err := both.ListSecurityEventsPage(ctx, 0, ""); err != nil {
		t.Fatalf("ListSecurityEventsPage with both credentials = %v", err)
	}
	if err := both.ChangePassword(ctx, "secureP@ss123", "an0ther-Secure-passw0rd"); err != nil {
		t.Fatalf("ChangePassword with both credentials = %v", err)
	}
	both = both.UsingToken(mustLoginAs(t, both, "carol", "an0ther-Secure-passw0rd"))
	if err := both.Logout(ctx); err != nil {
		t.Fatalf("Logout with both credentials = %v", err)
	}
	both = both.UsingToken(mustLoginAs(t, both, "carol", "an0ther-Secure-passw0rd"))
	if err := both.DeleteAccount(ctx); err != nil {
		t.Fatalf("DeleteAccount with both credentials = %v", err)
	}
	want := map[string]string{
		"POST /v1/auth/register":                 "",
		"POST /v1/auth/login":                    "",
		"POST /v1/auth/api-keys":                 "jwt",
		"GET /v1/auth/api-keys":                  "jwt",
		"DELETE /v1/auth/api-keys/{key_id}":      "jwt",
		"POST /v1/auth/api-keys/{key_id}/rotate": "jwt",
		"GET /v1/me":                             "key",
		"PATCH /v1/me":                           "key",
		"GET /v1/auth/events":                    "jwt",
		"POST /v1/auth/password":                 "jwt",
		"POST /v1/auth/logout":                   "jwt",
		"DELETE /v1/auth/account":                "jwt",
	}
	if !reflect.DeepEqual(rec.seen, want) {
		t.Fatalf("credentials sent = %v, want %v", rec.seen, want)
	}
}

func mustToken(tb testing.TB, c *client.Client, name string) string {
	tb.Helper()
	return mustLoginAs(tb, c, name, "secureP@ss123")
}

// mustLoginAs logs name in with password and returns the token.
func mustLoginAs(tb testing.TB, c *client.Client, name, password string) string {
	tb.Helper()
	tok, err := c.Login(ctx, name, password)
	if err != nil {
		tb.Fatalf("Login(%q) = %v", name, err)
	}
	return tok.AccessToken
}

// TestNotAProblem covers answers that are not problem documents, as a
// proxy in front of the server may give.
func TestNotAProblem(t *testing.T) {
	for _, tc := range []struct {
		name        string
		status      int
		contentType string
		body        string
		want        client.Problem
	}{
		{"bad gateway page", 502, "text/html", "<h1>Bad Gateway</h1>",
			client.Problem{Status: 502, Type: "about:blank", Title: "Bad Gateway", RetryAfter: 7 * time.Second}},
		{"problem that is not JSON", 500, "application/problem+json", "{",
			client.Problem{Status: 500, Type: "about:blank", Title: "Internal Server Error", RetryAfter: 7 * time.Second}},
		{"success without a body", 200, "text/plain", "",
			client.Problem{Status: 200, Type: "about:blank", Title: "OK", RetryAfter: 7 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer ts.Close()
			_, err := MustClient(t, ts.URL).GetCurrentUser(ctx)
			var p *client.Problem
			if !errors.As(err, &p) {
				t.Fatalf("GetCurrentUser = %v, want a *client.Problem", err)
			}
			got := *p
			got.Detail = "" // says what was unexpected, in words
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Problem = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		url  string
		opts []client.Option
		ok   bool
	}{
		{"http://127.0.0.1:8080", nil, true},
		{"https://auth.example.com/prefix/", nil, true},
		{"127.0.0.1:8080", nil, false},
		{"ftp://example.com", nil, false},
		{"http://", nil, false},
		{"http://127.0.0.1:8080", []client.Option{client.WithHTTPClient(nil)}, false},
	} {
		_, err := client.New(tc.url, tc.opts...)
		if (err == nil) != tc.ok {
			t.Errorf("New(%q) = %v, want ok %v", tc.url, err, tc.ok)
		}
	}
}

// TestTransportError: a server that cannot be reached is no Problem.
func TestTransportError(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	ts.Close()
	_, err := MustClient(t, ts.URL).Login(ctx, "a", "b")
	var p *client.Problem
	if err == nil || errors.As(err, &p) {
		t.Fatalf("Login to a closed server = %v, want a transport error", err)
	}
}
