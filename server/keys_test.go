package server_test

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"testing"

	"authapi/apikey"
	"authapi/server"
)

// TestKeyDigestNeedsThePepper: the database holds neither the raw key nor
// a digest anyone can compute from it without the pepper, so a dump alone
// cannot confirm a leaked key; an instance with another pepper refuses it.
func TestKeyDigestNeedsThePepper(t *testing.T) {
	e := newEnv(t)
	key := e.MustCreateKey(e.MustLogin("peppered"), "k")
	db, err := sql.Open("postgres", e.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var row []byte
	if err := db.QueryRow(`SELECT convert_to(api_keys::text, 'UTF8') FROM api_keys WHERE id = $1`, key.ID).Scan(&row); err != nil {
		t.Fatal(err)
	}
	var digest []byte
	if err := db.QueryRow(`SELECT digest FROM api_keys WHERE id = $1`, key.ID).Scan(&digest); err != nil {
		t.Fatal(err)
	}
	plain := sha256.Sum256([]byte(key.RawKey))
	if bytes.Contains(row, []byte(key.RawKey[8:])) || bytes.Equal(digest, plain[:]) {
		t.Fatalf("the stored row %q holds the key or its plain SHA-256", row)
	}
	other := newEnv(t, options{dbURL: e.DBURL, server: func(c *server.Config) {
		c.Keys = apikey.NewDigester([]byte("a different pepper, 32 bytes!!!!"))
	}})
	if r := other.do(true, "GET", "/v1/me", "", "X-API-Key", key.RawKey); r.Status != 401 {
		t.Fatalf("the key on an instance with another pepper = %d, want 401", r.Status)
	}
	if r := e.do(true, "GET", "/v1/me", "", "X-API-Key", key.RawKey); r.Status != 200 {
		t.Fatalf("the key on its own instance = %d, want 200", r.Status)
	}
}
