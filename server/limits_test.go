package server_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"authapi/apikey"
	"authapi/password"
	"authapi/server"
)

func limits(f func(c *server.Config)) options { return options{server: f} }

// TestRateLimitPerAddress: past its budget an address gets 429 with
// Retry-After before any other work, on every route but the health checks;
// other addresses are not affected.
func TestRateLimitPerAddress(t *testing.T) {
	e := newEnv(t, trustLoopbackProxy, limits(func(c *server.Config) { c.RateLimitPerAddress = 5 }))
	from := func(addr, method, path string) *response {
		return e.do(false, method, path, "", "X-Forwarded-For", addr)
	}
	for i := range 5 {
		if r := from("203.0.113.1", "GET", "/v1/me"); r.Status != 401 {
			t.Fatalf("request %d = %d, want the 401 of a missing key", i+1, r.Status)
		}
	}
	for _, path := range []string{"/v1/me", "/v1/auth/api-keys", "/nowhere", "/openapi.json", "/metrics"} {
		r := from("203.0.113.1", "GET", path)
		if r.Problem().Type != "urn:authapi:problem:rate-limited" {
			t.Fatalf("GET %s past the budget = %d %s, want the rate-limited problem", path, r.Status, r.Body)
		}
		mustRetryAfter(t, "GET "+path+" past the budget", r, 0, 1)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if r := from("203.0.113.1", "GET", path); r.Status != 200 {
			t.Fatalf("GET %s past the budget = %d, want health checks exempt", path, r.Status)
		}
	}
	if r := from("203.0.113.2", "GET", "/v1/me"); r.Status != 401 {
		t.Fatalf("another address = %d, want its own budget", r.Status)
	}
	// IPv6 per /64.
	for i := range 5 {
		from(fmt.Sprintf("2001:db8:5::%x", i+1), "GET", "/healthz?x")
		from(fmt.Sprintf("2001:db8:5::%x", i+1), "GET", "/v1/me")
	}
	if r := from("2001:db8:5::ffff", "GET", "/v1/me"); r.Status != 429 {
		t.Fatalf("a sixth address of one /64 = %d, want 429", r.Status)
	}
}

// TestThrottleDelay: a 429 is answered only after ThrottleDelay, other
// answers at once; a client that hangs up meanwhile is let go.
func TestThrottleDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	e := newEnv(t, trustLoopbackProxy, limits(func(c *server.Config) { c.RateLimitPerAddress = 1; c.ThrottleDelay = delay }))
	timed := func(addr string) (*response, time.Duration) {
		start := time.Now()
		r := e.do(false, "GET", "/v1/me", "", "X-Forwarded-For", addr)
		return r, time.Since(start)
	}
	if r, took := timed("203.0.113.40"); r.Status != 401 || took >= delay {
		t.Fatalf("within the budget = %d after %v, want the 401 of a missing key at once", r.Status, took)
	}
	r, took := timed("203.0.113.40")
	if r.Status != 429 || took < delay {
		t.Fatalf("past the budget = %d after %v, want 429 after at least %v", r.Status, took, delay)
	}
	mustRetryAfter(t, "a held 429", r, 0, 1)

	ctx, cancel := context.WithTimeout(context.Background(), delay/3)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", e.URL+"/v1/me", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Forwarded-For", "203.0.113.40")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a client that gave up after %v got %d", delay/3, resp.StatusCode)
	}
	// The server let it go, as a hang-up (499), not as an answered 429.
	eventually(t, 5*time.Second, 1, func() int {
		return int(metricValue(e.metrics(), "authapi_http_request_duration_seconds_count", `operation="GET /v1/me",status="499"`))
	})
}

// TestPasswordChecksPerAddress: one address's logins hash one at a time
// (PasswordChecksPerAddress 1) however many it sends at once, while
// logins from as many addresses hash side by side.
func TestPasswordChecksPerAddress(t *testing.T) {
	slow, err := password.NewHasher(password.Params{Memory: 32 << 10, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}, password.Pool{Workers: 4, Queue: 64, MaxWait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, trustLoopbackProxy, limits(func(c *server.Config) { c.Hasher = slow; c.PasswordChecksPerAddress = 1 }))
	u := e.MustRegister("oneatatime")
	// mostAtOnce sends 4 logins at once, from the addresses given in turn,
	// and returns the most hashes seen running together meanwhile.
	mostAtOnce := func(addrs ...string) int {
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				r := e.do(true, "POST", "/v1/auth/login", fmt.Sprintf(`{"username":%q,"password":%q}`, u.Username, u.Password), "X-Forwarded-For", addrs[i%len(addrs)])
				if r.Status != 200 {
					t.Errorf("login = %d %s", r.Status, r.Body)
				}
			})
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		most := 0
		for {
			select {
			case <-done:
				return most
			default:
			}
			page := string(e.do(false, "GET", "/metrics", "", "X-Forwarded-For", "203.0.113.99").Body)
			most = max(most, int(metricValue(page, "authapi_password_hash_running", "")))
			time.Sleep(2 * time.Millisecond)
		}
	}
	if n := mostAtOnce("203.0.113.50"); n != 1 {
		t.Fatalf("4 logins from one address: %d hashes at once, want 1", n)
	}
	if n := mostAtOnce("203.0.113.51", "203.0.113.52", "203.0.113.53", "203.0.113.54"); n < 2 {
		t.Fatalf("4 logins from 4 addresses: at most %d hash at once, want them side by side", n)
	}
}

// TestLoginMaxPerAddress: every login attempt counts, successes too.
func TestLoginMaxPerAddress(t *testing.T) {
	e := newEnv(t, trustLoopbackProxy, limits(func(c *server.Config) { c.LoginMaxPerAddress = 3 }))
	u := e.MustRegister("busylogin")
	login := func(addr string) *response {
		return e.do(true, "POST", "/v1/auth/login", fmt.Sprintf(`{"username":%q,"password":%q}`, u.Username, u.Password), "X-Forwarded-For", addr)
	}
	for i := range 3 {
		if r := login("203.0.113.9"); r.Status != 200 {
			t.Fatalf("login %d = %d, want 200", i+1, r.Status)
		}
	}
	r := login("203.0.113.9")
	mustRetryAfter(t, "a fourth successful login", r, 60, 15*60)
	if r.Problem().Type != "urn:authapi:problem:too-many-attempts" {
		t.Fatalf("type = %s", r.Problem().Type)
	}
	if r := login("203.0.113.10"); r.Status != 200 {
		t.Fatalf("another address = %d, want 200", r.Status)
	}
}

// TestAuthFailuresPerAddress: past its failures, an address's credentials
// are answered from the cache only: a guesser's next key costs no lookup
// (429), while a key already verified keeps working.
func TestAuthFailuresPerAddress(t *testing.T) {
	e := newEnv(t, trustLoopbackProxy, limits(func(c *server.Config) { c.AuthFailuresPerAddress = 4 }))
	u, uncached := e.MustLogin("guessed"), e.MustLogin("uncached")
	cached := e.MustCreateKey(u, "cached")
	fresh := e.MustCreateKey(u, "fresh")
	const addr = "203.0.113.20"
	me := func(key string) *response {
		return e.do(true, "GET", "/v1/me", "", "X-API-Key", key, "X-Forwarded-For", addr)
	}
	// Use the key until the cache answers it: a fill can be dropped when a
	// notification arrives during its read.
	for i := 0; ; i++ {
		hits := metricValue(e.metrics(), "authapi_api_key_verifications_total", `result="hit"`)
		if r := me(cached.RawKey); r.Status != 200 {
			t.Fatalf("a good key = %d", r.Status)
		}
		if metricValue(e.metrics(), "authapi_api_key_verifications_total", `result="hit"`) > hits {
			break
		}
		if i == 50 {
			t.Fatal("the key is never answered from the cache")
		}
	}
	guess := func() string {
		k, err := apikey.Generate(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	for i := range 4 {
		if r := me(guess()); r.Status != 401 {
			t.Fatalf("guess %d = %d, want 401", i+1, r.Status)
		}
	}
	misses := metricValue(e.metrics(), "authapi_api_key_verifications_total", `result="miss"`)
	r := me(guess())
	if r.Problem().Type != "urn:authapi:problem:too-many-failures" {
		t.Fatalf("a fifth guess = %d %s, want too-many-failures", r.Status, r.Body)
	}
	mustRetryAfter(t, "a fifth guess", r, 0, 60)
	if r := me(fresh.RawKey); r.Status != 429 {
		t.Fatalf("a good key the cache does not hold = %d, want 429 (no lookup for this address)", r.Status)
	}
	if got := metricValue(e.metrics(), "authapi_api_key_verifications_total", `result="miss"`); got != misses {
		t.Fatalf("lookups past the budget: %v, want none", got-misses)
	}
	if r := me(cached.RawKey); r.Status != 200 {
		t.Fatalf("the cached key from the guessing address = %d, want 200", r.Status)
	}
	if r := e.do(true, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+u.Token, "X-Forwarded-For", addr); r.Status != 200 {
		t.Fatalf("a JWT whose user the cache holds = %d, want 200", r.Status)
	}
	if r := e.do(true, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+uncached.Token, "X-Forwarded-For", addr); r.Status != 429 {
		t.Fatalf("a JWT whose user the cache does not hold = %d, want 429", r.Status)
	}
	if r := e.do(true, "GET", "/v1/me", "", "X-API-Key", guess(), "X-Forwarded-For", "203.0.113.21"); r.Status != 401 {
		t.Fatalf("another address's guess = %d, want 401", r.Status)
	}
}

// TestKeyWritesPerUser: creations, rotations and revocations share one
// budget per user.
func TestKeyWritesPerUser(t *testing.T) {
	e := newEnv(t, limits(func(c *server.Config) { c.KeyWritesPerUser = 3 }))
	u, other := e.MustLogin("writer"), e.MustLogin("otherwriter")
	k := e.MustCreateKey(u, "a")
	if r := e.do(true, "POST", "/v1/auth/api-keys/"+k.ID.String()+"/rotate", "{}", "Authorization", "Bearer "+u.Token); r.Status != 200 {
		t.Fatalf("rotate = %d", r.Status)
	}
	if r := e.do(true, "DELETE", "/v1/auth/api-keys/"+k.ID.String(), "", "Authorization", "Bearer "+u.Token); r.Status != 204 {
		t.Fatalf("revoke = %d", r.Status)
	}
	r := createKey(e, u, `{"name":"b"}`)
	if r.Problem().Type != "urn:authapi:problem:too-many-key-changes" {
		t.Fatalf("a fourth key change = %d %s, want too-many-key-changes", r.Status, r.Body)
	}
	mustRetryAfter(t, "a fourth key change", r, 60, 3600)
	if r := createKey(e, other, `{"name":"b"}`); r.Status != 200 {
		t.Fatalf("another user's key = %d, want 200", r.Status)
	}
	if r := e.do(true, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+u.Token); r.Status != 200 {
		t.Fatalf("a listing past the budget = %d, want reads unaffected", r.Status)
	}
}

// TestOnePasswordCheckAtATimePerAddress: however many logins one address
// sends at once, at most one of its password checks runs at a time, so
// that it can take neither every hashing worker nor the pool.
func TestOnePasswordCheckAtATimePerAddress(t *testing.T) {
	e := newEnv(t, trustLoopbackProxy)
	u := e.MustRegister("serial")
	var most atomic.Int64
	stop := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n := int64(metricValue(e.metrics(), "authapi_password_hash_running", "")); n > most.Load() {
				most.Store(n)
			}
		}
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			body := fmt.Sprintf(`{"username":%q,"password":"wrong password"}`, u.Username)
			if r := e.do(true, "POST", "/v1/auth/login", body, "X-Forwarded-For", "203.0.113.30"); r.Status != 401 {
				t.Errorf("login = %d, want 401", r.Status)
			}
		})
	}
	wg.Wait()
	close(stop)
	watch.Wait()
	if n := most.Load(); n > 1 {
		t.Fatalf("%d password checks of one address ran at once, want 1", n)
	}
}

// TestFailedRequestsAreLoggedInAggregate: a flood of failures from one
// address writes a bounded number of lines, then one summary with the
// count; other addresses keep their own lines.
func TestFailedRequestsAreLoggedInAggregate(t *testing.T) {
	e := newEnv(t, trustLoopbackProxy)
	const flood = 200
	for range flood {
		e.do(false, "GET", "/v1/me", "", "X-API-Key", "rst_nope", "X-Forwarded-For", "203.0.113.40")
	}
	e.do(false, "GET", "/v1/me", "", "X-Forwarded-For", "203.0.113.41")
	e.Srv.FlushLogSummaries()
	lines, summarised, other := 0, 0, 0
	for _, l := range strings.Split(strings.TrimSpace(e.Logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		switch {
		case m["msg"] == "request" && m["client"] == "203.0.113.40":
			lines++
		case m["event"] == "requests_not_logged" && m["client"] == "203.0.113.40":
			summarised += int(m["count"].(float64))
		case m["msg"] == "request" && m["client"] == "203.0.113.41":
			other++
		}
	}
	if lines > 25 || lines+summarised != flood || other != 1 {
		t.Fatalf("%d failed requests: %d lines and %d summed up, other address %d lines; want at most 25 lines, the rest summed up, and the other's line",
			flood, lines, summarised, other)
	}
}

// TestClientHangUpIsNotAServerError: a client that goes away mid-request
// is logged and counted as 499, not as a 500.
func TestClientHangUpIsNotAServerError(t *testing.T) {
	// A costly hash, so that the login is still running when the client
	// gives up.
	slow, err := password.NewHasher(password.Params{Memory: 64 << 10, Time: 3, Threads: 1, SaltLen: 16, KeyLen: 32}, password.DefaultPool)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, limits(func(c *server.Config) { c.Hasher = slow }))
	u := e.MustRegister("hangup")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	body := fmt.Sprintf(`{"username":%q,"password":%q}`, u.Username, u.Password)
	req, _ := http.NewRequestWithContext(ctx, "POST", e.URL+"/v1/auth/login", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the login finished before the client gave up")
	}
	eventually(t, 5*time.Second, 1, func() int {
		return int(metricValue(e.metrics(), "authapi_http_request_duration_seconds_count", `operation="POST /v1/auth/login",status="499"`))
	})
	if got := metricValue(e.metrics(), "authapi_http_request_duration_seconds_count", `operation="POST /v1/auth/login",status="500"`); got > 0 {
		t.Fatalf("%v logins counted as 500", got)
	}
	if strings.Contains(e.Logs.String(), `"level":"ERROR"`) {
		t.Fatalf("a hang-up was logged as an error:\n%s", e.Logs.String())
	}
}

// metrics returns the /metrics page.
func (e *env) metrics() string {
	e.t.Helper()
	return string(e.do(false, "GET", "/metrics", "").Body)
}

// TestAuthFailuresHoldUnderConcurrency: a lookup holds one of the address's
// failures while it runs, so that concurrent guesses cannot look up more
// keys than the budget has left (checking the budget before a lookup and
// counting the failure after let 1,214 lookups through a budget of 133).
func TestAuthFailuresHoldUnderConcurrency(t *testing.T) {
	e := newEnv(t, trustLoopbackProxy, limits(func(c *server.Config) { c.AuthFailuresPerAddress = 5 }))
	const n = 60
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k, err := apikey.Generate(rand.Reader)
			if err != nil {
				t.Error(err)
				return
			}
			codes[i] = e.do(true, "GET", "/v1/me", "", "X-API-Key", k, "X-Forwarded-For", "203.0.113.22").Status
		})
	}
	wg.Wait()
	count := map[int]int{}
	for _, c := range codes {
		count[c]++
	}
	if count[401] > 5 || count[401]+count[429] != n {
		t.Fatalf("%d concurrent unknown keys with a budget of 5 failures: %v, want at most 5 looked up (401), the rest 429", n, count)
	}
}
