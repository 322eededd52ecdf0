// Package servertest builds servers for tests: the server, SDK and
// benchmark suites share its credentials and cheap hashing.
package servertest

import (
	"testing"
	"time"

	"authapi/apikey"
	"authapi/password"
	"authapi/server"
	"authapi/store"
	"authapi/token"
)

// The secrets of every test server (never of a real one).
var (
	JWTSecret = []byte("0123456789abcdef0123456789abcdef")
	Pepper    = []byte("pepper pepper pepper pepper 32b!")
)

// Cheap argon2id parameters keep the suites fast; the code path is the same.
var Cheap = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// Config returns the configuration of a server on db: a cheap hasher,
// access tokens signed with JWTSecret (tokens, if not nil, adjusts their
// configuration) and API keys digested under Pepper. The rest is left to
// the caller.
func Config(tb testing.TB, db *store.DB, tokens func(*token.Config)) server.Config {
	tb.Helper()
	hasher, err := password.NewHasher(Cheap, password.DefaultPool)
	if err != nil {
		tb.Fatal(err)
	}
	tcfg := token.Config{Secret: JWTSecret, Issuer: "authapi", Audience: "authapi", TTL: time.Hour, Leeway: 5 * time.Second}
	if tokens != nil {
		tokens(&tcfg)
	}
	ts, err := token.New(tcfg)
	if err != nil {
		tb.Fatal(err)
	}
	return server.Config{Store: db, Hasher: hasher, Tokens: ts, Keys: apikey.NewDigester(Pepper)}
}
