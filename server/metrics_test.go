package server_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// metricValue returns the value of the sample of name with exactly the
// given labels (in the exposition's order, e.g. `outcome="failed"`) in a
// /metrics page, or -1.
func metricValue(page, name, labels string) float64 {
	sample := name
	if labels != "" {
		sample += "{" + labels + "}"
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindStringSubmatch(page)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("measured")
	key := e.MustCreateKey(u, "k")
	for range 3 {
		e.do(true, "GET", "/v1/me", "", "X-API-Key", key.RawKey)
	}
	e.do(true, "GET", "/v1/me", "", "X-API-Key", otherLast(key.RawKey))
	e.do(true, "GET", "/v1/me", "", "X-API-Key", "rst_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p60IoT2U")
	e.do(true, "POST", "/v1/auth/login", `{"username":"measured","password":"wrong password"}`)
	e.do(true, "POST", "/v1/auth/login", `{"username":"nobody","password":"wrong password"}`)
	e.do(false, "GET", "/no/such/path/"+strconv.Itoa(1), "")
	e.do(false, "BREW", "/v1/me", "")
	// A listing is read from the database until its fill sticks (the key's
	// creation, heard meanwhile, may drop the first), then from the cache.
	lists := 0
	for ; lists < 100 && (lists == 0 || !e.Srv.ListingCached(uuid.MustParse(u.ID))); lists++ {
		e.do(true, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+u.Token)
	}
	for range 2 {
		e.do(true, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+u.Token)
	}

	r := e.do(false, "GET", "/metrics", "")
	if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics = %d %s", r.Status, r.Header.Get("Content-Type"))
	}
	page := string(r.Body)
	for _, tc := range []struct {
		name, labels string
		want         float64 // -2: present, any value
	}{
		{"authapi_http_request_duration_seconds_count", `operation="GET /v1/me",status="200"`, 3},
		{"authapi_http_request_duration_seconds_count", `operation="GET /v1/me",status="401"`, 2},
		{"authapi_http_request_duration_seconds_count", `operation="POST /v1/auth/login",status="200"`, 1},
		{"authapi_http_request_duration_seconds_count", `operation="POST /v1/auth/login",status="401"`, 2},
		{"authapi_http_request_duration_seconds_count", `operation="unmatched",status="404"`, 1},
		{"authapi_http_request_duration_seconds_count", `operation="unmatched",status="405"`, 1},
		{"authapi_http_request_duration_seconds_bucket", `operation="GET /v1/me",status="200",le="+Inf"`, 3},
		{"authapi_logins_total", `outcome="succeeded"`, 1},
		{"authapi_logins_total", `outcome="failed"`, 2},
		{"authapi_logins_total", `outcome="throttled"`, 0},
		{"authapi_api_key_verifications_total", `result="miss"`, 1},
		{"authapi_api_key_verifications_total", `result="hit"`, 2},
		{"authapi_api_key_verifications_total", `result="refused"`, 2},
		{"authapi_password_hash_queue_length", "", 0},
		{"authapi_password_hash_running", "", 0},
		{"authapi_db_pool_max_open_connections", "", 10},
		{"authapi_db_pool_open_connections", "", -2},
		{"authapi_db_pool_in_use_connections", "", -2},
		{"authapi_db_pool_idle_connections", "", -2},
		{"authapi_db_pool_waits_total", "", -2},
		{"authapi_db_pool_wait_seconds_total", "", -2},
		{"authapi_credential_cache_listening", "", 1},
		{"authapi_credential_cache_api_keys", "", 1},
		{"authapi_credential_cache_key_listings", "", 1},
		{"authapi_key_listings_total", `source="database"`, float64(lists)},
		{"authapi_key_listings_total", `source="cache"`, 2},
		{"go_goroutines", "", -2},
	} {
		got := metricValue(page, tc.name, tc.labels)
		if tc.want == -2 && got < 0 || tc.want != -2 && got != tc.want {
			t.Errorf("%s{%s} = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if strings.Contains(page, "/no/such/path") || strings.Contains(page, "BREW") {
		t.Error("a client's path or method became a label value")
	}
}
