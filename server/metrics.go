package server

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, in a registry of its own (so
// that several servers can live in one process, as in tests), served at
// GET /metrics.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.HistogramVec
	logins   *prometheus.CounterVec
	keys     *prometheus.CounterVec
	listings *prometheus.CounterVec

	// The children of requests by route and status: WithLabelValues hashes
	// its labels on every call, a lookup here does not allocate.
	observers                   sync.Map        // routeStatus -> prometheus.Observer
	routes                      map[string]bool // "METHOD route" of every route
	keyHit, keyMiss, keyRefused prometheus.Counter
	listCached, listRead        prometheus.Counter
}

type routeStatus struct {
	method, route string
	status        int
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: string(metricRequestDuration),
		Help: "Time to serve a request, by operation (method and route) and status; its _count counts requests.",
		// From a cached key check (tens of µs) to a queued password hash (seconds).
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"operation", "status"})
	m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: string(metricLogins),
		Help: "Login attempts by outcome: succeeded, failed (unknown user or wrong password), throttled.",
	}, []string{"outcome"})
	m.keys = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: string(metricKeyVerifications),
		Help: "API key checks by result: hit (the credential cache answered), miss (the database did), refused (missing, malformed, unknown or revoked).",
	}, []string{"result"})
	m.keyHit, m.keyMiss, m.keyRefused = m.keys.WithLabelValues("hit"), m.keys.WithLabelValues("miss"), m.keys.WithLabelValues("refused")
	m.listings = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: string(metricKeyListings),
		Help: "Key listings served, by source: cache (after hearing every change committed before the request) or database.",
	}, []string{"source"})
	m.listCached, m.listRead = m.listings.WithLabelValues("cache"), m.listings.WithLabelValues("database")
	for _, o := range []string{"succeeded", "failed", "throttled"} {
		m.logins.WithLabelValues(o)
	}

	gauge := func(name metricName, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: string(name), Help: help}, f)
	}
	counter := func(name metricName, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: string(name), Help: help}, f)
	}
	m.reg.MustRegister(
		m.requests, m.logins, m.keys, m.listings,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		gauge(metricHashRunning, "Password hashes being computed.", func() float64 { return float64(s.cfg.Hasher.Running()) }),
		gauge(metricHashQueueLength, "Requests waiting for a password hashing worker.", func() float64 { return float64(s.cfg.Hasher.Queued()) }),
		gauge(metricPoolOpen, "Open database connections, in use or idle.", func() float64 { return float64(s.cfg.Store.Stats().OpenConnections) }),
		gauge(metricPoolInUse, "Database connections in use.", func() float64 { return float64(s.cfg.Store.Stats().InUse) }),
		gauge(metricPoolIdle, "Idle database connections.", func() float64 { return float64(s.cfg.Store.Stats().Idle) }),
		gauge(metricPoolMaxOpen, "Bound on open database connections.", func() float64 { return float64(s.cfg.Store.Stats().MaxOpenConnections) }),
		counter(metricPoolWaits, "Times a statement waited for a free connection.", func() float64 { return float64(s.cfg.Store.Stats().WaitCount) }),
		counter(metricPoolWaitSeconds, "Time spent waiting for a free connection.", func() float64 { return s.cfg.Store.Stats().WaitDuration.Seconds() }),
		gauge(metricCacheListening, "1 while change notifications are heard and the credential cache is used, else 0.", func() float64 {
			if s.cache.Enabled() {
				return 1
			}
			return 0
		}),
		gauge(metricCacheAPIKeys, "API keys in the credential cache.", func() float64 { return float64(s.cache.Stats().Keys) }),
		gauge(metricCacheUsers, "JWT users in the credential cache.", func() float64 { return float64(s.cache.Stats().Users) }),
		gauge(metricCacheKeyListings, "Users whose key listing is in the credential cache.", func() float64 { return float64(s.cache.Stats().Lists) }),
	)
	return m
}

// handler serves the registry on the API's routes.
func (m *metrics) handler() echo.HandlerFunc { return echo.WrapHandler(m.httpHandler()) }

func (m *metrics) httpHandler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// observe records a served request and its log event. Its labels are
// bounded, whatever the client sends: a method and route that are not a
// registered route are "unmatched" (a 404 or 405).
func (m *metrics) observe(method, route string, status int, took time.Duration, ev event) {
	if m == nil { // a Server made without New, in tests
		return
	}
	if outcome, ok := loginOutcomes[ev]; ok {
		m.logins.WithLabelValues(outcome).Inc()
	}
	k := routeStatus{method, route, status}
	if !m.routes[method+" "+route] {
		k = routeStatus{"", "unmatched", status}
	}
	o, ok := m.observers.Load(k)
	if !ok {
		op := k.route
		if k.method != "" {
			op = k.method + " " + k.route
		}
		o, _ = m.observers.LoadOrStore(k, m.requests.WithLabelValues(op, strconv.Itoa(status)))
	}
	o.(prometheus.Observer).Observe(took.Seconds())
}

// knowRoutes records the routes of e, once they are all added.
func (m *metrics) knowRoutes(e *echo.Echo) {
	m.routes = make(map[string]bool)
	for _, r := range e.Routes() {
		m.routes[r.Method+" "+r.Path] = true
	}
}

// loginOutcomes maps the log events of a login to the outcome label.
var loginOutcomes = map[event]string{eventLoginSucceeded: "succeeded", eventLoginFailed: "failed", eventLoginThrottled: "throttled"}
