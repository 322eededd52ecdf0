package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"authapi/server"
	"authapi/server/servertest"
	"authapi/store"
	"authapi/store/storetest"
	"authapi/token"
)

// discardWriter is a ResponseWriter that keeps only the status, so that the
// benchmarks measure the server rather than a recorder.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }

// benchServer is a server on a fresh database with one user, a token and a
// key, logging as in production (JSON, info) to nowhere.
type benchServer struct {
	h          http.Handler
	token, key string
}

func newBenchServer(b *testing.B) *benchServer {
	b.Helper()
	dbURL := storetest.NewURL(b)
	db, err := store.Open(context.Background(), dbURL, store.Options{MaxConns: 10})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	cfg := servertest.Config(b, db, func(tc *token.Config) { tc.CacheSize = 1000 })
	cfg.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	benchConfig(&cfg)
	srv, err := server.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	benchListen(b, srv, dbURL)
	s := &benchServer{h: srv.Handler()}
	s.mustDo(b, 200, "POST", "/v1/auth/register", `{"username":"bench","email":"bench@example.com","password":"secureP@ss123","full_name":"B"}`)
	s.token = s.mustDo(b, 200, "POST", "/v1/auth/login", `{"username":"bench","password":"secureP@ss123"}`)["access_token"].(string)
	s.key = s.mustDo(b, 200, "POST", "/v1/auth/api-keys", `{"name":"k"}`, "Authorization", "Bearer "+s.token)["raw_key"].(string)
	return s
}

func (s *benchServer) request(method, path, body string, header ...string) *http.Request {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, path, r)
	req.RemoteAddr = "127.0.0.1:40000"
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req
}

// mustDo sends one request through a recorder and decodes the JSON answer.
func (s *benchServer) mustDo(tb testing.TB, want int, method, path, body string, header ...string) map[string]any {
	tb.Helper()
	w := &bodyWriter{discardWriter: discardWriter{h: http.Header{}}}
	s.h.ServeHTTP(w, s.request(method, path, body, header...))
	if w.status == 0 {
		w.status = 200
	}
	if w.status != want {
		tb.Fatalf("%s %s = %d %s, want %d", method, path, w.status, w.body.String(), want)
	}
	var m map[string]any
	json.Unmarshal([]byte(w.body.String()), &m)
	return m
}

type bodyWriter struct {
	discardWriter
	body strings.Builder
}

func (w *bodyWriter) Write(p []byte) (int, error) { return w.body.Write(p) }

// BenchmarkRequest measures whole requests through the server's handler,
// in process (no network): the CPU and allocations of each.
func BenchmarkRequest(b *testing.B) {
	s := newBenchServer(b)
	for _, tc := range []struct {
		name         string
		status       int
		method, path string
		body         string
		header       []string
	}{
		{"healthz", 200, "GET", "/healthz", "", nil},
		{"me", 200, "GET", "/v1/me", "", []string{"X-API-Key", s.key}},
		{"verify", 200, "GET", "/v1/auth/verify", "", []string{"X-API-Key", s.key, "X-Forwarded-Method", "POST", "X-Forwarded-Uri", "/v1/me/things?limit=10"}},
		{"list-keys", 200, "GET", "/v1/auth/api-keys", "", []string{"Authorization", "Bearer " + s.token}},
		{"create-key", 200, "POST", "/v1/auth/api-keys", `{"name":"bench"}`, []string{"Authorization", "Bearer " + s.token}},
		{"me-unknown-key-401", 401, "GET", "/v1/me", "", []string{"X-API-Key", "rst_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p60IoT2U"}},
		{"register-invalid-422", 422, "POST", "/v1/auth/register", `{"username":"x","email":"nope","password":"short","full_name":""}`, nil},
	} {
		b.Run(tc.name, func(b *testing.B) {
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				w.status = 200
				s.h.ServeHTTP(w, s.request(tc.method, tc.path, tc.body, tc.header...))
				if w.status != tc.status {
					b.Fatalf("%s %s = %d, want %d", tc.method, tc.path, w.status, tc.status)
				}
			}
		})
	}
}
