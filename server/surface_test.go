package server_test

import (
	"net/http"
	"strings"
	"testing"

	"authapi/server"
)

func TestHeaderLimit(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("headers")
	// Just under the limit is served; just over it is a 431 problem, on
	// every route, before any credential is looked at.
	pad := func(total int) string { return strings.Repeat("a", total) }
	if r := e.do(false, "GET", "/healthz", "", "X-Padding", pad(server.DefaultHeaderLimit-300)); r.Status != 200 {
		t.Fatalf("headers under the limit = %d %s, want 200", r.Status, r.Body)
	}
	r := e.do(false, "GET", "/healthz", "", "X-Padding", pad(server.DefaultHeaderLimit))
	if r.Status != 431 || r.Problem().Type != "urn:authapi:problem:headers-too-large" {
		t.Fatalf("headers over the limit = %d %s, want 431 headers-too-large", r.Status, r.Body)
	}
	// Many small headers count as much as one big one. The spec does not
	// list 431 (any route can answer it), so these go around its checks.
	req, _ := http.NewRequest("GET", e.URL+"/v1/auth/api-keys", nil)
	req.Header.Set("Authorization", "Bearer "+u.Token)
	for i := 0; i < 200; i++ {
		req.Header.Add("X-Many", strings.Repeat("b", 50))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 431 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("200 headers of 50 bytes = %d %q, want a 431 problem", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	small := options{server: func(c *server.Config) { c.HeaderLimit = 2048 }}
	if r := newEnv(t, small).do(false, "GET", "/healthz", "", "X-Padding", pad(2100)); r.Status != 431 {
		t.Fatalf("a configured limit of 2048 bytes and 2.1 KB of headers = %d, want 431", r.Status)
	}
}

func TestCORS(t *testing.T) {
	const app = "https://app.example.com"
	preflight := func(e *env, origin string) *response {
		return e.do(false, "OPTIONS", "/v1/auth/api-keys", "", "Origin", origin,
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
	}
	t.Run("off by default", func(t *testing.T) {
		e := newEnv(t)
		for _, r := range []*response{
			e.do(true, "POST", "/v1/auth/login", `{"username":"x","password":"whatever1"}`, "Origin", app),
			preflight(e, app),
		} {
			for name := range r.Header {
				if strings.HasPrefix(name, "Access-Control-") {
					t.Fatalf("CORS off, yet the response carries %s: %q", name, r.Header.Get(name))
				}
			}
		}
	})
	t.Run("listed origins", func(t *testing.T) {
		e := newEnv(t, options{server: func(c *server.Config) { c.CORSOrigins = []string{app, "HTTP://Localhost:5173"} }})
		u := e.MustLogin("browser")
		r := e.do(true, "GET", "/v1/auth/api-keys", "", "Origin", app, "Authorization", "Bearer "+u.Token)
		if r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != app || !strings.Contains(strings.Join(r.Header.Values("Vary"), ","), "Origin") {
			t.Fatalf("a listed origin = %d, Allow-Origin %q, Vary %q; want the origin echoed and Vary: Origin", r.Status, r.Header.Get("Access-Control-Allow-Origin"), r.Header.Values("Vary"))
		}
		if got := r.Header.Get("Access-Control-Allow-Credentials"); got != "" {
			t.Fatalf("Access-Control-Allow-Credentials = %q, want none: credentials travel in headers", got)
		}
		// A browser must be able to read why a call failed.
		r = e.do(true, "GET", "/v1/me", "", "Origin", app)
		expose := strings.ToLower(r.Header.Get("Access-Control-Expose-Headers"))
		if r.Status != 401 || r.Header.Get("Access-Control-Allow-Origin") != app {
			t.Fatalf("a 401 to a listed origin = %d, Allow-Origin %q, want the origin allowed", r.Status, r.Header.Get("Access-Control-Allow-Origin"))
		}
		for _, h := range []string{"www-authenticate", "retry-after", "x-request-id"} {
			if !strings.Contains(expose, h) {
				t.Errorf("Access-Control-Expose-Headers = %q, want it to list %s", expose, h)
			}
		}
		r = preflight(e, app)
		methods, headers := r.Header.Get("Access-Control-Allow-Methods"), strings.ToLower(r.Header.Get("Access-Control-Allow-Headers"))
		if r.Status != 204 || r.Header.Get("Access-Control-Allow-Origin") != app || !strings.Contains(methods, "POST") || !strings.Contains(methods, "DELETE") ||
			!strings.Contains(headers, "authorization") || !strings.Contains(headers, "x-api-key") || r.Header.Get("Access-Control-Max-Age") == "" {
			t.Fatalf("preflight = %d %v, want 204 allowing the origin, POST and DELETE, Authorization and X-API-Key, with a max age", r.Status, r.Header)
		}
		if r := e.do(true, "GET", "/healthz", "", "Origin", "http://localhost:5173"); r.Header.Get("Access-Control-Allow-Origin") != "http://localhost:5173" {
			t.Fatalf("an origin listed in other case = Allow-Origin %q, want it allowed (origins are compared in lower case)", r.Header.Get("Access-Control-Allow-Origin"))
		}
		for _, origin := range []string{"https://evil.example.com", "https://app.example.com.evil.net", "http://app.example.com", "null"} {
			for _, r := range []*response{e.do(true, "GET", "/v1/me", "", "Origin", origin), preflight(e, origin)} {
				if got := r.Header.Get("Access-Control-Allow-Origin"); got != "" {
					t.Fatalf("origin %q: Allow-Origin %q, want none", origin, got)
				}
			}
		}
	})
	t.Run("any origin", func(t *testing.T) {
		e := newEnv(t, options{server: func(c *server.Config) { c.CORSOrigins = []string{"*"} }})
		r := preflight(e, "https://anywhere.example")
		if r.Header.Get("Access-Control-Allow-Origin") != "*" || r.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Fatalf("* = Allow-Origin %q, Allow-Credentials %q; want * and never credentials", r.Header.Get("Access-Control-Allow-Origin"), r.Header.Get("Access-Control-Allow-Credentials"))
		}
	})
	t.Run("bad origin refused at start", func(t *testing.T) {
		for _, o := range []string{"app.example.com", "https://*.example.com", "https://app.example.com/path", "ftp://x"} {
			if _, err := server.NormalizeOrigin(o); err == nil {
				t.Errorf("NormalizeOrigin(%q) = nil error, want a refusal", o)
			}
		}
	})
}
