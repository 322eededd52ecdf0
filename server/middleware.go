package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"regexp"
	"runtime/debug"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"authapi/limit"
	"authapi/store"
)

// requestInfo is what the middleware, the validator and the handlers learn
// about a request, in one context value.
type requestInfo struct {
	id        string // X-Request-ID
	addr      string // the client's address: the TCP peer, or what a trusted proxy says
	client    string // addr as the per-client limits count it (throttleAddress)
	userAgent string // for security events
	principal *principal
	userID    string // for the log, once known
	event     event  // for the log (events.go)
	reason    string // for the log: why, never a secret
	idSent    bool   // the request carried its ID (X-Request-ID)
	replayed  bool   // answered with a kept refusal (refusalMemo)
}

type infoKey struct{}

// actor is who makes the request, as a security event records it.
func actor(ctx context.Context) store.Actor {
	info := infoFrom(ctx)
	return store.Actor{Address: info.addr, UserAgent: info.userAgent}
}

// infoFrom returns the request's info; a zero one outside a request.
func infoFrom(ctx context.Context) *requestInfo {
	if info, ok := ctx.Value(infoKey{}).(*requestInfo); ok {
		return info
	}
	return &requestInfo{}
}

// requestIDPattern is what a well-formed incoming X-Request-ID looks like;
// anything else is replaced, so that logs cannot be forged through it.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// begin gives each request its info (request ID, client address) and the
// headers every response carries.
func (s *Server) begin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		id := req.Header.Get(echo.HeaderXRequestID)
		sent := requestIDPattern.MatchString(id)
		if !sent {
			id = newRequestID()
		}
		addr := c.RealIP()
		info := &requestInfo{id: id, idSent: sent, addr: addr, client: throttleAddress(addr), userAgent: req.UserAgent()}
		c.SetRequest(req.WithContext(context.WithValue(req.Context(), infoKey{}, info)))
		h := c.Response().Header()
		h[headerRequestID] = []string{id}
		h[echo.HeaderXContentTypeOptions] = nosniff
		// Responses carry passwords' verdicts, tokens and keys: never cache
		// them (RFC 6749 section 5.1).
		h[echo.HeaderCacheControl] = noStore
		return next(c)
	}
}

// The headers every response carries, set without canonicalising and
// allocating per request. net/http never changes a header's values in
// place, so they can be shared.
var (
	headerRequestID = http.CanonicalHeaderKey(echo.HeaderXRequestID)
	nosniff         = []string{"nosniff"}
	noStore         = []string{"no-store"}
)

func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// logRequests writes one line per request, after the response: never a
// header, body or query, so never a password, token or key. With
// Config.QuietReads, successful reads without an authentication event are
// not logged; every write, failure and authentication event still is.
func (s *Server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err) // write the problem now, so its status is logged
		}
		info := infoFrom(c.Request().Context())
		status := c.Response().Status
		s.metrics.observe(c.Request().Method, c.Path(), status, time.Since(start), info.event)
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		if s.cfg.QuietReads && status < 400 && info.event == "" &&
			(c.Request().Method == http.MethodGet || c.Request().Method == http.MethodHead) {
			return nil
		}
		if status >= 400 && status < 500 && !s.logs.allow(info.client) {
			return nil // counted, and summed up once per interval
		}
		if !s.cfg.Logger.Enabled(c.Request().Context(), level) {
			return nil
		}
		attrs := []slog.Attr{
			slog.String("request_id", info.id),
			slog.String("method", c.Request().Method),
			slog.String("route", c.Path()),
			slog.String("path", c.Request().URL.Path),
			slog.Int("status", status),
			slog.Duration("duration", time.Since(start)),
			slog.String("client", info.addr),
		}
		if info.userID != "" {
			attrs = append(attrs, slog.String("user_id", info.userID))
		}
		if info.event != "" {
			attrs = append(attrs, slog.String("event", string(info.event)), slog.String("reason", info.reason))
		}
		s.cfg.Logger.LogAttrs(c.Request().Context(), level, "request", attrs...)
		return nil
	}
}

// replayRefusals answers a gateway's second question about a refused
// verification with the first answer (refusalMemo), before any limit.
func (s *Server) replayRefusals(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Path() == verifyPath {
			info := infoFrom(c.Request().Context())
			if p := s.refusals.get(info, c.Request(), time.Now()); p != nil {
				info.replayed = true
				info.event, info.reason = eventRefusalReplayed, "a gateway asked again about a refused verification"
				return p
			}
		}
		return next(c)
	}
}

// refuseParked answers at once a request that waited for a turn in vain
// (limit.Listener, which the binary puts in front of the server for
// AUTH_CONCURRENCY_PER_ADDRESS): its address had that many requests in
// service all the while. Health checks are served all the same.
func (s *Server) refuseParked(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !limit.Refused(c.Request().Context()) {
			return next(c)
		}
		if p := c.Path(); p == pathHealthz || p == pathReadyz {
			return next(c)
		}
		info := infoFrom(c.Request().Context())
		info.event, info.reason = eventRateLimited, "requests per address at once"
		return refuseConcurrent.after(time.Second)
	}
}

// limitRate refuses a client address's requests beyond
// Config.RateLimitPerAddress, before any other work. Health checks are
// exempt: a load balancer polls them from one address.
func (s *Server) limitRate(next echo.HandlerFunc) echo.HandlerFunc {
	if s.limits.rate == nil {
		return next
	}
	return func(c echo.Context) error {
		if p := c.Path(); p == pathHealthz || p == pathReadyz {
			return next(c)
		}
		info := infoFrom(c.Request().Context())
		if ok, wait := s.limits.rate.Allow(info.client, time.Now()); !ok {
			info.event, info.reason = eventRateLimited, "requests per address"
			return refuseRequests.after(wait)
		}
		return next(c)
	}
}

// logInterval is the period of the log's budget of failed requests per
// client address, and of the summary of those it left out.
const logInterval = 10 * time.Second

// Bounds of the log sampler: lines of failed requests per address per
// interval, and addresses summed up one by one per interval (the rest are
// summed up together).
const (
	logLinesPerInterval = 20
	logMaxSummaries     = 1000
)

// logSampler keeps a flood of failed requests (4xx) from writing a line
// each: each client address has a budget of lines per interval, and what
// goes beyond it is counted and summed up in one line per address and
// interval. Server errors are always logged.
type logSampler struct {
	budget  *limit.Buckets
	mu      sync.Mutex
	skipped map[string]int // client -> requests not logged; "" for the rest
}

func newLogSampler() *logSampler {
	return &logSampler{budget: limit.New(logLinesPerInterval, logInterval, 0), skipped: make(map[string]int)}
}

// allow reports whether a failed request of client may be logged, and
// counts it otherwise.
func (l *logSampler) allow(client string) bool {
	if l == nil { // a Server made without New, in tests
		return true
	}
	if ok, _ := l.budget.Allow(client, time.Now()); ok {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.skipped[client]; !ok && len(l.skipped) >= logMaxSummaries {
		client = ""
	}
	l.skipped[client]++
	return false
}

// flush writes the summary of the requests not logged since the last flush.
func (l *logSampler) flush(log *slog.Logger) {
	l.mu.Lock()
	skipped := l.skipped
	l.skipped = make(map[string]int)
	l.mu.Unlock()
	for client, n := range skipped {
		if client == "" {
			client = "other addresses"
		}
		log.Info("requests not logged", "event", string(eventRequestsNotLogged), "client", client, "count", n,
			"reason", fmt.Sprintf("more than %d failed requests from the address in %v", logLinesPerInterval, logInterval))
	}
}

// recoverPanics turns a panic into a 500 whose body reveals nothing; the
// stack goes to the log.
func (s *Server) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				s.cfg.Logger.Error("panic", "request_id", infoFrom(c.Request().Context()).id, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = errInternal
			}
		}()
		return next(c)
	}
}

// throttleAddress is the unit a client address counts as for the
// per-client limits (limit.AddressKey): an IPv4 address, or an IPv6 /64.
func throttleAddress(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	return limit.AddressKey(ip)
}

// ipExtractor decides the client address: the TCP peer, unless the peer is
// a trusted proxy, in which case X-Forwarded-For is believed up to the first
// address that is not one.
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		opts = append(opts, echo.TrustIPRange(prefixToIPNet(p)))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}
