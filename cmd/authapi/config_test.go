package main

import (
	"bytes"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestEveryFlagHasItsVariable reads -h: each flag's usage names the
// variable that sets it, AUTH_ and the flag's name in capitals.
func TestEveryFlagHasItsVariable(t *testing.T) {
	var out bytes.Buffer
	if _, err := parseConfig("authapi", []string{"-h"}, func(string) string { return "" }, &out); err == nil {
		t.Fatal("parseConfig(-h) = nil error, want flag.ErrHelp")
	}
	flags := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatchIndex(out.String(), -1)
	if len(flags) < 40 {
		t.Fatalf("-h lists %d flags, want every setting:\n%s", len(flags), out.String())
	}
	for i, f := range flags {
		name := out.String()[f[2]:f[3]]
		end := len(out.String())
		if i+1 < len(flags) {
			end = flags[i+1][0]
		}
		if want := "($" + envName(name) + ")"; !strings.Contains(out.String()[f[0]:end], want) {
			t.Errorf("-h: -%s does not name %s", name, want)
		}
	}
}

// TestEnvironmentMerge: every kind of flag is set by its variable, an
// empty variable is no setting, a flag given (even empty) wins over its
// variable, and every bad variable is named.
func TestEnvironmentMerge(t *testing.T) {
	parse := func(args []string, env map[string]string) (*config, error) {
		return parseConfig("authapi", args, func(k string) string { return env[k] }, io.Discard)
	}
	c, err := parse(nil, map[string]string{"AUTH_MIGRATE": "false", "AUTH_MAX_BODY_BYTES": "1000", "AUTH_ARGON2_TIME": "3", "AUTH_TRUSTED_PROXIES": "10.0.0.1", "AUTH_ADDR": ""})
	if err != nil {
		t.Fatal(err)
	}
	if c.Migrate || c.BodyLimit != 1000 || c.Argon2Time != 3 || len(c.TrustedProxies) != 1 || c.Addr != "127.0.0.1:8080" {
		t.Errorf("from the environment: migrate %v, body limit %d, argon2 time %d, proxies %v, addr %q; want false, 1000, 3, one, the default",
			c.Migrate, c.BodyLimit, c.Argon2Time, c.TrustedProxies, c.Addr)
	}

	env := map[string]string{"AUTH_DATABASE_URL": "postgres://db/authapi", "AUTH_JWT_PREVIOUS_SECRETS": "a,b", "AUTH_MIGRATE": "false"}
	c, err = parse([]string{"-database-url=", "-jwt-previous-secrets", "c", "-migrate"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseURL != "" || !slices.Equal(c.JWTPrevious, []string{"c"}) || !c.Migrate {
		t.Errorf("flags over the environment: database URL %q, previous secrets %v, migrate %v; want the flags' \"\", [c], true", c.DatabaseURL, c.JWTPrevious, c.Migrate)
	}

	_, err = parse(nil, map[string]string{"AUTH_TOKEN_TTL": "soon", "AUTH_MIGRATE": "maybe", "AUTH_MAX_BODY_BYTES": "lots"})
	for _, variable := range []string{"AUTH_TOKEN_TTL", "AUTH_MIGRATE", "AUTH_MAX_BODY_BYTES"} {
		if err == nil || !strings.Contains(err.Error(), variable) {
			t.Errorf("parseConfig with three bad variables = %v, want it to name %s", err, variable)
		}
	}
}

// TestUnnamedBoundsFollowTheRateLimit: the per-address bounds without a
// limit of their own in the issues' names follow the named ones to 0,
// as outside checks set them to send a whole suite from one address,
// unless they are set themselves.
func TestUnnamedBoundsFollowTheRateLimit(t *testing.T) {
	for _, tc := range []struct {
		name        string
		env         map[string]string
		concurrency int
		delay       time.Duration
		passwords   int
	}{
		{"defaults", nil, 16, 250 * time.Millisecond, 1},
		{"rate limit off", map[string]string{"AUTH_RATE_LIMIT_PER_ADDRESS": "0", "AUTH_LOGIN_MAX_FAILURES": "0", "AUTH_LOGIN_MAX_FAILURES_PER_ADDRESS": "0"}, 0, 0, 0},
		{"login limit off", map[string]string{"AUTH_LOGIN_MAX_PER_ADDRESS": "0", "AUTH_LOGIN_MAX_FAILURES": "0", "AUTH_LOGIN_MAX_FAILURES_PER_ADDRESS": "0"}, 16, 250 * time.Millisecond, 0},
		// The login throttles' lock in PostgreSQL needs the password checks
		// queued in memory.
		{"rate limit off, a login throttle on", map[string]string{"AUTH_RATE_LIMIT_PER_ADDRESS": "0", "AUTH_LOGIN_MAX_FAILURES": "0", "AUTH_HASH_WORKERS": "3"}, 0, 0, 3},
		{"rate limit off, bounds set", map[string]string{"AUTH_RATE_LIMIT_PER_ADDRESS": "0", "AUTH_CONCURRENCY_PER_ADDRESS": "8", "AUTH_THROTTLE_DELAY": "1s", "AUTH_PASSWORD_CHECKS_PER_ADDRESS": "2"}, 8, time.Second, 2},
		{"rate limit set", map[string]string{"AUTH_RATE_LIMIT_PER_ADDRESS": "50"}, 16, 250 * time.Millisecond, 1},
	} {
		c, err := parseConfig("authapi", nil, func(k string) string { return tc.env[k] }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.ConcurrencyPerAddress != tc.concurrency || c.ThrottleDelay != tc.delay || c.PasswordChecksPerAddress != tc.passwords {
			t.Errorf("%s: concurrency %d, delay %v, password checks %d; want %d, %v, %d", tc.name,
				c.ConcurrencyPerAddress, c.ThrottleDelay, c.PasswordChecksPerAddress, tc.concurrency, tc.delay, tc.passwords)
		}
	}
	c, err := parseConfig("authapi", []string{"-rate-limit-per-address=0", "-concurrency-per-address=4", "-login-max-failures=0", "-login-max-failures-per-address=0"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.ConcurrencyPerAddress != 4 || c.PasswordChecksPerAddress != 0 {
		t.Errorf("flags: concurrency %d, password checks %d; want the flag's 4, and 0 following the rate limit", c.ConcurrencyPerAddress, c.PasswordChecksPerAddress)
	}
}
