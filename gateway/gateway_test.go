//go:build gateway

// These tests put a real nginx, with the shipped configuration
// (deploy/nginx/authapi.conf, its addresses set and nothing else changed),
// in front of a small upstream that echoes what it received, with a real
// authapi as the authentication step and a second authapi on the same
// database. They run alone (make test-gateway, build tag gateway), as the
// multi-instance tests do, since they time revocations against 100 ms.
package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"authapi/apikey"
	"authapi/internal/authproc"
	"authapi/internal/nginxproc"
	"authapi/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// upstream is the product's service in these tests: it answers every
// request with what it received, and remembers it.
type upstream struct {
	addr string
	mu   sync.Mutex
	seen []seen
}

// seen is a request as the upstream received it.
type seen struct {
	Method  string      `json:"method"`
	URI     string      `json:"uri"`
	Header  http.Header `json:"header"`
	BodyLen int         `json:"body_len"`
	BodySum string      `json:"body_sha256"`
}

func startUpstream(t *testing.T) *upstream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{addr: ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sum := sha256.Sum256(body)
		s := seen{Method: r.Method, URI: r.RequestURI, Header: r.Header, BodyLen: len(body), BodySum: hex.EncodeToString(sum[:])}
		u.mu.Lock()
		u.seen = append(u.seen, s)
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return u
}

// requests returns how many requests the upstream has received.
func (u *upstream) requests() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen)
}

// gateway is nginx with the shipped configuration in front of the
// upstream, authapi (a) as its authentication step, and a second authapi
// (b) on the same database that is not behind it.
type gateway struct {
	t      *testing.T
	url    string // nginx
	listen string
	nginx  *nginxproc.Process
	a, b   *authproc.Process
	addrA  string
	bin    string
	env    map[string]string
	up     *upstream
}

// The per-address limits here, small for the floods: authapi's
// AUTH_LOGIN_MAX_FAILURES_PER_ADDRESS, AUTH_AUTH_FAILURES_PER_ADDRESS (per
// minute; the other cases send a few failed checks from 127.0.0.1 too) and
// AUTH_RATE_LIMIT_PER_ADDRESS (per second, in bursts of a second's worth).
// nginx asks authapi twice about a refused request (the decision, then the
// body it answers with, under the same request ID); authapi answers the
// second from the first, so a refusal counts once.
const (
	loginFailuresPerAddress = 5
	authFailuresPerAddress  = 60
	requestsPerAddress      = 200
)

func startGateway(t *testing.T) *gateway {
	bin, err := authproc.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dbURL := storetest.NewURL(t)
	g := &gateway{t: t, bin: bin, up: startUpstream(t), addrA: freeAddr(t), listen: freeAddr(t)}
	g.url = "http://" + g.listen
	g.env = map[string]string{
		"AUTH_DATABASE_URL":        dbURL,
		"AUTH_DATABASE_LISTEN_URL": storetest.DirectURL(dbURL),
		"AUTH_JWT_SECRET":          "0123456789abcdef0123456789abcdef",
		"AUTH_API_KEY_PEPPER":      "pepper pepper pepper pepper 32b!",
		"AUTH_ARGON2_MEMORY_KIB":   "64",
		"AUTH_ARGON2_TIME":         "1",
		// nginx reaches authapi from 127.0.0.1; the clients are other
		// loopback addresses, whose address nginx forwards.
		"AUTH_TRUSTED_PROXIES":                "127.0.0.1/32",
		"AUTH_LOGIN_MAX_FAILURES_PER_ADDRESS": strconv.Itoa(loginFailuresPerAddress),
		"AUTH_AUTH_FAILURES_PER_ADDRESS":      strconv.Itoa(authFailuresPerAddress),
		"AUTH_RATE_LIMIT_PER_ADDRESS":         strconv.Itoa(requestsPerAddress),
		"AUTH_REGISTER_MAX_PER_ADDRESS":       "0",
	}
	g.a = g.startAuthapi(g.addrA)
	g.b = g.startAuthapi("127.0.0.1:0")
	conf, err := nginxproc.Config(nginxproc.Addresses{Listen: g.listen, Authapi: g.addrA, Product: g.up.addr})
	if err != nil {
		t.Fatal(err)
	}
	g.nginx, err = nginxproc.Start(conf, []string{g.listen}, nginxproc.Options{AccessLog: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.nginx.Stop()
		if t.Failed() {
			t.Logf("nginx error log:\n%s\nnginx access log:\n%s", g.nginx.Log(), g.nginx.AccessLog())
		}
		g.nginx.Remove()
	})
	return g
}

// startAuthapi starts an authapi listening on addr and waits until its
// credential cache is in use.
func (g *gateway) startAuthapi(addr string) *authproc.Process {
	g.t.Helper()
	env := map[string]string{"AUTH_ADDR": addr}
	for k, v := range g.env {
		env[k] = v
	}
	p := authproc.MustStart(g.t, g.bin, env)
	g.t.Cleanup(func() { p.Stop(30 * time.Second) })
	for deadline := time.Now().Add(15 * time.Second); metric(g.t, p, "authapi_credential_cache_listening", "") != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			g.t.Fatalf("authapi at %s: the credential cache is not listening", p.URL)
		}
	}
	return p
}

// freeAddr is a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// metric returns one sample of p's /metrics, or -1.
func metric(t *testing.T, p *authproc.Process, name, labels string) float64 {
	t.Helper()
	v, err := p.Metric(name, labels)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// from returns an HTTP client whose connections come from the loopback
// address ip (Linux answers for all of 127.0.0.0/8).
func from(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

var local = from("127.0.0.1")

// answer is a response, read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

// call sends a request; header holds pairs, each added (so a name may
// come twice).
func call(t *testing.T, c *http.Client, method, url string, body []byte, header ...string) *answer {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body, req.ContentLength = nil, 0
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	a := &answer{status: resp.StatusCode, header: resp.Header}
	a.body, _ = io.ReadAll(resp.Body)
	json.Unmarshal(a.body, &a.json)
	return a
}

// seen decodes the upstream's echo.
func (a *answer) seen(t *testing.T) seen {
	t.Helper()
	var s seen
	if err := json.Unmarshal(a.body, &s); err != nil || a.status != 200 {
		t.Fatalf("not the upstream's echo: %d %s", a.status, a.body)
	}
	return s
}

// problem is a problem document without what names one occurrence.
func (a *answer) problem() string {
	m := map[string]any{}
	for k, v := range a.json {
		if k != "request_id" && k != "instance" {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// raw sends a request line as written, which no HTTP client would keep
// (dot segments, double slashes), and returns the status.
func raw(t *testing.T, addr, requestLine string, header ...string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	b.WriteString(requestLine + "\r\nHost: gateway.test\r\nConnection: close\r\n")
	for i := 0; i+1 < len(header); i += 2 {
		b.WriteString(header[i] + ": " + header[i+1] + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s: %v", requestLine, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// user is an account with a token, made through the gateway.
type user struct {
	name, id, token string
}

func (g *gateway) mustUser(t *testing.T, name string) *user {
	t.Helper()
	a := call(t, local, "POST", g.url+"/v1/auth/register", []byte(`{"username":"`+name+`","email":"`+name+`@example.com","password":"secureP@ss123","full_name":"N"}`), "Content-Type", "application/json")
	if a.status != 200 {
		t.Fatalf("register %s through the gateway = %d %s", name, a.status, a.body)
	}
	u := &user{name: name, id: a.json["id"].(string)}
	a = call(t, local, "POST", g.url+"/v1/auth/login", []byte(`{"username":"`+name+`","password":"secureP@ss123"}`), "Content-Type", "application/json")
	if a.status != 200 {
		t.Fatalf("login %s through the gateway = %d %s", name, a.status, a.body)
	}
	u.token = a.json["access_token"].(string)
	return u
}

// key is an API key.
type key struct{ raw, id string }

// mustKey creates a key for u through the gateway; body is the creation's.
func (g *gateway) mustKey(t *testing.T, u *user, body string) key {
	t.Helper()
	a := call(t, local, "POST", g.url+"/v1/auth/api-keys", []byte(body), "Content-Type", "application/json", "Authorization", "Bearer "+u.token)
	if a.status != 200 {
		t.Fatalf("create key %s = %d %s", body, a.status, a.body)
	}
	return key{raw: a.json["raw_key"].(string), id: a.json["id"].(string)}
}

// revoke revokes a key through the authapi at url and returns when it
// answered.
func revoke(t *testing.T, url string, u *user, k key) time.Time {
	t.Helper()
	a := call(t, local, "DELETE", url+"/v1/auth/api-keys/"+k.id, nil, "Authorization", "Bearer "+u.token)
	if a.status != 204 {
		t.Fatalf("revoke = %d %s", a.status, a.body)
	}
	return time.Now()
}

// mustCache uses k through the gateway until authapi (a) answers from its
// credential cache.
func (g *gateway) mustCache(t *testing.T, k key) {
	t.Helper()
	for range 50 {
		hits := metric(t, g.a, "authapi_api_key_verifications_total", `result="hit"`)
		if a := call(t, local, "GET", g.url+"/v1/me/things", nil, "X-API-Key", k.raw); a.status != 200 {
			t.Fatalf("GET /v1/me/things through the gateway = %d %s", a.status, a.body)
		}
		if metric(t, g.a, "authapi_api_key_verifications_total", `result="hit"`) > hits {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("no use of the key through the gateway was answered from authapi's cache")
}

// untouched fails the test if the upstream received a request since it
// had received before.
func (g *gateway) untouched(t *testing.T, before int, what string) {
	t.Helper()
	if n := g.up.requests(); n != before {
		t.Errorf("%s reached the upstream (%d requests)", what, n-before)
	}
}

func TestGateway(t *testing.T) {
	g := startGateway(t)
	owner := g.mustUser(t, "owner")
	all := g.mustKey(t, owner, `{"name":"all"}`)
	readOnly := g.mustKey(t, owner, `{"name":"read","scopes":["me:read"]}`)

	t.Run("an allowed request reaches the upstream with who it acts as", func(t *testing.T) {
		a := call(t, local, "GET", g.url+"/v1/me/things?limit=10", nil, "X-API-Key", all.raw)
		s := a.seen(t)
		want := map[string]string{
			"X-Authapi-User-Id": owner.id, "X-Authapi-Username": "owner", "X-Authapi-Key-Id": all.id,
			"X-Authapi-Scopes": "me:read me:write", "X-Forwarded-For": "127.0.0.1",
		}
		for h, v := range want {
			if got := s.Header.Values(h); len(got) != 1 || got[0] != v {
				t.Errorf("the upstream saw %s %q, want %q", h, got, v)
			}
		}
		if s.Method != "GET" || s.URI != "/v1/me/things?limit=10" {
			t.Errorf("the upstream saw %s %s, want GET /v1/me/things?limit=10", s.Method, s.URI)
		}
		if k := s.Header.Get("X-API-Key"); k != "" {
			t.Errorf("the upstream saw the API key")
		}
		if s.Header.Get("X-Request-Id") == "" {
			t.Errorf("the upstream saw no X-Request-ID")
		}
	})

	t.Run("refusals are GET /v1/me's", func(t *testing.T) {
		expiring := g.mustKey(t, owner, fmt.Sprintf(`{"name":"expiring","expires_at":%q}`, time.Now().Add(2*time.Second).UTC().Format(time.RFC3339)))
		revoked := g.mustKey(t, owner, `{"name":"revoked"}`)
		revoke(t, g.a.URL, owner, revoked)
		for deadline := time.Now().Add(5 * time.Second); call(t, local, "GET", g.a.URL+"/v1/me", nil, "X-API-Key", expiring.raw).status != 401; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the expiring key did not expire")
			}
		}
		unknown := all.raw[:len(all.raw)-6] + "AAAAAA"
		for _, tc := range []struct {
			name, key, typ string
		}{
			{"no key", "", "urn:authapi:problem:unauthenticated"},
			{"malformed key", "rst_nope", "urn:authapi:problem:invalid-api-key"},
			{"unknown key", unknown, "urn:authapi:problem:invalid-api-key"},
			{"revoked key", revoked.raw, "urn:authapi:problem:invalid-api-key"},
			{"expired key", expiring.raw, "urn:authapi:problem:api-key-expired"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var h []string
				if tc.key != "" {
					h = []string{"X-API-Key", tc.key}
				}
				before := g.up.requests()
				got := call(t, local, "POST", g.url+"/v1/me/things", []byte(`{}`), append(h, "Content-Type", "application/json")...)
				me := call(t, local, "GET", g.a.URL+"/v1/me", nil, h...)
				g.untouched(t, before, tc.name)
				if got.status != 401 || got.json["type"] != tc.typ {
					t.Fatalf("through the gateway = %d %s, want 401 %s", got.status, got.body, tc.typ)
				}
				if got.problem() != me.problem() || got.header.Get("Content-Type") != "application/problem+json" {
					t.Errorf("through the gateway %s, GET /v1/me %s", got.body, me.body)
				}
				if c := got.header.Values("WWW-Authenticate"); len(c) != 1 || c[0] != me.header.Get("WWW-Authenticate") {
					t.Errorf("challenge through the gateway %q, GET /v1/me's %q", c, me.header.Get("WWW-Authenticate"))
				}
			})
		}
	})

	t.Run("a read-only key may read, not write", func(t *testing.T) {
		if a := call(t, local, "GET", g.url+"/v1/me/things", nil, "X-API-Key", readOnly.raw); a.status != 200 {
			t.Fatalf("GET = %d %s", a.status, a.body)
		}
		before := g.up.requests()
		a := call(t, local, "POST", g.url+"/v1/me/things", []byte(`{}`), "X-API-Key", readOnly.raw, "Content-Type", "application/json")
		g.untouched(t, before, "the refused POST")
		direct := call(t, local, "GET", g.a.URL+"/v1/auth/verify", nil, "X-API-Key", readOnly.raw, "X-Forwarded-Method", "POST", "X-Forwarded-Uri", "/v1/me/things")
		if a.status != 403 || a.json["type"] != "urn:authapi:problem:insufficient-scope" || a.problem() != direct.problem() {
			t.Errorf("POST through the gateway = %d %s, want authapi's %s", a.status, a.body, direct.body)
		}
		want := `APIKey realm="authapi", header="X-API-Key", error="insufficient_scope", scope="me:write"`
		if c := a.header.Values("WWW-Authenticate"); len(c) != 1 || c[0] != want {
			t.Errorf("challenge %q, want %q", c, want)
		}
	})

	t.Run("what the client sends never stands for the gateway's", func(t *testing.T) {
		// A method or target of the client's own does not change the
		// scope required: the POST still needs me:write.
		before := g.up.requests()
		a := call(t, local, "POST", g.url+"/v1/me/things", []byte(`{}`), "X-API-Key", readOnly.raw, "Content-Type", "application/json",
			"X-Original-Method", "GET", "X-Forwarded-Method", "GET", "X-Original-URI", "/v1/me", "X-Forwarded-Uri", "/v1/me")
		g.untouched(t, before, "a POST claiming to be a GET")
		if a.status != 403 || a.json["type"] != "urn:authapi:problem:insufficient-scope" {
			t.Errorf("POST claiming GET = %d %s, want 403 insufficient-scope", a.status, a.body)
		}
		// Claimed identities and addresses are replaced.
		other := g.mustUser(t, "mallory")
		a = call(t, local, "GET", g.url+"/v1/me/things", nil, "X-API-Key", readOnly.raw,
			"X-Authapi-User-Id", other.id, "X-Authapi-Username", "mallory", "X-Authapi-Key-Id", all.id, "X-Authapi-Scopes", "me:read me:write",
			"X-Forwarded-For", "203.0.113.7", "X-Real-IP", "203.0.113.7", "Forwarded", "for=203.0.113.7",
			"X-Original-URI", "/admin", "X-Original-Method", "DELETE", "X-Forwarded-Method", "DELETE", "X-Forwarded-Uri", "/admin",
			"X-Forwarded-Host", "evil.example")
		s := a.seen(t)
		for h, v := range map[string]string{
			"X-Authapi-User-Id": owner.id, "X-Authapi-Username": "owner", "X-Authapi-Key-Id": readOnly.id, "X-Authapi-Scopes": "me:read",
			"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "127.0.0.1",
		} {
			if got := s.Header.Values(h); len(got) != 1 || got[0] != v {
				t.Errorf("the upstream saw %s %q, want %q", h, got, v)
			}
		}
		for _, h := range []string{"X-Real-Ip", "Forwarded", "X-Original-Uri", "X-Original-Method", "X-Forwarded-Method", "X-Forwarded-Uri"} {
			if v := s.Header.Values(h); len(v) > 0 {
				t.Errorf("the upstream saw the client's %s %q", h, v)
			}
		}
		// An unknown key with a claimed identity is refused all the same.
		before = g.up.requests()
		a = call(t, local, "GET", g.url+"/v1/me/things", nil, "X-API-Key", "rst_nope", "X-Authapi-User-Id", owner.id, "X-Authapi-Scopes", "me:read")
		g.untouched(t, before, "an unknown key with a claimed identity")
		if a.status != 401 {
			t.Errorf("unknown key with X-Authapi-* = %d, want 401", a.status)
		}
	})

	t.Run("path tricks", func(t *testing.T) {
		// nginx routes on the normalised path, so tricks that leave
		// /v1/me/ end at the gateway's 404; those that stay in its
		// location reach authapi, which judges the target as sent. None
		// reaches the upstream.
		for _, tc := range []struct {
			target string
			status int
			typ    string
		}{
			{"/v1/me/../admin", 404, "about:blank"},
			{"/v1/me/x/../../admin", 404, "about:blank"},
			{"/v1/me%2f..%2fadmin", 404, "about:blank"},
			{"/v1/me/%2e%2e/admin", 404, "about:blank"},
			{"/v1/meow", 404, "about:blank"},
			{"/V1/ME/things", 404, "about:blank"},
			{"/admin?next=/v1/me/", 404, "about:blank"},
			{"//v1/me/things", 403, "urn:authapi:problem:path-not-allowed"},
			{"/v1//me/things", 403, "urn:authapi:problem:path-not-allowed"},
			{"/v1/me/%252e%252e/admin", 403, "urn:authapi:problem:path-not-allowed"},
			{"/v1/me/x%2f..%2f..%2fadmin", 404, "about:blank"},
			{`/v1/me/x\..\..\admin`, 403, "urn:authapi:problem:path-not-allowed"},
			{"/v1/me/..;/admin", 403, "urn:authapi:problem:path-not-allowed"},
			{"/v1/me/%c0%ae%c0%ae/admin", 403, "urn:authapi:problem:path-not-allowed"},
			{"/v1/me/x%00", 400, "about:blank"},
			{"/v1/me/things#x/../../admin", 403, "urn:authapi:problem:path-not-allowed"},
			// authapi's own GET /v1/me, which checks the key itself.
			{"//v1/me", 404, "urn:authapi:problem:not-found"},
			{"/v1/auth/verify", 404, "about:blank"},
		} {
			before := g.up.requests()
			status, body := raw(t, g.listen, "GET "+tc.target+" HTTP/1.1", "X-API-Key", all.raw)
			g.untouched(t, before, tc.target)
			var p map[string]any
			json.Unmarshal([]byte(body), &p)
			if status != tc.status || p["type"] != tc.typ {
				t.Errorf("GET %s = %d %s, want %d %s", tc.target, status, body, tc.status, tc.typ)
			}
		}
		// The query is no part of the path; a request in absolute form is
		// judged by its path, which is what nginx passes on.
		for _, line := range []string{"GET /v1/me/things?next=../../admin HTTP/1.1", "GET http://elsewhere.example/v1/me/things HTTP/1.1"} {
			status, body := raw(t, g.listen, line, "X-API-Key", all.raw)
			var s seen
			json.Unmarshal([]byte(body), &s)
			if status != 200 || !strings.HasPrefix(s.URI, "/v1/me/things") {
				t.Errorf("%s = %d %s, want 200 from the upstream, for /v1/me/things", line, status, body)
			}
		}
	})

	t.Run("a body reaches the upstream byte for byte", func(t *testing.T) {
		body := make([]byte, 200<<10) // beyond nginx's in-memory buffer: through a temporary file
		rand.Read(body)
		sum := sha256.Sum256(body)
		a := call(t, local, "PUT", g.url+"/v1/me/blobs/1", body, "X-API-Key", all.raw, "Content-Type", "application/octet-stream")
		s := a.seen(t)
		if s.Method != "PUT" || s.BodyLen != len(body) || s.BodySum != hex.EncodeToString(sum[:]) || s.Header.Get("Content-Type") != "application/octet-stream" {
			t.Errorf("the upstream saw %s, %d bytes (sha256 %s), %q; want PUT, %d bytes (%x)", s.Method, s.BodyLen, s.BodySum, s.Header.Get("Content-Type"), len(body), sum)
		}
	})

	t.Run("a revoked key is refused within 100 ms", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			through func() string // the authapi the revocation goes through
			rounds  int
			next    bool   // the very next request is refused
			from    string // the client polling through the gateway
		}{
			{"revoked through the gateway's authapi", func() string { return g.a.URL }, 5, true, "127.0.0.8"},
			{"revoked through a second authapi", func() string { return g.b.URL }, 20, false, "127.0.0.9"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var worst time.Duration
				var delays []string
				// Each round ends in a refusal, a failed check: from an
				// address of their own, within its budget.
				poller := from(tc.from)
				for n := range tc.rounds {
					k := g.mustKey(t, owner, `{"name":"to revoke"}`)
					g.mustCache(t, k)
					answered := revoke(t, tc.through(), owner, k)
					for attempt := 1; ; attempt++ {
						a := call(t, poller, "GET", g.url+"/v1/me/things", nil, "X-API-Key", k.raw)
						took := time.Since(answered)
						if a.status == 200 && tc.next {
							t.Fatalf("round %d: the request right after the revocation's answer went through", n)
						}
						if a.status == 401 {
							worst = max(worst, took)
							delays = append(delays, took.Round(100*time.Microsecond).String())
							break
						}
						if a.status != 200 || took > 5*time.Second {
							t.Fatalf("round %d: %d %s %v after the revocation", n, a.status, a.body, took)
						}
					}
				}
				t.Logf("revocations refused through the gateway after their answer: %s", strings.Join(delays, " "))
				if worst > 100*time.Millisecond {
					t.Errorf("a revoked key went through the gateway for %v after the revocation's answer, want at most 100ms", worst)
				}
			})
		}
	})

	// Each flood comes through the gateway from one client address until
	// authapi refuses it; a client at another address must not be
	// refused. authapi counts per client because nginx forwards the
	// client's address (X-Forwarded-For) and trusts only 127.0.0.1.
	t.Run("one client's flood never refuses another", func(t *testing.T) {
		victim := g.mustUser(t, "victim")
		victimKey := g.mustKey(t, victim, `{"name":"v"}`)
		// getThing sends GET /v1/me/things with key from c and says
		// whether it was refused for the flood (429); the other answer
		// must be want.
		getThing := func(t *testing.T, c *http.Client, key string, want int) bool {
			a := call(t, c, "GET", g.url+"/v1/me/things", nil, "X-API-Key", key)
			if a.status != want && a.status != 429 {
				t.Fatalf("GET /v1/me/things = %d %s, want %d or 429", a.status, a.body, want)
			}
			if a.status == 429 && (a.header.Get("Retry-After") == "" || a.header.Get("Content-Type") != "application/problem+json") {
				t.Fatalf("429 through the gateway without its Retry-After or problem: %v %s", a.header, a.body)
			}
			return a.status == 429
		}
		for _, tc := range []struct {
			name     string
			attacker string
			victim   string
			// flood sends one request and says whether it was refused
			// for the flood (429).
			flood func(t *testing.T, c *http.Client, n int) bool
			limit int // attempts allowed before the refusal
			// slack is how many more may pass: a rate refills while
			// the flood runs.
			slack int
			// works checks that another client is served.
			works func(t *testing.T, c *http.Client)
		}{
			{
				name: "failed logins", attacker: "127.0.0.2", victim: "127.0.0.3", limit: loginFailuresPerAddress,
				flood: func(t *testing.T, c *http.Client, n int) bool {
					a := call(t, c, "POST", g.url+"/v1/auth/login", []byte(fmt.Sprintf(`{"username":"guess%d","password":"wrong password"}`, n)), "Content-Type", "application/json")
					if a.status != 401 && a.status != 429 {
						t.Fatalf("failed login %d = %d %s", n, a.status, a.body)
					}
					return a.status == 429
				},
				works: func(t *testing.T, c *http.Client) {
					a := call(t, c, "POST", g.url+"/v1/auth/login", []byte(`{"username":"victim","password":"secureP@ss123"}`), "Content-Type", "application/json")
					if a.status != 200 {
						t.Errorf("the other client's login = %d %s, want 200", a.status, a.body)
					}
					if a := call(t, c, "GET", g.url+"/v1/me/things", nil, "X-API-Key", victimKey.raw); a.status != 200 {
						t.Errorf("the other client's request = %d %s, want 200", a.status, a.body)
					}
				},
			},
			{
				// Well-formed unknown keys, each a lookup.
				name: "failed key checks", attacker: "127.0.0.4", victim: "127.0.0.5", limit: authFailuresPerAddress,
				flood: func(t *testing.T, c *http.Client, n int) bool { return getThing(t, c, apikey.MustGenerate(), 401) },
				works: func(t *testing.T, c *http.Client) {
					if getThing(t, c, apikey.MustGenerate(), 401) {
						t.Error("the other client's failed key check was refused for the flood")
					}
					if getThing(t, c, victimKey.raw, 200) {
						t.Error("the other client's request was refused for the flood")
					}
				},
			},
			{
				// Ten at once per attempt, to outrun the refill.
				name: "requests", attacker: "127.0.0.6", victim: "127.0.0.7", limit: requestsPerAddress / 10, slack: 4 * requestsPerAddress / 10,
				flood: func(t *testing.T, c *http.Client, n int) bool {
					var statuses [10]int
					var wg sync.WaitGroup
					for i := range statuses {
						wg.Go(func() {
							req, _ := http.NewRequest("GET", g.url+"/v1/me/things", nil)
							req.Header.Set("X-API-Key", victimKey.raw)
							if resp, err := c.Do(req); err == nil {
								io.Copy(io.Discard, resp.Body)
								resp.Body.Close()
								statuses[i] = resp.StatusCode
							}
						})
					}
					wg.Wait()
					refused := false
					for _, s := range statuses {
						if s != 200 && s != 429 {
							t.Fatalf("GET /v1/me/things in a flood of requests = %v, want 200 or 429", statuses)
						}
						refused = refused || s == 429
					}
					return refused
				},
				works: func(t *testing.T, c *http.Client) {
					if getThing(t, c, victimKey.raw, 200) {
						t.Error("the other client's request was refused for the flood")
					}
				},
			},
		} {
			t.Run(tc.name, func(t *testing.T) {
				attacker, other := from(tc.attacker), from(tc.victim)
				refusedAt := -1
				for n := range tc.limit + tc.slack + 5 {
					if tc.flood(t, attacker, n) {
						refusedAt = n
						break
					}
				}
				if refusedAt < tc.limit || refusedAt > tc.limit+tc.slack {
					t.Fatalf("the flood from %s was refused at attempt %d, want %d to %d (after %d)", tc.attacker, refusedAt+1, tc.limit+1, tc.limit+tc.slack+1, tc.limit)
				}
				tc.works(t, other)
				// authapi saw the attacker's address, not the gateway's.
				for _, line := range g.a.LogLines("request") {
					if tc.name == "failed logins" && line["event"] == "login_failed" && line["client"] != tc.attacker {
						t.Errorf("authapi logged a failed login from %v, want %s", line["client"], tc.attacker)
					}
				}
			})
		}
	})

	t.Run("authapi stopped: 503, and back: 200, nginx untouched", func(t *testing.T) {
		pid := g.nginx.Pid()
		g.a.Stop(30 * time.Second)
		before := g.up.requests()
		a := call(t, local, "GET", g.url+"/v1/me/things", nil, "X-API-Key", all.raw)
		g.untouched(t, before, "a request while authapi was down")
		if a.status != 503 || a.header.Get("Content-Type") != "application/problem+json" || a.header.Get("Retry-After") == "" ||
			a.json["type"] != "urn:authapi:problem:unavailable" || a.json["status"] != float64(503) {
			t.Errorf("with authapi stopped = %d %v %s, want a 503 unavailable problem with Retry-After", a.status, a.header, a.body)
		}
		g.a = g.startAuthapi(g.addrA)
		if a := call(t, local, "GET", g.url+"/v1/me/things", nil, "X-API-Key", all.raw); a.status != 200 {
			t.Errorf("with authapi back = %d %s, want 200", a.status, a.body)
		}
		if g.nginx.Pid() != pid || syscall.Kill(pid, 0) != nil {
			t.Errorf("nginx was restarted")
		}
	})

	t.Run("the gateway's own errors are problems", func(t *testing.T) {
		for _, path := range []string{"/nowhere", "/v1/auth/verify"} {
			a := call(t, local, "GET", g.url+path, nil, "X-API-Key", all.raw)
			if a.status != 404 || a.header.Get("Content-Type") != "application/problem+json" || a.json["status"] != float64(404) || a.json["title"] != "Not Found" {
				t.Errorf("GET %s = %d %q %s, want a 404 problem", path, a.status, a.header.Get("Content-Type"), a.body)
			}
		}
	})
}
