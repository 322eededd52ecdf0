package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"authapi/apikey"
	"authapi/server"
)

// verify calls GET /v1/auth/verify for a forwarded request, with header
// pairs added (an empty value removes the header).
func (e *env) verify(key, method, target string, header ...string) *response {
	e.t.Helper()
	h := []string{"X-Forwarded-Method", method, "X-Forwarded-Uri", target}
	if key != "" {
		h = append(h, "X-API-Key", key)
	}
	return e.do(true, "GET", "/v1/auth/verify", "", append(h, header...)...)
}

// metricsPage returns the server's /metrics.
func (e *env) metricsPage() string {
	e.t.Helper()
	resp, err := http.Get(e.URL + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// keyChecks are the API key verification counters, by result.
func (e *env) keyChecks() map[string]float64 {
	page := e.metricsPage()
	out := map[string]float64{}
	for _, r := range []string{"hit", "miss", "refused"} {
		out[r] = metricValue(page, "authapi_api_key_verifications_total", `result="`+r+`"`)
	}
	return out
}

// mustCacheKey uses key until a use is answered from the credential cache
// (a fill is dropped when a change is heard meanwhile, such as another
// key's creation).
func (e *env) mustCacheKey(key string) {
	e.t.Helper()
	for range 100 {
		before := e.keyChecks()["hit"]
		if r := e.me(key); r.Status != 200 && r.Status != 403 {
			e.t.Fatalf("GET /v1/me = %d %s", r.Status, r.Body)
		}
		if e.keyChecks()["hit"] > before {
			return
		}
		time.Sleep(time.Millisecond)
	}
	e.t.Fatal("no use of the key was answered from the cache")
}

// TestVerifyRefusesAsMe holds the verify endpoint to GET /v1/me's answer
// for the same key, field by field: status, problem (but its request ID
// and instance), challenge, the log line's event, reason and user, and the
// key check counters.
func TestVerifyRefusesAsMe(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("gatekept")
	key := func(body string) string {
		r := createKey(e, u, body)
		if r.Status != 200 {
			t.Fatalf("create key %s = %d %s", body, r.Status, r.Body)
		}
		return r.JSON["raw_key"].(string)
	}
	good := key(`{"name":"good"}`)
	writeOnly := key(`{"name":"write","scopes":["me:write"]}`)
	expiring := key(fmt.Sprintf(`{"name":"expiring","expires_at":%q}`, e.Clock.Now().Add(time.Minute).UTC().Format(time.RFC3339)))
	revoked := createKey(e, u, `{"name":"revoked"}`)
	if r := e.do(true, "DELETE", "/v1/auth/api-keys/"+revoked.JSON["id"].(string), "", "Authorization", "Bearer "+u.Token); r.Status != 204 {
		t.Fatalf("revoke = %d", r.Status)
	}
	// Each key is cached before the comparison, so that both requests
	// find the credential cache in the same state.
	for _, k := range []string{good, writeOnly, expiring} {
		e.mustCacheKey(k)
	}
	e.Clock.Add(2 * time.Minute)

	n := 0
	for _, tc := range []struct {
		name, key string
		status    int
	}{
		{"no key", "", 401},
		{"malformed key", "rst_short", 401},
		{"unknown key", "rst_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p60IoT2U", 401},
		{"mistyped key", otherLast(good), 401},
		{"revoked key", revoked.JSON["raw_key"].(string), 401},
		{"expired key", expiring, 401},
		{"key without me:read", writeOnly, 403},
		{"good key", good, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var answers [2]*response
			var checks [2]map[string]float64
			var ids [2]string
			for i, path := range []string{"/v1/me", "/v1/auth/verify"} {
				n++
				ids[i] = "verify-as-me-" + strconv.Itoa(n)
				h := []string{"X-Request-ID", ids[i], "X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/v1/me"}
				if tc.key != "" {
					h = append(h, "X-API-Key", tc.key)
				}
				before := e.keyChecks()
				answers[i] = e.do(path != "/v1/me", "GET", path, "", h...)
				checks[i] = e.keyChecks()
				for r, v := range checks[i] {
					checks[i][r] = v - before[r]
				}
			}
			me, v := answers[0], answers[1]
			if me.Status != tc.status || v.Status != tc.status {
				t.Fatalf("GET /v1/me = %d, verify = %d, want %d both (%s / %s)", me.Status, v.Status, tc.status, me.Body, v.Body)
			}
			for _, h := range []string{"Content-Type", "WWW-Authenticate", "Cache-Control"} {
				if me.Header.Get(h) != v.Header.Get(h) && (h != "Content-Type" || tc.status != 200) { // a 200 has no body
					t.Errorf("%s: GET /v1/me %q, verify %q", h, me.Header.Get(h), v.Header.Get(h))
				}
			}
			if tc.status != 200 {
				mp, vp := me.Problem(), v.Problem()
				mp.Instance, mp.RequestID, vp.Instance, vp.RequestID = nil, nil, nil, nil
				mj, _ := json.Marshal(mp)
				vj, _ := json.Marshal(vp)
				if string(mj) != string(vj) {
					t.Errorf("problem: GET /v1/me %s, verify %s", mj, vj)
				}
			}
			if fmt.Sprint(checks[0]) != fmt.Sprint(checks[1]) {
				t.Errorf("key checks counted: GET /v1/me %v, verify %v", checks[0], checks[1])
			}
			lines := requestLines(t, e.Logs.String())
			for _, f := range []string{"event", "reason", "user_id", "status"} {
				if a, b := lines[ids[0]][f], lines[ids[1]][f]; fmt.Sprint(a) != fmt.Sprint(b) {
					t.Errorf("log %s: GET /v1/me %v, verify %v", f, a, b)
				}
			}
		})
	}
}

func TestVerifyForwardedRequest(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("forwarder")
	keys := map[string]string{}
	ids := map[string]string{}
	for name, body := range map[string]string{
		"read":  `{"name":"r","scopes":["me:read"]}`,
		"write": `{"name":"w","scopes":["me:write"]}`,
		"both":  `{"name":"b","scopes":["me:write","me:read"]}`,
	} {
		r := createKey(e, u, body)
		if r.Status != 200 {
			t.Fatalf("create %s = %d %s", body, r.Status, r.Body)
		}
		keys[name], ids[name] = r.JSON["raw_key"].(string), r.JSON["id"].(string)
	}
	const pathNotAllowed = "urn:authapi:problem:path-not-allowed"
	for _, tc := range []struct {
		key, method, target string
		status              int
		missing             string // the scope a 403 names, or "" for a path refusal
	}{
		{"read", "GET", "/v1/me", 200, ""},
		{"read", "GET", "/v1/me/things?limit=10", 200, ""},
		{"read", "HEAD", "/v1/me/things", 200, ""},
		{"read", "OPTIONS", "/v1/me/things", 200, ""},
		{"read", "POST", "/v1/me/things", 403, "me:write"},
		{"read", "PUT", "/v1/me/things/1", 403, "me:write"},
		{"read", "DELETE", "/v1/me/things/1", 403, "me:write"},
		{"read", "get", "/v1/me/things", 403, "me:write"}, // methods are case-sensitive
		{"read", "TRACE", "/v1/me/things", 403, "me:write"},
		{"write", "POST", "/v1/me/things", 200, ""},
		{"write", "PATCH", "/v1/me/things/1", 200, ""},
		{"write", "GET", "/v1/me/things", 403, "me:read"},
		{"both", "GET", "/v1/me/things", 200, ""},
		{"both", "DELETE", "/v1/me/things/1", 200, ""},
		{"both", "GET", "/v1/auth/api-keys", 403, ""},
		{"both", "GET", "/v1/me/../admin", 403, ""},
		{"both", "GET", "/v1/me%2f..%2fadmin", 403, ""},
		{"both", "GET", "//v1/me", 403, ""},
		{"both", "GET", "/v1/meow", 403, ""},
		{"both", "GET", "/admin?next=/v1/me/", 403, ""},
		{"both", "GET", "http://example.com/v1/me", 403, ""},
		// The path is judged before the scope: a read-only key asking to
		// write outside /v1/me hears about the path.
		{"read", "POST", "/v1/auth/api-keys", 403, ""},
	} {
		name := tc.key + " " + tc.method + " " + tc.target
		r := e.verify(keys[tc.key], tc.method, tc.target)
		if r.Status != tc.status {
			t.Errorf("%s = %d %s, want %d", name, r.Status, r.Body, tc.status)
			continue
		}
		switch {
		case tc.status == 200:
			scopes := map[string]string{"read": "me:read", "write": "me:write", "both": "me:read me:write"}[tc.key]
			for h, want := range map[string]string{"X-Authapi-User-Id": u.ID, "X-Authapi-Username": "forwarder", "X-Authapi-Key-Id": ids[tc.key], "X-Authapi-Scopes": scopes} {
				if got := r.Header.Values(h); len(got) != 1 || got[0] != want {
					t.Errorf("%s: %s = %q, want %q", name, h, got, want)
				}
			}
			if len(r.Body) != 0 || r.Header.Get("Content-Type") != "" {
				t.Errorf("%s: a body (%q, %q), want none", name, r.Header.Get("Content-Type"), r.Body)
			}
		case tc.missing != "":
			want := `APIKey realm="authapi", header="X-API-Key", error="insufficient_scope", scope="` + tc.missing + `"`
			if p := r.Problem(); p.Type != "urn:authapi:problem:insufficient-scope" || !strings.Contains(p.Detail, tc.missing) || r.Header.Get("WWW-Authenticate") != want {
				t.Errorf("%s = %s %q, want insufficient-scope naming %s, challenge %q", name, r.Body, r.Header.Get("WWW-Authenticate"), tc.missing, want)
			}
		default:
			if p := r.Problem(); p.Type != pathNotAllowed || r.Header.Get("WWW-Authenticate") != "" {
				t.Errorf("%s = %s %q, want %s without a challenge", name, r.Body, r.Header.Get("WWW-Authenticate"), pathNotAllowed)
			}
		}
		if tc.status != 200 && r.Header.Get("X-Authapi-User-Id") != "" {
			t.Errorf("%s: a refusal names the user", name)
		}
	}
}

// TestVerifyForwardedHeaders: the forwarded method and target are a
// gateway's to send, under either name, once; anything else is a 422
// naming the header, after the key is judged.
func TestVerifyForwardedHeaders(t *testing.T) {
	// Headers large enough for a target beyond the spec's bound.
	e := newEnv(t, options{server: func(c *server.Config) { c.HeaderLimit = 32 << 10 }})
	u := e.MustLogin("headers")
	key := e.MustCreateKey(u, "k").RawKey
	long := "/v1/me/" + strings.Repeat("x", 8192)
	for _, tc := range []struct {
		name   string
		header []string // after X-API-Key
		status int
		fields string // of a 422, comma-separated
		onSpec bool
	}{
		{"forwarded names", []string{"X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/v1/me"}, 200, "", true},
		{"original names", []string{"X-Original-Method", "GET", "X-Original-URI", "/v1/me"}, 200, "", true},
		{"both names, equal", []string{"X-Forwarded-Method", "GET", "X-Original-Method", "GET", "X-Forwarded-Uri", "/v1/me", "X-Original-URI", "/v1/me"}, 200, "", true},
		{"mixed names", []string{"X-Original-Method", "GET", "X-Forwarded-Uri", "/v1/me"}, 200, "", true},
		{"no method", []string{"X-Forwarded-Uri", "/v1/me"}, 422, "X-Forwarded-Method", true},
		{"no target", []string{"X-Forwarded-Method", "GET"}, 422, "X-Forwarded-Uri", true},
		{"nothing", nil, 422, "X-Forwarded-Method,X-Forwarded-Uri", true},
		{"methods differ", []string{"X-Forwarded-Method", "POST", "X-Original-Method", "GET", "X-Forwarded-Uri", "/v1/me"}, 422, "X-Original-Method", true},
		{"targets differ", []string{"X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/v1/me", "X-Original-URI", "/admin"}, 422, "X-Original-URI", true},
		{"method twice", []string{"X-Forwarded-Method", "GET", "X-Forwarded-Method", "POST", "X-Forwarded-Uri", "/v1/me"}, 422, "X-Forwarded-Method", false},
		{"target twice", []string{"X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/v1/me", "X-Forwarded-Uri", "/admin"}, 422, "X-Forwarded-Uri", false},
		{"method not a token", []string{"X-Forwarded-Method", "G(ET", "X-Forwarded-Uri", "/v1/me"}, 422, "X-Forwarded-Method", false},
		{"target too long", []string{"X-Forwarded-Method", "GET", "X-Forwarded-Uri", long}, 422, "X-Forwarded-Uri", false},
	} {
		r := e.do(tc.onSpec, "GET", "/v1/auth/verify", "", append([]string{"X-API-Key", key}, tc.header...)...)
		if r.Status != tc.status || strings.Join(r.Fields(), ",") != tc.fields {
			t.Errorf("%s = %d %s, want %d naming %q", tc.name, r.Status, r.Body, tc.status, tc.fields)
		}
		// Without a key, the key's refusal comes first, as for GET /v1/me.
		if r := e.do(tc.onSpec, "GET", "/v1/auth/verify", "", tc.header...); r.Status != 401 || r.Problem().Type != "urn:authapi:problem:unauthenticated" {
			t.Errorf("%s without a key = %d %s, want 401 unauthenticated", tc.name, r.Status, r.Body)
		}
	}
	// Gateways send GET; HEAD is not part of the operation, as it is not
	// of GET /v1/me's.
	for _, path := range []string{"/v1/auth/verify", "/v1/me"} {
		r := e.do(false, "HEAD", path, "", "X-API-Key", key, "X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/v1/me")
		if allow := r.Header.Get("Allow"); r.Status != 405 || !strings.Contains(allow, "GET") || strings.Contains(allow, "HEAD") {
			t.Errorf("HEAD %s = %d (Allow %q), want 405 allowing GET", path, r.Status, allow)
		}
	}
}

// TestVerifyRecordsUse: an allowed request is a use of the key, shown in
// the listing; a refused one is not, as with GET /v1/me.
func TestVerifyRecordsUse(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("user")
	allowed, refused := e.MustCreateKey(u, "allowed"), createKey(e, u, `{"name":"refused","scopes":["me:read"]}`)
	if r := e.verify(allowed.RawKey, "POST", "/v1/me/things"); r.Status != 200 {
		t.Fatalf("verify = %d %s", r.Status, r.Body)
	}
	if r := e.verify(refused.JSON["raw_key"].(string), "POST", "/v1/me/things"); r.Status != 403 {
		t.Fatalf("verify without the scope = %d %s", r.Status, r.Body)
	}
	if r := e.verify(refused.JSON["raw_key"].(string), "GET", "/v1/other"); r.Status != 403 {
		t.Fatalf("verify outside /v1/me = %d %s", r.Status, r.Body)
	}
	if err := e.Srv.KeyUses().Write(ctx); err != nil {
		t.Fatal(err)
	}
	if k := e.listed(u, allowed.ID); k.LastUsedAt == nil {
		t.Errorf("the allowed key's last use = nil, want the verification's")
	}
	if k := e.listed(u, uuid.MustParse(refused.JSON["id"].(string))); k.LastUsedAt != nil {
		t.Errorf("the refused key's last use = %v, want none", k.LastUsedAt)
	}
}

// TestVerifyRefusalAskedAgain: a gateway asks again, under the same
// request ID, for a refusal's body; it gets the first answer, counted
// once, even when the limit that refused has refilled meanwhile. Another
// question under that ID is judged afresh.
func TestVerifyRefusalAskedAgain(t *testing.T) {
	e := newEnv(t, trustLoopbackProxy, limits(func(c *server.Config) { c.AuthFailuresPerAddress = 2; c.RateLimitPerAddress = 3 }))
	ask := func(from, key, id string) *response {
		return e.verify(key, "GET", "/v1/me/things", "X-Request-ID", id, "X-Forwarded-For", from)
	}
	const a, b = "203.0.113.70", "203.0.113.71"
	unknown := apikey.MustGenerate()
	first, again := ask(a, unknown, "gw-1"), ask(a, unknown, "gw-1")
	if first.Status != 401 || again.Status != 401 || string(again.Body) != string(first.Body) {
		t.Fatalf("asked twice = %d %s, then %d %s; want the same 401", first.Status, first.Body, again.Status, again.Body)
	}
	// The failure budget (2) counted the refusal once: one more unknown
	// key is looked up, the next is refused without a lookup.
	if r := ask(a, apikey.MustGenerate(), "gw-2"); r.Status != 401 {
		t.Fatalf("a second failure = %d %s, want 401: the question asked again counted twice", r.Status, r.Body)
	}
	if r := ask(a, apikey.MustGenerate(), "gw-3"); r.Status != 429 {
		t.Fatalf("a third failure = %d %s, want 429", r.Status, r.Body)
	}

	// The rate limit (3 a second) refuses b's fourth request; asked again
	// once the limit has refilled, it is still refused, as it was.
	for i := range 3 {
		if r := ask(b, "", fmt.Sprint("gw-b", i)); r.Status != 401 {
			t.Fatalf("request %d = %d %s, want the 401 of a missing key", i+1, r.Status, r.Body)
		}
	}
	limited := ask(b, "", "gw-b3")
	if limited.Problem().Type != "urn:authapi:problem:rate-limited" {
		t.Fatalf("a fourth request = %d %s, want rate-limited", limited.Status, limited.Body)
	}
	time.Sleep(1100 * time.Millisecond)
	if r := ask(b, "", "gw-b3"); string(r.Body) != string(limited.Body) {
		t.Fatalf("asked again after the refill = %d %s, want the refusal it had", r.Status, r.Body)
	}
	// Another question under that ID is a new one: an unknown key, which
	// b's spent failure budget (its missing keys) refuses.
	if r := ask(b, unknown, "gw-b3"); r.Problem().Type != "urn:authapi:problem:too-many-failures" {
		t.Fatalf("another question under a kept ID = %d %s, want it judged afresh: too-many-failures", r.Status, r.Body)
	}
}

// TestVerifyRefusalNotKeptForClients: only a trusted proxy's questions
// have their refusals kept; a client asking twice under one request ID
// is judged twice.
func TestVerifyRefusalNotKeptForClients(t *testing.T) {
	e := newEnv(t, limits(func(c *server.Config) { c.AuthFailuresPerAddress = 1 }))
	unknown := apikey.MustGenerate()
	if r := e.verify(unknown, "GET", "/v1/me/things", "X-Request-ID", "mine"); r.Status != 401 {
		t.Fatalf("first = %d %s, want 401", r.Status, r.Body)
	}
	if r := e.verify(unknown, "GET", "/v1/me/things", "X-Request-ID", "mine"); r.Status != 429 {
		t.Fatalf("asked again by a client = %d %s, want it judged again: 429 past its one failure", r.Status, r.Body)
	}
}
