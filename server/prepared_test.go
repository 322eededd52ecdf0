package server_test

import (
	"testing"

	"authapi/store/storetest"
)

// TestPreparedReads walks the reads that use prepared statements (key
// check, JWT user check, listing) with them on and the cache bypassed, so
// that every request reaches the database. Prepared statements need
// sessions: never through a transaction pooler (make test-pgbouncer).
func TestPreparedReads(t *testing.T) {
	e := newEnv(t, options{prepare: true, dbURL: storetest.DirectURL(storetest.NewURL(t))})
	u := e.MustLogin("prepared")
	key := e.MustCreateKey(u, "k")
	for i := range 3 {
		e.Srv.FlushCache()
		if r := e.do(true, "GET", "/v1/me", "", "X-API-Key", key.RawKey); r.Status != 200 || r.JSON["username"] != "prepared" {
			t.Fatalf("GET /v1/me #%d = %d %s", i, r.Status, r.Body)
		}
		if r := e.do(true, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+u.Token); r.Status != 200 || len(r.Body) < 10 {
			t.Fatalf("GET /v1/auth/api-keys #%d = %d %s", i, r.Status, r.Body)
		}
	}
	e.do(true, "DELETE", "/v1/auth/api-keys/"+key.ID.String(), "", "Authorization", "Bearer "+u.Token)
	e.Srv.FlushCache()
	if r := e.do(true, "GET", "/v1/me", "", "X-API-Key", key.RawKey); r.Status != 401 {
		t.Fatalf("GET /v1/me with the revoked key = %d, want 401", r.Status)
	}
	if r := e.do(true, "GET", "/v1/me", "", "X-API-Key", "rst_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p60IoT2U"); r.Status != 401 {
		t.Fatalf("GET /v1/me with an unknown key = %d, want 401", r.Status)
	}
}
