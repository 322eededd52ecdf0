package server_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"authapi/server"
)

// mustRetryAfter checks that r is a 429 whose Retry-After is whole seconds
// in (low, high], and returns its detail.
func mustRetryAfter(t *testing.T, what string, r *response, low, high int) string {
	t.Helper()
	retry, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if r.Status != 429 || err != nil || retry <= low || retry > high {
		t.Fatalf("%s = %d, Retry-After %q, want 429 with whole seconds in (%d, %d]\n%s", what, r.Status, r.Header.Get("Retry-After"), low, high, r.Body)
	}
	return r.Problem().Detail
}

// TestLoginThrottlingPerAddress: failures over all usernames from one
// address are capped, counted in the database, so that instances sharing it
// share the budget; other addresses are not affected.
func TestLoginThrottlingPerAddress(t *testing.T) {
	perAddress := options{server: func(c *server.Config) {
		c.LoginMaxFailures, c.LoginMaxFailuresPerAddress = 10, 5
	}}
	a := newEnv(t, trustLoopbackProxy, perAddress)
	b := newEnv(t, trustLoopbackProxy, perAddress, options{dbURL: a.DBURL}) // a second instance
	real := a.MustRegister("sprayed")
	login := func(e *env, from, name, password string) *response {
		return e.do(true, "POST", "/v1/auth/login", fmt.Sprintf(`{"username":%q,"password":%q}`, name, password), "X-Forwarded-For", from)
	}
	// Password spraying: one guess each at five usernames, over two
	// instances, known and unknown alike.
	for i, name := range []string{"sprayed", "nobody1", "nobody2", "nobody3", "nobody4"} {
		e := []*env{a, b}[i%2]
		if r := login(e, "203.0.113.7", name, "Summer2024!"); r.Status != 401 {
			t.Fatalf("guess %d = %d, want 401", i+1, r.Status)
		}
	}
	for _, e := range []*env{a, b} {
		detail := mustRetryAfter(t, "a sixth username from the same address", login(e, "203.0.113.7", "nobody5", "Summer2024!"), 15*60-30, 15*60)
		if !strings.Contains(detail, "from your address") || strings.Contains(detail, "username") {
			t.Fatalf("the per-address 429 says %q, want it to blame the address, not a username", detail)
		}
	}
	if r := login(a, "203.0.113.7", real.Username, real.Password); r.Status != 429 {
		t.Fatalf("the right password from the spraying address = %d, want 429 until the window passes", r.Status)
	}
	if r := login(b, "198.51.100.21", real.Username, real.Password); r.Status != 200 {
		t.Fatalf("the real user from another address = %d %s, want 200", r.Status, r.Body)
	}
	// IPv6 clients are counted per /64: moving within it does not help.
	for i := 0; i < 5; i++ {
		login(a, fmt.Sprintf("2001:db8:1:2::%x", i+1), fmt.Sprintf("v6user%d", i), "guess")
	}
	if r := login(b, "2001:db8:1:2:ffff::1", "v6user9", "guess"); r.Status != 429 {
		t.Fatalf("a sixth guess from the same IPv6 /64 = %d, want 429", r.Status)
	}

	off := newEnv(t, trustLoopbackProxy, options{server: func(c *server.Config) { c.LoginMaxFailures, c.LoginMaxFailuresPerAddress = 10, 0 }})
	for i := 0; i < 8; i++ {
		if r := login(off, "203.0.113.7", fmt.Sprintf("nobody%d", i), "guess"); r.Status != 401 {
			t.Fatalf("guess %d with the per-address limit off = %d, want 401", i+1, r.Status)
		}
	}
}

// TestRegistrationThrottling: attempts per address are capped per hour,
// conflicts included, across instances.
func TestRegistrationThrottling(t *testing.T) {
	limited := options{server: func(c *server.Config) { c.RegisterMaxPerAddress = 3 }}
	a := newEnv(t, trustLoopbackProxy, limited)
	b := newEnv(t, trustLoopbackProxy, limited, options{dbURL: a.DBURL})
	register := func(e *env, from, name string) *response {
		return e.do(true, "POST", "/v1/auth/register", fmt.Sprintf(`{"username":%q,"email":"%s@example.com","password":"secureP@ss123","full_name":"R"}`, name, name), "X-Forwarded-For", from)
	}
	for i, tc := range []struct {
		e    *env
		name string
		want int
	}{{a, "first", 200}, {b, "second", 200}, {a, "FIRST", 409}} {
		if r := register(tc.e, "203.0.113.8", tc.name); r.Status != tc.want {
			t.Fatalf("registration %d (%s) = %d %s, want %d", i+1, tc.name, r.Status, r.Body, tc.want)
		}
	}
	for _, e := range []*env{a, b} {
		detail := mustRetryAfter(t, "a fourth registration within the hour", register(e, "203.0.113.8", "fourth"), 3600-30, 3600)
		if !strings.Contains(detail, "registrations from your address") {
			t.Fatalf("the registration 429 says %q", detail)
		}
	}
	if r := register(b, "198.51.100.22", "fourth"); r.Status != 200 {
		t.Fatalf("a registration from another address = %d %s, want 200", r.Status, r.Body)
	}
	// A refused registration creates nothing.
	if r := a.do(true, "POST", "/v1/auth/login", `{"username":"fourth","password":"secureP@ss123"}`); r.Status != 200 {
		t.Fatalf("login as the user registered from the other address = %d", r.Status)
	}

	off := newEnv(t)
	for i := 0; i < 8; i++ {
		off.MustRegister(fmt.Sprintf("free%d", i))
	}
}
