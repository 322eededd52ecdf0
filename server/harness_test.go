package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/oapi-codegen/oapi-codegen/v2/pkg/securityprovider"
	openapi_types "github.com/oapi-codegen/runtime/types"

	"authapi"
	"authapi/client/gen"
	"authapi/internal/syncbuf"
	"authapi/server"
	"authapi/server/servertest"
	"authapi/store"
	"authapi/store/storetest"
	"authapi/token"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// clock is a settable time source for the token service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// env is one server on a free port, with its own database.
type env struct {
	t      testing.TB
	URL    string
	DBURL  string
	DB     *store.DB
	Srv    *server.Server
	Clock  *clock
	Client *gen.ClientWithResponses
	HTTP   *http.Client // for hand-made requests; validates like Client
	Logs   *syncbuf.Buffer
}

// options tweak an env's server.
type options struct {
	server    func(*server.Config)
	token     func(*token.Config)
	dbURL     string        // a migrated database to use instead of a fresh one
	listenURL string        // where to LISTEN for changes, if not dbURL
	dbWait    time.Duration // the store's statement timeout
	prepare   bool          // the store prepares its reads
}

func newEnv(t testing.TB, opts ...options) *env {
	t.Helper()
	dbURL, dbWait, listenURL, prepare := "", 5*time.Second, "", false
	for _, o := range opts {
		prepare = prepare || o.prepare
		if o.dbURL != "" {
			dbURL = o.dbURL
		}
		if o.listenURL != "" {
			listenURL = o.listenURL
		}
		if o.dbWait > 0 {
			dbWait = o.dbWait
		}
	}
	if dbURL == "" {
		dbURL = storetest.NewURL(t)
		if listenURL == "" {
			// LISTEN needs a session, which a transaction pooler is not
			// (make test-pgbouncer), as in a deployment behind one.
			listenURL = storetest.DirectURL(dbURL)
		}
	}
	db, err := store.Open(context.Background(), dbURL, store.Options{MaxConns: 10, QueryTimeout: dbWait, Prepare: prepare})
	if err != nil {
		t.Fatalf("store.Open = %v", err)
	}
	t.Cleanup(func() { db.Close() })
	c := &clock{t: time.Now()}
	logs := &syncbuf.Buffer{}
	cfg := servertest.Config(t, db, func(tc *token.Config) {
		tc.Now, tc.CacheSize = c.Now, 1000
		for _, o := range opts {
			if o.token != nil {
				o.token(tc)
			}
		}
	})
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.LoginMaxFailures, cfg.LoginMaxFailuresPerAddress, cfg.LoginWindow, cfg.MaxActiveKeys = 10, 100, 15*time.Minute, 100
	// Off, unlike the binary's default of 50 an hour: tests register many
	// users from 127.0.0.1. The tests of the limit turn it on.
	cfg.RegisterMaxPerAddress = 0
	cfg.KeyMaxLifetime, cfg.Now, cfg.CredentialCacheSize = 365*24*time.Hour, c.Now, 1000
	for _, o := range opts {
		if o.server != nil {
			o.server(&cfg)
		}
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatalf("server.New = %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	if listenURL == "" {
		listenURL = dbURL
	}
	mustListen(t, srv, listenURL)

	hc := &http.Client{Transport: newValidatingTransport(t), Timeout: 30 * time.Second}
	client, err := gen.NewClientWithResponses(ts.URL, gen.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, URL: ts.URL, DBURL: dbURL, DB: db, Srv: srv, Clock: c, Client: client, HTTP: hc, Logs: logs}
}

// mustListen starts the server's change listener on dbURL and waits until
// the credential cache is in use, so that every test runs with it.
func mustListen(t testing.TB, srv *server.Server, dbURL string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	changes := srv.ChangeListener(dbURL)
	go func() { changes.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); !srv.CacheListening(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the credential cache did not start listening within 10s")
		}
	}
}

// trustLoopbackProxy makes the server believe X-Forwarded-For from the
// test client, so that tests can speak from several addresses.
var trustLoopbackProxy = options{server: func(c *server.Config) {
	c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}}

// validatingTransport checks every request and response against
// openapi.yaml, independently of the server's own validator.
type validatingTransport struct {
	t      testing.TB
	spec   *openapi3.T
	router routers.Router
	opts   []openapi3.SchemaValidationOption
}

// Formats as the spec means them, checked here without the server's code.
var testFormats = map[string]openapi3.StringFormatValidator{
	// JSON Schema's uuid is RFC 4122's string form: hex digits, any version.
	"uuid":  openapi3.NewRegexpFormatValidator(`^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$`),
	"email": openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForEmail),
}

func newValidatingTransport(t testing.TB) *validatingTransport {
	spec, err := openapi3.NewLoader().LoadFromData(authapi.OpenAPI)
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	if err := spec.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not valid: %v", err)
	}
	spec.Servers = nil
	router, err := gorillamux.NewRouter(spec)
	if err != nil {
		t.Fatal(err)
	}
	return &validatingTransport{t: t, spec: spec, router: router, opts: []openapi3.SchemaValidationOption{openapi3.WithStringFormatValidators(testFormats)}}
}

type offSpecKey struct{}

// offSpec marks a request that breaks the spec on purpose: only its
// response is checked.
func offSpec(ctx context.Context) context.Context { return context.WithValue(ctx, offSpecKey{}, true) }

func (vt *validatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	route, params, routeErr := vt.router.FindRoute(req)
	input := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true, SchemaValidationOptions: vt.opts}}
	if routeErr == nil && req.Context().Value(offSpecKey{}) == nil {
		if err := openapi3filter.ValidateRequest(req.Context(), input); err != nil {
			vt.t.Errorf("request %s %s breaks the spec: %v", req.Method, req.URL.Path, err)
		}
		if reqBody != nil { // a nil body must stay nil, or it would go out chunked
			// The validator may have replaced the body with one carrying
			// the schema's defaults; the client's request goes out as sent.
			req.Body = io.NopCloser(bytes.NewReader(reqBody))
			req.ContentLength = int64(len(reqBody))
		}
	}

	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))

	if resp.StatusCode >= 400 {
		vt.checkProblem(req, resp, body)
	}
	if routeErr == nil {
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: input, Status: resp.StatusCode, Header: resp.Header,
			Body:    io.NopCloser(bytes.NewReader(body)),
			Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, SchemaValidationOptions: vt.opts},
		}
		if err := openapi3filter.ValidateResponse(req.Context(), in); err != nil {
			vt.t.Errorf("response %d to %s %s breaks the spec: %v\n%s", resp.StatusCode, req.Method, req.URL.Path, err, body)
		}
	}
	return resp, nil
}

// checkProblem holds every error response, on or off the spec's routes, to
// RFC 9457 and the spec's Problem schema.
func (vt *validatingTransport) checkProblem(req *http.Request, resp *http.Response, body []byte) {
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		vt.t.Errorf("%d to %s %s has Content-Type %q, want application/problem+json", resp.StatusCode, req.Method, req.URL.Path, ct)
	}
	if req.Method == http.MethodHead {
		return
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		vt.t.Errorf("%d to %s %s: body is not JSON: %v", resp.StatusCode, req.Method, req.URL.Path, err)
		return
	}
	if err := vt.spec.Components.Schemas["Problem"].Value.VisitJSON(v, vt.opts...); err != nil {
		vt.t.Errorf("%d to %s %s: not a Problem: %v", resp.StatusCode, req.Method, req.URL.Path, err)
	}
	if m, _ := v.(map[string]any); m["status"] != float64(resp.StatusCode) {
		vt.t.Errorf("%d to %s %s: problem status %v", resp.StatusCode, req.Method, req.URL.Path, m["status"])
	}
}

// response is a hand-made request's outcome.
type response struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any
}

// Problem decodes the body as a problem.
func (r *response) Problem() gen.Problem {
	var p gen.Problem
	json.Unmarshal(r.Body, &p)
	return p
}

// Fields returns the invalid fields of a validation problem, in order.
func (r *response) Fields() []string {
	var fields []string
	if p := r.Problem(); p.Errors != nil {
		for _, e := range *p.Errors {
			fields = append(fields, e.Field)
		}
	}
	return fields
}

// do sends a hand-made request. header holds pairs; the request is checked
// against the spec unless onSpec is false.
func (e *env) do(onSpec bool, method, path, body string, header ...string) *response {
	e.t.Helper()
	ctx := context.Background()
	if !onSpec {
		ctx = offSpec(ctx)
	}
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.URL+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Add(header[i], header[i+1])
		}
	}
	resp, err := e.HTTP.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	out := &response{Status: resp.StatusCode, Header: resp.Header}
	out.Body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	json.Unmarshal(out.Body, &out.JSON)
	return out
}

// user is a registered user with credentials.
type user struct {
	ID       string
	Username string
	Password string
	Token    string
}

// MustRegister registers name with a known password.
func (e *env) MustRegister(name string) *user {
	e.t.Helper()
	u := &user{Username: name, Password: "secureP@ss123-" + name}
	resp, err := e.Client.RegisterUserWithResponse(context.Background(), gen.RegisterRequest{
		Username: name, Email: openapi_types.Email(name + "@example.com"), Password: u.Password, FullName: "Full Name of " + name,
	})
	if err != nil || resp.JSON200 == nil {
		e.t.Fatalf("register %q: %v %d %s", name, err, resp.StatusCode(), resp.Body)
	}
	u.ID = resp.JSON200.ID.String()
	return u
}

// MustLogin registers name and logs in.
func (e *env) MustLogin(name string) *user {
	e.t.Helper()
	u := e.MustRegister(name)
	resp, err := e.Client.LoginWithResponse(context.Background(), gen.LoginRequest{Username: name, Password: u.Password})
	if err != nil || resp.JSON200 == nil {
		e.t.Fatalf("login %q: %v %d %s", name, err, resp.StatusCode(), resp.Body)
	}
	u.Token = resp.JSON200.AccessToken
	return u
}

// MustCreateKey creates a key for u and returns the response body.
func (e *env) MustCreateKey(u *user, name string) *gen.CreatedAPIKey {
	e.t.Helper()
	resp, err := e.Client.CreateAPIKeyWithResponse(context.Background(), gen.CreateAPIKeyRequest{Name: name}, bearer(e.t, u.Token))
	if err != nil || resp.JSON200 == nil {
		e.t.Fatalf("create key %q: %v %d %s", name, err, resp.StatusCode(), resp.Body)
	}
	return resp.JSON200
}

func bearer(tb testing.TB, tok string) gen.RequestEditorFn {
	p, err := securityprovider.NewSecurityProviderBearerToken(tok)
	if err != nil {
		tb.Fatal(err)
	}
	return p.Intercept
}

func apiKey(tb testing.TB, key string) gen.RequestEditorFn {
	p, err := securityprovider.NewSecurityProviderApiKey("header", "X-API-Key", key)
	if err != nil {
		tb.Fatal(err)
	}
	return p.Intercept
}
