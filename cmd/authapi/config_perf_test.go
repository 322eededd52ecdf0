package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestCacheAndLogSettings covers the settings of the credential cache,
// prepared statements and the access log.
func TestCacheAndLogSettings(t *testing.T) {
	d, err := parseConfig("authapi", nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if d.CacheSize != 25000 || d.CacheTTL != time.Minute || d.DatabaseListen != "" || d.DBPrepare != "auto" || d.AccessLog != "all" {
		t.Fatalf("defaults: cache %d %v, listen %q, prepare %q, access log %q", d.CacheSize, d.CacheTTL, d.DatabaseListen, d.DBPrepare, d.AccessLog)
	}
	env := map[string]string{
		"AUTH_DATABASE_LISTEN_URL": "postgres://direct/authapi", "AUTH_CREDENTIAL_CACHE_SIZE": "0",
		"AUTH_CREDENTIAL_CACHE_TTL": "5s", "AUTH_DB_PREPARE": "off", "AUTH_ACCESS_LOG": "events",
	}
	c, err := parseConfig("authapi", nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseListen != env["AUTH_DATABASE_LISTEN_URL"] || c.CacheSize != 0 || c.CacheTTL != 5*time.Second || c.DBPrepare != "off" || c.AccessLog != "events" {
		t.Fatalf("from the environment: %+v", c)
	}
	for _, tc := range []struct{ args, want string }{
		{"-credential-cache-size -1", "credential cache"},
		{"-credential-cache-ttl 0s", "credential cache"},
		{"-db-prepare maybe", "db-prepare"},
		{"-access-log some", "access log"},
	} {
		_, err := parseConfig("authapi", strings.Fields(tc.args), func(string) string { return "" }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseConfig(%q) = %v, want an error about %s", tc.args, err, tc.want)
		}
	}
}
