package server

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/lib/pq"

	"authapi/credcache"
	"authapi/gen"
	"authapi/store"
)

// BenchmarkValidate runs the spec's validation of a valid registration, the
// largest body, without the handler behind it.
func BenchmarkValidate(b *testing.B) {
	spec, err := gen.GetSwagger()
	if err != nil {
		b.Fatal(err)
	}
	v, err := newValidator(spec, func(context.Context, *openapi3filter.AuthenticationInput) error { return nil }, DefaultBodyLimit)
	if err != nil {
		b.Fatal(err)
	}
	e := echo.New()
	h := v.middleware(http.MethodPost, "/v1/auth/register", spec.Paths.Find("/v1/auth/register"))(func(echo.Context) error { return nil })
	const body = `{"username":"hershel","email":"hershel@example.com","password":"secureP@ss123","full_name":"Hershel Moshkovitz"}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/auth/register", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if err := h(e.NewContext(req, httptest.NewRecorder())); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProblem renders a 401 problem with its challenge, the most
// frequent error.
func BenchmarkProblem(b *testing.B) {
	s := &Server{cfg: Config{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), BodyLimit: DefaultBodyLimit}}
	e := echo.New()
	req := httptest.NewRequest(http.MethodGet, "/v1/me", nil)
	req = req.WithContext(context.WithValue(req.Context(), infoKey{}, &requestInfo{id: "0123456789abcdef0123456789abcdef"}))
	fail := &authFailure{scheme: schemeAPIKey, sent: true, reason: "unknown", detail: "The API key is not recognised or has been revoked."}
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		s.handleError(fail.problem(), e.NewContext(req, rec))
		if rec.Code != http.StatusUnauthorized {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// BenchmarkMetricsObserve is what /metrics costs a request.
func BenchmarkMetricsObserve(b *testing.B) {
	m := newMetrics(&Server{cache: credcache.New[*keyEntry](0, time.Minute)})
	e := echo.New()
	e.GET("/v1/me", func(echo.Context) error { return nil })
	m.knowRoutes(e)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.observe(http.MethodGet, "/v1/me", 200, 300*time.Microsecond, "")
		}
	})
}

// BenchmarkCredCacheMemory reports the heap a cached API key takes, for
// sizing AUTH_CREDENTIAL_CACHE_SIZE: entries as a fill after a miss makes
// them (a user's fields scanned from the database, two scopes, the
// encoded GET /v1/me body), in a full cache of 10,000.
func BenchmarkCredCacheMemory(b *testing.B) {
	const n = 10000
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c := credcache.New[*keyEntry](n, time.Minute)
		c.Listening(true)
		for i := range n {
			name := fmt.Sprintf("user%06d", i)
			owner := store.KeyOwner{KeyID: uuid.New(), Scopes: pq.StringArray{strings.Clone("me:read"), strings.Clone("me:write")},
				User: store.User{ID: uuid.New(), Username: name, Email: name + "@example.com", FullName: fmt.Sprintf("Full Name %06d", i), CreatedAt: time.Now()}}
			me, err := json.Marshal(userBody(&owner.User))
			if err != nil {
				b.Fatal(err)
			}
			var d [32]byte
			binary.BigEndian.PutUint64(d[:], uint64(i))
			_, _, epoch := c.Key(d)
			c.PutKey(d, owner.User.ID, &keyEntry{owner: owner, me: append(me, '\n')}, epoch)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if got := c.Stats().Keys; got != n {
			b.Fatalf("%d keys cached, want %d", got, n)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/key")
		runtime.KeepAlive(c)
	}
}
