package server_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// attrURL finds the URLs a page loads or links to.
var attrURL = regexp.MustCompile(`(?i)\b(?:src|href)\s*=\s*"([^"]*)"`)

// TestDocsPortal checks the portal page and everything it loads come from
// the server itself, under a Content-Security-Policy that allows nothing
// else. The browser test (make test-docs) drives the page itself.
func TestDocsPortal(t *testing.T) {
	e := newEnv(t)
	page := e.do(false, http.MethodGet, "/docs", "")
	if page.Status != 200 || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs = %d %q, want 200 HTML", page.Status, page.Header.Get("Content-Type"))
	}
	csp := page.Header.Get("Content-Security-Policy")
	for _, directive := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, directive) {
			t.Errorf("GET /docs Content-Security-Policy = %q, want %q in it", csp, directive)
		}
	}
	if strings.Contains(csp, "unsafe-") {
		t.Errorf("GET /docs Content-Security-Policy = %q allows unsafe sources", csp)
	}
	html := string(page.Body)
	for _, want := range []string{"JWT set", "Key set", "No credentials set"} {
		if !strings.Contains(html, want) {
			t.Errorf("GET /docs has no %q", want)
		}
	}
	if strings.Contains(html, "<script>") || strings.Contains(html, " style=") {
		t.Errorf("GET /docs has inline script or style, which the CSP refuses")
	}

	types := map[string]string{".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
	urls := attrURL.FindAllStringSubmatch(html, -1)
	if len(urls) < 5 {
		t.Fatalf("GET /docs links %d URLs, want at least Swagger UI's and the portal's scripts and styles", len(urls))
	}
	for _, m := range urls {
		u := m[1]
		if !strings.HasPrefix(u, "/") || strings.HasPrefix(u, "//") {
			t.Errorf("GET /docs links %q, want a path on this server", u)
			continue
		}
		r := e.do(false, http.MethodGet, u, "")
		if r.Status != 200 || len(r.Body) == 0 {
			t.Errorf("GET %s (linked from /docs) = %d, %d bytes", u, r.Status, len(r.Body))
			continue
		}
		for ext, ct := range types {
			if strings.HasSuffix(u, ext) && !strings.HasPrefix(r.Header.Get("Content-Type"), ct) {
				t.Errorf("GET %s Content-Type = %q, want %s", u, r.Header.Get("Content-Type"), ct)
			}
		}
		if strings.HasPrefix(u, "/docs/") && r.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s has no Content-Security-Policy", u)
		}
	}
}

func TestDocsRoutes(t *testing.T) {
	e := newEnv(t)
	e.HTTP.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	bundle := e.do(false, http.MethodGet, "/docs/assets/swagger-ui-bundle.js", "")
	if bundle.Status != 200 || len(bundle.Body) < 100_000 {
		t.Fatalf("GET swagger-ui-bundle.js = %d, %d bytes, want 200 and Swagger UI", bundle.Status, len(bundle.Body))
	}
	etag := bundle.Header.Get("ETag")
	for _, tc := range []struct {
		path     string
		header   []string
		status   int
		location string
	}{
		{"/docs/assets/swagger-ui-bundle.js", []string{"If-None-Match", etag}, 304, ""},
		{"/docs/assets/swagger-ui-bundle.js", []string{"If-None-Match", `"other"`}, 200, ""},
		{"/docs/", nil, 301, "/docs"},
		{"/docs/assets/swagger-ui-bundle.js.map", nil, 404, ""},
		{"/docs/assets/index.html", nil, 404, ""},
		{"/docs/docsui/index.html", nil, 404, ""},
		{"/docs/../openapi.yaml", nil, 404, ""},
		{"/docsx", nil, 404, ""},
	} {
		r := e.do(false, http.MethodGet, tc.path, "", tc.header...)
		if r.Status != tc.status || r.Header.Get("Location") != tc.location {
			t.Errorf("GET %s %v = %d (Location %q), want %d (Location %q)", tc.path, tc.header, r.Status, r.Header.Get("Location"), tc.status, tc.location)
		}
	}
}
