// Package server is the HTTP side of authapi: it implements the strict
// server interface generated from openapi.yaml, and builds the Echo stack
// around it (request validation and authentication from the spec, one error
// handler that writes every failure as RFC 9457 problem+json, logging,
// recovery).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"authapi/apikey"
	"authapi/credcache"
	"authapi/gen"
	"authapi/keyuse"
	"authapi/limit"
	"authapi/password"
	"authapi/store"
	"authapi/token"
)

// DefaultBodyLimit is the largest request body accepted.
const DefaultBodyLimit = 64 << 10

// RegisterWindow is the window of the registration limit per address.
const RegisterWindow = time.Hour

// Config is what a Server needs. Store, Hasher, Tokens and Keys are required.
type Config struct {
	Store  *store.DB
	Hasher *password.Hasher
	Tokens *token.Service
	Keys   *apikey.Digester
	Logger *slog.Logger // nil discards

	// BodyLimit bounds request bodies in bytes (0: DefaultBodyLimit).
	BodyLimit int64
	// LoginMaxFailures is how many failed logins one username may have from
	// one client address within LoginWindow before 429 (0: no limit).
	LoginMaxFailures int
	// LoginMaxFailuresPerAddress is how many failed logins one client
	// address may have over all usernames within LoginWindow (0: no limit).
	LoginMaxFailuresPerAddress int
	LoginWindow                time.Duration
	// RegisterMaxPerAddress is how many registrations one client address
	// may attempt within RegisterWindow (0: no limit).
	RegisterMaxPerAddress int
	// MaxActiveKeys caps a user's active API keys (0: no cap).
	MaxActiveKeys int
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// KeyMaxLifetime bounds how far ahead a key's expiry may be (0: no bound).
	KeyMaxLifetime time.Duration
	// KeyDefaultLifetime is the lifetime of a key created without an expiry
	// (0: such keys never expire).
	KeyDefaultLifetime time.Duration
	// Now is the clock for key expiry, rotation and last use, and for the
	// age of a login (a token's auth_time) that account deletion checks
	// (nil: time.Now).
	Now func() time.Time
	// HeaderLimit bounds the request line and headers in bytes
	// (0: DefaultHeaderLimit); beyond it, 431.
	HeaderLimit int
	// CORSOrigins are the browser origins allowed to call the API ("*":
	// any); none turns CORS off.
	CORSOrigins []string
	// QuietReads leaves out of the log the successful GET and HEAD
	// requests that carry no authentication event (GET /v1/me with a good
	// key, listings, health checks); writes, failures and authentication
	// events are always logged.
	QuietReads bool
	// CredentialCacheSize bounds the API keys, and separately the JWT
	// users and the users' key listings, that are remembered (0: no
	// cache). The cache is used only while ChangeListener's listener hears the
	// database.
	CredentialCacheSize int
	// CredentialCacheTTL bounds how long an entry is remembered
	// (0: DefaultCredentialCacheTTL).
	CredentialCacheTTL time.Duration

	// The per-client limits, kept in memory and checked before any
	// database work; 0 turns each off.
	//
	// RateLimitPerAddress is requests per second from one client address
	// (an IPv6 /64), in bursts of up to a second's worth, on every route
	// but /healthz and /readyz.
	RateLimitPerAddress int
	// LoginMaxPerAddress is login attempts, successes too, per client
	// address per LoginWindow.
	LoginMaxPerAddress int
	// AuthFailuresPerAddress is failed credential checks (API key or JWT)
	// per client address per minute; beyond it, a credential the cache
	// cannot vouch for gets 429 without a lookup.
	AuthFailuresPerAddress int
	// KeyWritesPerUser is API key creations, rotations and revocations per
	// user per hour.
	KeyWritesPerUser int
	// PasswordChecksPerAddress is how many password checks (login,
	// registration, password change, account deletion) of one client
	// address run at once on this instance, hash and throttle
	// transactions included; the others wait their turn, holding
	// nothing, for up to 10 s. 0: no bound.
	PasswordChecksPerAddress int
	// ThrottleDelay is how long a request refused with 429 is held before
	// its answer, keeping its turn among its address's concurrent
	// requests (the binary's listener): a flood then gets few answers a
	// second per address, however cheap each refusal is.
	ThrottleDelay time.Duration

	// RevokedKeyRetention is how long revoked and expired keys are kept,
	// listed as inactive, before the background work deletes them (0:
	// forever).
	RevokedKeyRetention time.Duration

	// ReauthMaxAge is how recent a login must be for account deletion
	// (0: DefaultReauthMaxAge).
	ReauthMaxAge time.Duration
	// EventRetention is how long security events are kept (0: forever).
	EventRetention time.Duration

	// MetricsElsewhere leaves /metrics off the API's routes, for a
	// listener of its own (MetricsHandler).
	MetricsElsewhere bool
}

// DefaultCredentialCacheTTL is the lifetime of a cached credential when
// Config leaves it unset: a backstop, since changes are notified.
const DefaultCredentialCacheTTL = time.Minute

// Server implements the API.
type Server struct {
	cfg     Config // as given, defaults filled in
	metrics *metrics
	echo    *echo.Echo
	logs    *logSampler

	cache   *credcache.Cache[*keyEntry]
	changes atomic.Pointer[store.Changes] // set by ChangeListener
	uses    *keyuse.Writer

	scopes       map[*openapi3.Operation][]string // x-required-scopes of each operation
	byMethod     map[*openapi3.Operation]*methodScopes
	verifyScopes *methodScopes // verify.go

	limits clientLimits
	// refusals of GET /v1/auth/verify, for a gateway asking again
	refusals *refusalMemo
}

// clientLimits are the per-client limits, kept in memory and checked
// before any database work (Config's RateLimitPerAddress and after).
type clientLimits struct {
	rate      *limit.Buckets // requests per address
	logins    *limit.Buckets // login attempts per address
	authFails *limit.Buckets // failed credential checks per address
	keyWrites *limit.Buckets // key changes per user
	passwords *limit.Gate    // password checks at once per address; nil: no bound
}

var _ gen.StrictServerInterface = (*Server)(nil)

// New builds the server and its HTTP stack.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Hasher == nil || cfg.Tokens == nil || cfg.Keys == nil {
		return nil, errors.New("server: Store, Hasher, Tokens and Keys are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = DefaultBodyLimit
	}
	if cfg.CredentialCacheTTL <= 0 {
		cfg.CredentialCacheTTL = DefaultCredentialCacheTTL
	}
	if cfg.HeaderLimit <= 0 {
		cfg.HeaderLimit = DefaultHeaderLimit
	}
	if cfg.ReauthMaxAge <= 0 {
		cfg.ReauthMaxAge = DefaultReauthMaxAge
	}
	corsMiddleware, err := cors(cfg.CORSOrigins)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if (cfg.LoginMaxFailures > 0 || cfg.LoginMaxFailuresPerAddress > 0 || cfg.LoginMaxPerAddress > 0) && cfg.LoginWindow <= 0 {
		return nil, errors.New("server: a login limit needs a positive window")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		cfg:   cfg,
		cache: credcache.New[*keyEntry](cfg.CredentialCacheSize, cfg.CredentialCacheTTL),
		limits: clientLimits{
			rate:      limit.New(cfg.RateLimitPerAddress, time.Second, 0),
			logins:    limit.New(cfg.LoginMaxPerAddress, cfg.LoginWindow, 0),
			authFails: limit.New(cfg.AuthFailuresPerAddress, time.Minute, 0),
			keyWrites: limit.New(cfg.KeyWritesPerUser, time.Hour, 0),
		},
		logs:     newLogSampler(),
		refusals: newRefusalMemo(cfg.TrustedProxies),
	}
	if cfg.PasswordChecksPerAddress > 0 {
		s.limits.passwords = &limit.Gate{Size: cfg.PasswordChecksPerAddress}
	}
	s.uses = keyuse.New(cfg.Store, cfg.Now, func(owner uuid.UUID) {
		// The listings show the uses: this instance's at once, the
		// others' when they hear of it.
		s.keysChanged(owner, nil)
	})
	s.metrics = newMetrics(s)
	spec, err := gen.GetSwagger()
	if err != nil {
		return nil, fmt.Errorf("server: load the embedded spec: %w", err)
	}
	if s.scopes, err = requiredScopes(spec); err != nil {
		return nil, err
	}
	if err := s.readScopesByMethod(spec); err != nil {
		return nil, err
	}
	v, err := newValidator(spec, s.authenticate, cfg.BodyLimit)
	if err != nil {
		return nil, fmt.Errorf("server: build the validator: %w", err)
	}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Binder = validatedBinder{}
	e.IPExtractor = ipExtractor(cfg.TrustedProxies)
	e.Use(s.begin, s.logRequests, s.replayRefusals, s.refuseParked, s.limitRate, s.recoverPanics)
	if corsMiddleware != nil {
		e.Use(corsMiddleware) // before the header limit, so that browsers can read its 431
	}
	e.Use(s.limitHeaders)

	if err := s.addRoutes(e, spec, v); err != nil {
		return nil, err
	}
	s.metrics.knowRoutes(e)
	s.echo = e
	return s, nil
}

// Handler returns the HTTP handler serving the API.
func (s *Server) Handler() http.Handler { return s.echo }

// MetricsHandler serves the Prometheus metrics, for a listener of their
// own (Config.MetricsElsewhere).
func (s *Server) MetricsHandler() http.Handler { return s.metrics.httpHandler() }

// ChangeListener returns the listener that keeps the credential cache in
// step with the database, on a session connection to url (not through a
// pooler in transaction mode); the caller runs it (Run) until shutdown.
// Until it hears the database, the cache is bypassed. It returns nil when
// the cache is off (Config.CredentialCacheSize 0).
func (s *Server) ChangeListener(url string) *store.Changes {
	if s.cfg.CredentialCacheSize <= 0 {
		return nil
	}
	c := s.cfg.Store.Changes(url, s.cache, s.cfg.Logger)
	s.changes.Store(c)
	return c
}

// heardAll reports whether every change to credentials committed before
// now has been heard (store.Changes.Sync); false when that cannot be told.
func (s *Server) heardAll(ctx context.Context) bool {
	c := s.changes.Load()
	return c != nil && c.Sync(ctx) == nil
}

// KeyUses returns the writer of the API keys' last use, which requests
// record uses in; the caller writes them every few seconds (so that a use
// shows within five) and once more at shutdown.
func (s *Server) KeyUses() *keyuse.Writer { return s.uses }

// LogSummaryInterval is how often FlushLogSummaries should run.
const LogSummaryInterval = logInterval

// FlushLogSummaries logs a summary of the failed requests the log left
// out since the last call.
func (s *Server) FlushLogSummaries() { s.logs.flush(s.cfg.Logger) }

// requiredScopes reads each operation's x-required-scopes, so that an
// operation gets its scope check by declaring it in the spec.
func requiredScopes(spec *openapi3.T) (map[*openapi3.Operation][]string, error) {
	out := make(map[*openapi3.Operation][]string)
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			raw, ok := op.Extensions["x-required-scopes"]
			if !ok {
				continue
			}
			list, ok := raw.([]any)
			if !ok {
				return nil, fmt.Errorf("server: %s %s: x-required-scopes is not a list", method, path)
			}
			for _, v := range list {
				scope, ok := v.(string)
				if !ok {
					return nil, fmt.Errorf("server: %s %s: x-required-scopes holds a non-string", method, path)
				}
				out[op] = append(out[op], scope)
			}
		}
	}
	return out, nil
}

// loginLimits are the configured login budgets.
func (s *Server) loginLimits() store.LoginLimits {
	return store.LoginLimits{PerPair: s.cfg.LoginMaxFailures, PerAddress: s.cfg.LoginMaxFailuresPerAddress, Window: s.cfg.LoginWindow}
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
