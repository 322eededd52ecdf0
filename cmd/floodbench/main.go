// Command floodbench measures what one client's flood costs the others
// (issue 11, section 2), and writes the results into BENCHMARKS.md
// (`make bench-flood`).
//
// Each run starts a fresh authapi on the embedded default (a temporary data
// folder) with every setting at its default: the per-client limits are what
// is measured. Clients speak from addresses of their own on loopback (the
// server counts the TCP peer): the flooders from 127.0.0.2 and 127.0.0.4,
// the victim from 127.0.0.3, the set-up and the /metrics scrapes from
// 127.0.0.1. In each run, for each scenario, the victim measures its
// requests while nothing else happens (idle), then again while one address
// floods:
//
//   - logins: 127.0.0.2 sends bad logins (a wrong password for the
//     victim's account, unknown usernames) at -conns connections; the
//     victim logs in and creates API keys with a JWT;
//   - keys: 127.0.0.4 sends GET /v1/me with well-formed unknown API keys
//     (a valid checksum, so each needs a lookup) at -conns connections; the
//     victim calls GET /v1/me with its key.
//
// In the keys scenario the victim also creates a key every -login-every,
// at the same time: that request needs the database, GET /v1/me with a
// cached key does not.
//
// The victim paces its requests (one round every -login-every or
// -me-every) so that its own budgets (600 logins per 15 minutes, 100
// active keys, 1000 requests a second) never refuse it. The flood runs in
// a process of its own (this binary, "floodbench flood"), so that its
// garbage collection and goroutines do not delay the victim's clock; it
// shares the machine's CPUs with the server, PostgreSQL and the victim, as
// the report says.
//
// Every figure is per run, then the median over runs; percentiles are
// over every run's samples pooled.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"authapi/internal/authproc"
	"authapi/internal/bench"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "flood" {
		if err := floodMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "floodbench flood:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "floodbench:", err)
		os.Exit(1)
	}
}

// The loopback addresses of the clients.
const (
	setupAddr      = "127.0.0.1" // registration, tokens, /metrics
	loginFloodAddr = "127.0.0.2"
	victimAddr     = "127.0.0.3"
	keyFloodAddr   = "127.0.0.4"
)

type options struct {
	bin        string
	runs       int
	duration   time.Duration
	conns      int
	loginEvery time.Duration
	meEvery    time.Duration
	scenario   string
	out        string
	flags      string // those given, but -bin and -out: the report's reproduce line
}

func run() error {
	var o options
	flag.StringVar(&o.bin, "bin", "", "authapi binary to measure (empty: build ./cmd/authapi)")
	flag.IntVar(&o.runs, "runs", 3, "runs, each on a fresh server; every figure is the median over them")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "length of each phase (idle, flood)")
	flag.IntVar(&o.conns, "conns", 300, "connections of the flood")
	flag.DurationVar(&o.loginEvery, "login-every", 100*time.Millisecond, "the victim's pace of logins and key creations: a login and a key creation (logins), a key creation (keys) every this")
	flag.DurationVar(&o.meEvery, "me-every", 20*time.Millisecond, "the victim's pace in the key scenario: a GET /v1/me every this")
	flag.StringVar(&o.scenario, "scenario", "all", "logins, keys or all")
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "file whose bench-flood section is replaced by the results (empty: none)")
	flag.Parse()
	var given []string
	flag.Visit(func(f *flag.Flag) {
		if f.Name != "bin" && f.Name != "out" {
			given = append(given, "-"+f.Name+" "+f.Value.String())
		}
	})
	o.flags = strings.Join(given, " ")
	if err := o.check(); err != nil {
		return err
	}

	// Ctrl-C or SIGTERM: stop the flood and the server, remove the data.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "floodbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if o.bin == "" {
		fmt.Fprintln(os.Stderr, "building authapi")
		if o.bin, err = authproc.Build(dir); err != nil {
			return err
		}
	}

	var runs []runResult
	for i := range o.runs {
		fmt.Fprintf(os.Stderr, "run %d of %d\n", i+1, o.runs)
		r, err := oneRun(ctx, o, filepath.Join(dir, fmt.Sprintf("run%d", i+1)))
		if ctx.Err() != nil {
			return errors.New("interrupted")
		}
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		runs = append(runs, r)
	}
	report := format(o, runs)
	fmt.Print(report)
	if o.out != "" {
		return bench.ReplaceSection(o.out, beginMarker, endMarker, report)
	}
	return nil
}

// Markers around the section of BENCHMARKS.md that make bench-flood
// rewrites.
const (
	beginMarker = "<!-- make bench-flood: begin -->"
	endMarker   = "<!-- make bench-flood: end -->"
)

// The server's defaults that bound the victim (README, Security): it must
// stay within them, or its own refusals would be measured.
const (
	loginsPerWindow = 600  // AUTH_LOGIN_MAX_PER_ADDRESS per 15 minutes
	requestsPerSec  = 1000 // AUTH_RATE_LIMIT_PER_ADDRESS
	keysPerUser     = 95   // below AUTH_MAX_ACTIVE_KEYS (100)
)

func (o *options) check() error {
	switch {
	case o.runs < 1 || o.duration < time.Second || o.conns < 1:
		return errors.New("-runs, -duration (at least 1s) and -conns must be positive")
	case o.scenario != "all" && o.scenario != "logins" && o.scenario != "keys":
		return fmt.Errorf("-scenario %q: want logins, keys or all", o.scenario)
	case o.loginEvery <= 0 || 2*rounds(o.duration, o.loginEvery) > loginsPerWindow-50:
		return fmt.Errorf("-login-every %v: the victim would log in %d times in a run, past its own budget of %d per 15 minutes",
			o.loginEvery, 2*rounds(o.duration, o.loginEvery), loginsPerWindow)
	case o.meEvery <= 0 || time.Second/o.meEvery > requestsPerSec/2:
		return fmt.Errorf("-me-every %v: the victim would send more than half its budget of %d requests a second", o.meEvery, requestsPerSec)
	}
	return nil
}

// rounds is how many rounds, at most, a victim paced every `every` runs in d.
func rounds(d, every time.Duration) int { return int(d/every) + 1 }

func (o *options) has(scenario string) bool { return o.scenario == "all" || o.scenario == scenario }

// runResult is one run: a server, each scenario once.
type runResult struct {
	logins, keys *scenarioResult
	load         string // load averages before → after
}

// scenarioResult is one scenario in one run.
type scenarioResult struct {
	idle, flood phase
	flooder     floodResult
	log         logCount
}

// oneRun starts a server in dir, runs the scenarios and stops the server.
func oneRun(ctx context.Context, o options, dir string) (runResult, error) {
	r := runResult{load: bench.Loadavg()}
	s, err := startServer(o.bin, dir)
	if err != nil {
		return r, err
	}
	defer s.stop()
	// Each phase that creates keys (idle and flood, of each scenario)
	// gets users of its own.
	perPhase := (rounds(o.duration, o.loginEvery) + keysPerUser - 1) / keysPerUser
	if err := s.setUp(4 * perPhase); err != nil {
		return r, fmt.Errorf("set-up: %w", err)
	}
	users := func(scenario int, flooded bool) []account {
		i := 2 * scenario
		if flooded {
			i++
		}
		return s.keyUsers[i*perPhase : (i+1)*perPhase]
	}
	v := newVictim(s.url)
	if o.has("logins") {
		r.logins, err = s.scenario(ctx, o, "logins", loginFloodAddr, func(flooded bool, until time.Time) map[string][]sample {
			return v.loginsAndKeys(ctx, until, o.loginEvery, s.victim, users(0, flooded))
		})
		if err != nil {
			return r, fmt.Errorf("logins: %w", err)
		}
	}
	if o.has("keys") {
		// The key creations are not in the targets: they show
		// what the flood does to a request that needs the database.
		r.keys, err = s.scenario(ctx, o, "keys", keyFloodAddr, func(flooded bool, until time.Time) map[string][]sample {
			return v.meAndKeys(ctx, until, o.meEvery, o.loginEvery, s.victim.key, users(1, flooded))
		})
		if err != nil {
			return r, fmt.Errorf("keys: %w", err)
		}
	}
	// Stopping flushes the log sampler's last summaries.
	s.stop()
	if err := s.countLogs(r.logins, loginFloodAddr); err != nil {
		return r, err
	}
	if err := s.countLogs(r.keys, keyFloodAddr); err != nil {
		return r, err
	}
	r.load += " → " + bench.Loadavg()
	return r, nil
}

// server is a running authapi with the victim's accounts.
type server struct {
	*authproc.Process
	url      string
	setup    *client
	victim   account   // logs in; its key answers GET /v1/me
	keyUsers []account // create keys, keysPerUser each at most
}

// account is a registered user with a token (and, for the victim, an API
// key).
type account struct {
	name, password, token, key string
}

func startServer(bin, dir string) (*server, error) {
	p, err := authproc.Start(bin, map[string]string{
		"AUTH_ADDR":     "127.0.0.1:0",
		"AUTH_DATA_DIR": dir,
		// Every other setting is left at its default, the per-client
		// limits above all: they are what is measured.
	}, 2*time.Minute)
	if err != nil {
		return nil, err
	}
	return &server{Process: p, url: p.URL, setup: newClient(setupAddr, 4)}, nil
}

// stop ends the server gracefully (it stops its PostgreSQL); the second
// call does nothing.
func (s *server) stop() { s.Stop(time.Minute) }

// setUp registers the victim and n users who create keys, and logs each
// in, from the set-up address.
func (s *server) setUp(n int) error {
	var err error
	if s.victim, err = s.register("victim"); err != nil {
		return err
	}
	if s.victim.key, err = s.setup.createKey(s.url, s.victim.token); err != nil {
		return err
	}
	for i := range n {
		u, err := s.register(fmt.Sprintf("keys%d", i))
		if err != nil {
			return err
		}
		s.keyUsers = append(s.keyUsers, u)
	}
	return nil
}

func (s *server) register(name string) (account, error) {
	var pw [12]byte
	rand.Read(pw[:])
	a := account{name: name, password: hex.EncodeToString(pw[:])}
	if err := s.setup.register(s.url, a.name, a.password); err != nil {
		return a, err
	}
	var err error
	a.token, err = s.setup.login(s.url, a.name, a.password)
	return a, err
}

// scenario measures the victim idle, then again under a flood from addr.
func (s *server) scenario(ctx context.Context, o options, kind, addr string, victim func(flooded bool, until time.Time) map[string][]sample) (*scenarioResult, error) {
	res := &scenarioResult{}
	fmt.Fprintf(os.Stderr, "  %s: idle %v\n", kind, o.duration)
	res.idle = s.measure(func(until time.Time) map[string][]sample { return victim(false, until) }, o.duration)
	if err := s.alive(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "  %s: flood from %s at %d connections, %v\n", kind, addr, o.conns, o.duration)
	f, err := startFlood(ctx, floodConfig{URL: s.url, From: addr, Conns: o.conns, Kind: kind, Username: s.victim.name})
	if err != nil {
		return nil, err
	}
	res.flood = s.measure(func(until time.Time) map[string][]sample { return victim(true, until) }, o.duration)
	if res.flooder, err = f.stop(); err != nil {
		return nil, err
	}
	if err := s.alive(ctx); err != nil {
		return nil, err
	}
	res.flood.cpuFlooder = res.flooder.CPU
	if n := res.flooder.Answers["error"]; 2*n > res.flooder.Requests {
		return nil, fmt.Errorf("%d of the flood's %d requests failed: %s", n, res.flooder.Requests, res.flooder.Error)
	}
	fmt.Fprintf(os.Stderr, "  %s\n  %s\n", res.idle.summary("idle"), res.flood.summary("flood"))
	fmt.Fprintf(os.Stderr, "  flood: %d requests, %s\n", res.flooder.Requests, res.flooder.mix())
	// Let what the flood left in the server drain before the next phase.
	s.settle(ctx)
	return res, ctx.Err()
}

// alive says why the measurement must stop: an interruption, or the server
// gone.
func (s *server) alive(ctx context.Context) error {
	select {
	case <-s.Exited():
		log := s.Log.String()
		return fmt.Errorf("authapi exited; the end of its log:\n%s", log[max(len(log)-4096, 0):])
	default:
	}
	return ctx.Err()
}

// settle waits until no password hash is queued or running and no database
// connection is in use (at most 30 s), and one second more.
func (s *server) settle(ctx context.Context) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		m, err := s.setup.metrics(s.url)
		if err == nil && m.value("authapi_password_hash_queue_length") == 0 &&
			m.value("authapi_password_hash_running") == 0 && m.value("authapi_db_pool_in_use_connections") == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	sleep(ctx, time.Second)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
