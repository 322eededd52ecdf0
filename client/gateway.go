package client

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"authapi/client/gen"
)

// Principal is who a request authapi verified acts as: the owner of its API
// key, the key, and what the key may do.
type Principal struct {
	UserID   uuid.UUID
	Username string
	KeyID    uuid.UUID
	Scopes   []Scope
}

// HasScope reports whether the key has scope.
func (p *Principal) HasScope(scope Scope) bool {
	for _, s := range p.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// VerifyAPIKey asks authapi, as an API gateway does before passing a
// request on, whether the client's API key may make a request of method
// to target (the request target as the client sent it, such as
// "/v1/me/things?limit=10"), and returns who the request acts as. The
// target must be /v1/me or under /v1/me/; GET, HEAD and OPTIONS need
// ScopeMeRead, other methods ScopeMeWrite. A refusal is a *Problem: 401 as
// GetCurrentUser's for the same key, 403 of TypeInsufficientScope or
// TypePathNotAllowed.
func (c *Client) VerifyAPIKey(ctx context.Context, method, target string) (*Principal, error) {
	a, err := c.verify(ctx, method, target, c.key)
	if err != nil {
		return nil, err
	}
	if a.principal == nil {
		return nil, responseError(a.resp, a.body)
	}
	return a.principal, nil
}

// verifyAnswer is GET /v1/auth/verify's answer: a principal when the
// request may go on, else the response and its body.
type verifyAnswer struct {
	principal *Principal
	resp      *http.Response
	body      []byte
}

// maxAnswer bounds the body read from the verify endpoint: a problem
// document is far smaller.
const maxAnswer = 64 << 10

func (c *Client) verify(ctx context.Context, method, target string, key gen.RequestEditorFn) (*verifyAnswer, error) {
	resp, err := c.api.VerifyAPIKey(ctx, &gen.VerifyAPIKeyParams{XForwardedMethod: &method, XForwardedURI: &target}, key)
	if err != nil {
		return nil, fmt.Errorf("client: verifyApiKey: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("client: verifyApiKey: read the response: %w", err)
	}
	a := &verifyAnswer{resp: resp, body: body}
	if resp.StatusCode == http.StatusOK {
		p, err := principalOf(resp.Header)
		if err != nil {
			return nil, fmt.Errorf("client: verifyApiKey: %w", err)
		}
		a.principal = p
	}
	return a, nil
}

// principalOf reads the X-Authapi-* headers of an allowed request.
func principalOf(h http.Header) (*Principal, error) {
	user, uerr := uuid.Parse(h.Get("X-Authapi-User-Id"))
	key, kerr := uuid.Parse(h.Get("X-Authapi-Key-Id"))
	name := h.Get("X-Authapi-Username")
	if uerr != nil || kerr != nil || name == "" {
		return nil, fmt.Errorf("a 200 without a user ID, a key ID and a username (%q, %q, %q)", h.Get("X-Authapi-User-Id"), h.Get("X-Authapi-Key-Id"), name)
	}
	p := &Principal{UserID: user, Username: name, KeyID: key}
	for _, s := range strings.Fields(h.Get("X-Authapi-Scopes")) {
		p.Scopes = append(p.Scopes, Scope(s))
	}
	return p, nil
}

// Verifier is net/http middleware for a service that authapi's API keys
// protect without an API gateway in front: it lets a request through only
// when authapi allows its key for its method and path (GET
// /v1/auth/verify), and puts who the request acts as in its context
// (PrincipalFrom). It fails closed: when authapi cannot be asked, or
// answers anything but an allowance or a refusal, the request gets 503.
type Verifier struct {
	c       *Client
	timeout time.Duration
	onError func(*http.Request, error)
}

// VerifierOption configures a Verifier.
type VerifierOption func(*verifierOptions)

type verifierOptions struct {
	doer    Doer
	timeout time.Duration
	onError func(*http.Request, error)
}

// DefaultVerifyTimeout bounds each question to authapi unless
// VerifyTimeout says otherwise. A cached key is answered in well under a
// millisecond and an uncached one in a database read; beyond this, authapi
// is in trouble and the request gets 503.
const DefaultVerifyTimeout = 2 * time.Second

// VerifyTimeout bounds each question to authapi.
func VerifyTimeout(d time.Duration) VerifierOption {
	return func(o *verifierOptions) { o.timeout = d }
}

// VerifyHTTPClient asks authapi through doer instead of the Verifier's own
// pooled client.
func VerifyHTTPClient(doer Doer) VerifierOption { return func(o *verifierOptions) { o.doer = doer } }

// VerifyOnError has f told why a request got 503 (authapi unreachable,
// too slow, or answering 5xx), to log it.
func VerifyOnError(f func(r *http.Request, err error)) VerifierOption {
	return func(o *verifierOptions) { o.onError = f }
}

// NewVerifier returns a Verifier that asks the authapi at baseURL. Its
// HTTP client keeps connections to authapi open between requests, as many
// as the service has requests in flight, so that a verification costs a
// round trip, not a connection.
func NewVerifier(baseURL string, opts ...VerifierOption) (*Verifier, error) {
	o := verifierOptions{timeout: DefaultVerifyTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if o.timeout <= 0 {
		return nil, fmt.Errorf("client: verify timeout %v is not positive", o.timeout)
	}
	if o.doer == nil {
		o.doer = &http.Client{Transport: pooledTransport()}
	}
	c, err := New(baseURL, WithHTTPClient(o.doer))
	if err != nil {
		return nil, err
	}
	return &Verifier{c: c, timeout: o.timeout, onError: o.onError}, nil
}

// pooledTransport is http.DefaultTransport's settings, with connect
// and header timeouts for a service's own calls, and idle connections
// per host enough for a busy service (the default keeps 2, so that
// concurrent requests would open a connection each).
func pooledTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.MaxIdleConns, t.MaxIdleConnsPerHost = 512, 512
	t.IdleConnTimeout = 90 * time.Second
	return t
}

type principalKey struct{}

// PrincipalFrom returns who the request acts as, once a Verifier let it
// through.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}

// Middleware returns next behind the verification. The request's API key
// (X-API-Key), method and request target, as the client sent them, are
// what authapi judges; an allowed request reaches next without its key
// (the principal stands for it, and a key cannot then be logged or
// forwarded by accident). A refusal (401, 403, or 429 should authapi
// limit the client) is authapi's answer: its problem document, challenge
// and Retry-After.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := r.RequestURI
		if target == "" { // a request made in process rather than received
			target = r.URL.RequestURI()
		}
		keys := r.Header.Values("X-API-Key")
		ctx, cancel := context.WithTimeout(r.Context(), v.timeout)
		a, err := v.c.verify(ctx, r.Method, target, func(_ context.Context, req *http.Request) error {
			req.Header["X-Api-Key"] = keys // all of them: two keys are refused, as by authapi
			return nil
		})
		cancel()
		switch {
		case err != nil:
		case a.principal != nil:
			r = r.WithContext(context.WithValue(r.Context(), principalKey{}, a.principal))
			r.Header.Del("X-API-Key")
			next.ServeHTTP(w, r)
			return
		case refusal(a.resp):
			h := w.Header()
			for _, k := range []string{"Content-Type", "WWW-Authenticate", "Retry-After", "Cache-Control"} {
				if vs := a.resp.Header.Values(k); len(vs) > 0 {
					h[k] = vs
				}
			}
			w.WriteHeader(a.resp.StatusCode)
			if r.Method != http.MethodHead {
				w.Write(a.body)
			}
			return
		default:
			err = fmt.Errorf("client: verifyApiKey: unexpected %d answer (%s)", a.resp.StatusCode, a.resp.Header.Get("Content-Type"))
		}
		if v.onError != nil {
			v.onError(r, err)
		}
		unavailable(w, r)
	})
}

// refusal reports whether authapi's answer is one to pass on to the
// client: a problem document saying the key may not (401, 403) or not now
// (429). Anything else (a 422 says the verifier sent something wrong, a
// 5xx that authapi is in trouble) is no answer about the client's key.
func refusal(resp *http.Response) bool {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests:
		return mt == "application/problem+json"
	}
	return false
}

// unavailableBody is the 503 of a request that could not be verified: the
// contract's unavailable problem, as authapi itself answers when its
// database is unreachable.
const unavailableBody = `{"type":"` + TypeUnavailable + `","title":"Service unavailable","status":503,"detail":"The authentication service could not be reached; try again shortly."}` + "\n"

func unavailable(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Retry-After", "1")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusServiceUnavailable)
	if r.Method != http.MethodHead {
		io.WriteString(w, unavailableBody)
	}
}
