package server_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"authapi/pglocal"
	"authapi/store"
)

// TestDatabaseOutage stops the database under a running server: every
// request that needs it fails fast with 503 and Retry-After, /readyz says so
// and /healthz does not, and when the database is back the server recovers
// by itself with nothing lost.
func TestDatabaseOutage(t *testing.T) {
	// The socket folder must be reachable by PostgreSQL's user, which
	// t.TempDir's (0700, root's) is not.
	sockDir, err := os.MkdirTemp("", "authapi-sock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	dataDir := filepath.Join(t.TempDir(), "pg")
	start := func() *pglocal.Server {
		t.Helper()
		pg, err := pglocal.Start(ctx, pglocal.Config{Dir: dataDir, SocketDir: sockDir, Database: "authapi", Ephemeral: true})
		if err != nil {
			t.Fatalf("pglocal.Start = %v", err)
		}
		t.Cleanup(func() { pg.Stop(context.Background()) })
		return pg
	}
	pg := start()
	db, err := store.Open(ctx, pg.URL("authapi"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close()

	e := newEnv(t, options{dbURL: pg.URL("authapi"), dbWait: 2 * time.Second})
	u := e.MustLogin("outage")
	key := e.MustCreateKey(u, "k")
	if err := pg.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/v1/auth/register", `{"username":"during","email":"during@example.com","password":"secureP@ss123","full_name":"D"}`},
		{"POST", "/v1/auth/login", `{"username":"outage","password":"` + u.Password + `"}`},
		{"POST", "/v1/auth/api-keys", `{"name":"k2"}`},
		{"GET", "/v1/auth/api-keys", ""},
		{"DELETE", "/v1/auth/api-keys/" + key.ID.String(), ""},
		{"GET", "/v1/me", ""},
		{"GET", "/readyz", ""},
	} {
		start := time.Now()
		r := e.do(true, tc.method, tc.path, tc.body, "Authorization", "Bearer "+u.Token, "X-API-Key", key.RawKey)
		took := time.Since(start)
		retry, _ := strconv.Atoi(r.Header.Get("Retry-After"))
		if r.Status != http.StatusServiceUnavailable || r.Problem().Type != "urn:authapi:problem:unavailable" || retry < 1 {
			t.Errorf("%s %s with the database down = %d %s (Retry-After %q), want 503", tc.method, tc.path, r.Status, r.Body, r.Header.Get("Retry-After"))
		}
		if took > 3*time.Second {
			t.Errorf("%s %s took %v with the database down, want a fast failure", tc.method, tc.path, took)
		}
	}
	if r := e.do(false, "GET", "/healthz", ""); r.Status != 200 {
		t.Errorf("/healthz with the database down = %d, want 200: the process is alive", r.Status)
	}

	start()
	deadline := time.Now().Add(15 * time.Second)
	for e.do(false, "GET", "/readyz", "").Status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("the server did not recover within 15s of the database coming back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := e.do(true, "GET", "/v1/me", "", "X-API-Key", key.RawKey); r.Status != 200 {
		t.Fatalf("the key after recovery = %d %s, want 200", r.Status, r.Body)
	}
	if r := e.do(true, "POST", "/v1/auth/login", `{"username":"outage","password":"`+u.Password+`"}`); r.Status != 200 {
		t.Fatalf("login after recovery = %d %s, want 200", r.Status, r.Body)
	}
}
