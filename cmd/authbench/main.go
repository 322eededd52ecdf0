// Command authbench measures authapi under load next to the machine's own
// limits, and writes the results into BENCHMARKS.md (`make bench`).
//
// It starts the given authapi binary on the embedded default (a temporary
// data folder, a free port) and drives each operation with wrk at 1 and at
// 32 connections. In the same run it measures the limits the operations are
// judged against: for cheap calls, GET /healthz, which does no work behind
// the same server-wide middleware; for hashing calls, the raw argon2id rate
// of the server's parameters on all CPUs, computed here. Every figure is the
// median of several runs.
//
// The bench turns the server's login and registration throttles off (it
// logs in and registers from one address far beyond them) and its cap on
// active keys per user (it creates thousands of keys for one user).
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/argon2"

	"authapi/internal/authproc"
	"authapi/internal/bench"
	"authapi/internal/nginxproc"
)

// The server's argon2id parameters: its defaults.
const (
	argonMemory  = 19456
	argonTime    = 2
	argonThreads = 1
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "authbench:", err)
		os.Exit(1)
	}
}

type options struct {
	bin      string
	runs     int
	duration time.Duration
	out      string
	only     string
	extra    []string
}

func run() error {
	var o options
	var extra string
	flag.StringVar(&o.bin, "bin", "bin/authapi", "authapi binary to measure")
	flag.IntVar(&o.runs, "runs", 3, "runs; every figure is the median over them")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of each load")
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "file whose bench section is replaced by the results (empty: none)")
	flag.StringVar(&o.only, "only", "", "run only the operations whose name contains one of these, comma-separated (and the no-work route, and the operations their ratios need)")
	flag.StringVar(&extra, "server-env", "", "extra KEY=VALUE settings for the server, comma-separated")
	growth := flag.Bool("growth", false, "compare a small database with a large one instead (make bench-growth; growth: flags)")
	var g growthOptions
	sizes := growthFlags(&g)
	flag.Parse()
	if extra != "" {
		o.extra = strings.Split(extra, ",")
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk is not installed: apt-get install wrk")
	}
	if _, err := os.Stat(o.bin); err != nil {
		return fmt.Errorf("no authapi binary at %s: go build -o %s ./cmd/authapi", o.bin, o.bin)
	}
	if *growth {
		var err error
		if g.cacheSizes, err = parseSizes(*sizes); err != nil {
			return err
		}
		return runGrowth(o, g)
	}
	sel := selected(o)
	for _, op := range operations {
		if sel[op.name] && (op.via == viaNginx || op.via == viaGateway) {
			if _, err := nginxproc.Find(); err != nil {
				return fmt.Errorf("%s: %w", op.name, err)
			}
		}
	}

	var runs []map[string]result
	var loads []string
	var rawRates []float64
	for i := range o.runs {
		fmt.Fprintf(os.Stderr, "run %d of %d\n", i+1, o.runs)
		load := bench.Loadavg()
		res, raw, err := oneRun(o)
		if err != nil {
			return err
		}
		runs = append(runs, res)
		rawRates = append(rawRates, raw...)
		loads = append(loads, load+" → "+bench.Loadavg())
	}
	report := format(o, runs, rawRates, loads)
	fmt.Print(report)
	if o.out != "" {
		return writeSection(o.out, "bench", report)
	}
	return nil
}

// result is one wrk run.
type result struct {
	rps      float64
	p50, p99 time.Duration
	errors   int
	requests int
	ratio    float64
	// CPU time per request of the authapi process and of its PostgreSQL:
	// unlike rates, barely moved by other work on the machine.
	cpuServer, cpuDB time.Duration
}

// operation is what wrk drives.
type operation struct {
	name string // as in the report
	// limit is what the operation's rate is judged against: "argon2id",
	// or a key of references (another operation of the same run).
	limit string
	setup func(s *server) (script string, err error)
	// via is what serves it: "" authapi; viaBare a bare Echo in this
	// process; viaNginx and viaGateway nginx (see server.gateway).
	via string
	// paired: the ratio to its limit (another operation) is measured in
	// slices alternating with it, so that on a shared machine both sides
	// see the same moments' load.
	paired bool
}

const (
	viaBare    = "bare"
	viaNginx   = "nginx"   // nginx straight to the upstream
	viaGateway = "gateway" // nginx, authapi's check, then the upstream
)

// references are the operations whose rate is the limit of others, by
// the name their limit gives.
var references = map[string]string{
	"healthz": "GET /healthz (no work)",
	"me":      "GET /v1/me (API key)",
	"nginx":   "GET /v1/me/ping via nginx, no check (reference)",
}

// selected returns the operations a run measures: every one, or with
// -only those whose name contains it, with the operations their limits
// come from, and the references of the report (no limit) that need no
// nginx.
func selected(o options) map[string]bool {
	sel := map[string]bool{}
	limits := map[string]string{}
	for _, op := range operations {
		limits[op.name] = op.limit
		if o.only == "" || op.limit == "" && op.via != viaNginx || slices.ContainsFunc(strings.Split(o.only, ","), func(part string) bool { return strings.Contains(op.name, part) }) {
			sel[op.name] = true
		}
	}
	for _, op := range operations {
		for name := op.name; sel[op.name] && references[limits[name]] != ""; {
			name = references[limits[name]]
			sel[name] = true
		}
	}
	return sel
}

var operations = []operation{
	{name: "GET /healthz (no work)", setup: func(s *server) (string, error) {
		return request("GET", "/healthz", nil, ""), nil
	}},
	// Not authapi: Echo v4 alone, answering "Hello, World!" (the issue's
	// table cites one). Its tail at 32 connections is what the scheduler
	// does to any server sharing two CPUs with wrk.
	{name: "GET / (a bare Echo hello-world, for reference)", via: viaBare, setup: func(s *server) (string, error) {
		var err error
		s.bareURL, err = bareEcho()
		return request("GET", "/", nil, ""), err
	}},
	{name: "GET /v1/me (API key)", limit: "healthz", setup: func(s *server) (string, error) {
		return request("GET", "/v1/me", map[string]string{"X-API-Key": s.key}, ""), nil
	}},
	// A gateway's question for an authenticated read through it, on the
	// same cached key: judged against GET /v1/me.
	{name: "GET /v1/auth/verify (API key)", limit: "me", paired: true, setup: func(s *server) (string, error) {
		return request("GET", "/v1/auth/verify", map[string]string{"X-API-Key": s.key, "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/v1/me/ping"}, ""), nil
	}},
	{name: "GET /v1/auth/api-keys (JWT)", limit: "healthz", setup: func(s *server) (string, error) {
		return request("GET", "/v1/auth/api-keys", map[string]string{"Authorization": "Bearer " + s.listToken}, ""), nil
	}},
	{name: "POST /v1/auth/api-keys", limit: "healthz", setup: func(s *server) (string, error) {
		return request("POST", "/v1/auth/api-keys", map[string]string{"Authorization": "Bearer " + s.token, "Content-Type": "application/json"}, `{"name":"bench"}`), nil
	}},
	{name: "DELETE /v1/auth/api-keys/{id}", limit: "healthz", setup: func(s *server) (string, error) {
		ids, err := s.createKeys(2000)
		if err != nil {
			return "", err
		}
		return cycle("DELETE", "/v1/auth/api-keys/", ids, map[string]string{"Authorization": "Bearer " + s.token}), nil
	}},
	{name: "POST /v1/auth/login", limit: "argon2id", setup: func(s *server) (string, error) {
		return request("POST", "/v1/auth/login", map[string]string{"Content-Type": "application/json"}, `{"username":"bench","password":"secureP@ss123"}`), nil
	}},
	{name: "POST /v1/auth/register", limit: "argon2id", setup: func(s *server) (string, error) {
		return registerScript(), nil
	}},
	// A product's read through nginx with the shipped configuration, to
	// an upstream that answers at once: without the check (the reference:
	// what nginx costs) and with authapi as its authentication step.
	{name: "GET /v1/me/ping via nginx, no check (reference)", via: viaNginx, setup: func(s *server) (string, error) {
		return request("GET", "/v1/me/ping", map[string]string{"X-API-Key": s.key}, ""), s.gateway()
	}},
	{name: "GET /v1/me/ping via nginx + authapi", via: viaGateway, limit: "nginx", paired: true, setup: func(s *server) (string, error) {
		return request("GET", "/v1/me/ping", map[string]string{"X-API-Key": s.key}, ""), s.gateway()
	}},
}

// oneRun starts a server, measures every operation, and stops the server.
// It returns the raw argon2id rates it measured around each load of a
// hashing call (the mean of 3 s before and 3 s after): the machine is
// shared, so the limit is measured right next to what is judged against it.
func oneRun(o options) (map[string]result, []float64, error) {
	s, err := startServer(o)
	if err != nil {
		return nil, nil, err
	}
	defer s.stop()
	var raws []float64
	out := make(map[string]result)
	sel := selected(o)
	scripts := map[string]string{}
	for _, op := range operations {
		if !sel[op.name] {
			continue
		}
		script, err := op.setup(s)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", op.name, err)
		}
		scripts[op.name] = script
		for _, conns := range []int{1, 32} {
			var before float64
			if op.limit == "argon2id" {
				before = argon2Rate(3 * time.Second)
			}
			url, pid := s.target(op)
			r, err := s.wrk(url, pid, script, conns, o.duration)
			if err != nil {
				return nil, nil, fmt.Errorf("%s at %d: %w", op.name, conns, err)
			}
			var raw float64
			if op.limit == "argon2id" {
				after := argon2Rate(3 * time.Second)
				raw = (before + after) / 2
				raws = append(raws, raw)
				fmt.Fprintf(os.Stderr, "  raw argon2id on all CPUs: %.1f/s before, %.1f/s after\n", before, after)
			}
			switch ref := references[op.limit]; {
			case ref != "" && op.paired:
				if r.ratio, err = s.paired(op, scripts, conns, o.duration); err != nil {
					return nil, nil, fmt.Errorf("%s at %d, paired: %w", op.name, conns, err)
				}
			case ref != "":
				r.ratio = r.rps / out[key(ref, conns)].rps
			case op.limit == "argon2id":
				r.ratio = r.rps / raw
			}
			fmt.Fprintf(os.Stderr, "  %-32s c=%-2d %9.1f/s p50 %-9v p99 %-9v errors %d  CPU/request: server %v, PostgreSQL %v\n", op.name, conns, r.rps, r.p50, r.p99, r.errors, r.cpuServer, r.cpuDB)
			out[key(op.name, conns)] = r
		}
	}
	return out, raws, nil
}

func key(name string, conns int) string { return name + "@" + strconv.Itoa(conns) }

// target is the URL that serves op, and the process whose CPU it costs.
func (s *server) target(op operation) (string, int) {
	switch op.via {
	case viaBare:
		return s.bareURL, os.Getpid()
	case viaNginx:
		return s.nginxURL, s.cmd.Process.Pid
	case viaGateway:
		return s.gatewayURL, s.cmd.Process.Pid
	}
	return s.url, s.cmd.Process.Pid
}

// pairedSlices is how many slices of each side a paired ratio alternates.
const pairedSlices = 4

// paired measures op and its limit alternately, pairedSlices slices of
// each (of d/pairedSlices, at least a second), and returns the ratio of
// their request counts.
func (s *server) paired(op operation, scripts map[string]string, conns int, d time.Duration) (float64, error) {
	ref := references[op.limit]
	var refOp operation
	for _, o := range operations {
		if o.name == ref {
			refOp = o
		}
	}
	slice := max(time.Second, d/pairedSlices)
	// Where the CPU goes, by side: authapi, nginx's workers, and this
	// process (the upstream of the nginx rows).
	type spent struct {
		rps                    float64
		requests               int
		authapi, nginx, upstrm time.Duration
	}
	var sides [2]spent
	for range pairedSlices {
		for i, side := range []operation{refOp, op} {
			url, pid := s.target(side)
			a0, _ := bench.CPUTimes(s.cmd.Process.Pid)
			b0, _ := bench.CPUTimes(os.Getpid())
			var n0 time.Duration
			if s.nginx != nil {
				_, n0 = bench.CPUTimes(s.nginx.Pid())
			}
			r, err := s.wrk(url, pid, scripts[side.name], conns, slice)
			if err != nil {
				return 0, err
			}
			a1, _ := bench.CPUTimes(s.cmd.Process.Pid)
			b1, _ := bench.CPUTimes(os.Getpid())
			var n1 time.Duration
			if s.nginx != nil {
				_, n1 = bench.CPUTimes(s.nginx.Pid())
			}
			sd := &sides[i]
			sd.rps += r.rps
			sd.requests += r.requests
			sd.authapi, sd.nginx, sd.upstrm = sd.authapi+a1-a0, sd.nginx+n1-n0, sd.upstrm+b1-b0
		}
	}
	ratio := sides[1].rps / sides[0].rps
	fmt.Fprintf(os.Stderr, "  %-32s c=%-2d paired with %s: %.2f\n", op.name, conns, ref, ratio)
	for i, name := range []string{ref, op.name} {
		sd := sides[i]
		if sd.requests > 0 {
			per := func(d time.Duration) string { return micros(d / time.Duration(sd.requests)) }
			fmt.Fprintf(os.Stderr, "    %s: CPU µs/request: authapi %s, nginx %s, the bench's process %s\n", name, per(sd.authapi), per(sd.nginx), per(sd.upstrm))
		}
	}
	return ratio, nil
}

var bare struct {
	once sync.Once
	url  string
	err  error
}

// bareEcho serves a hello-world on Echo alone, in this process (started
// once, for every run), and returns its URL.
func bareEcho() (string, error) {
	bare.once.Do(func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			bare.err = err
			return
		}
		e := echo.New()
		e.HideBanner, e.HidePort = true, true
		e.GET("/", func(c echo.Context) error { return c.String(http.StatusOK, "Hello, World!") })
		go http.Serve(ln, e)
		bare.url = "http://" + ln.Addr().String()
	})
	return bare.url, bare.err
}

// argon2Rate is how many argon2id hashes of the server's parameters all
// CPUs compute per second, each CPU hashing on its own as the server's pool
// does.
func argon2Rate(d time.Duration) float64 {
	var n atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	start := time.Now()
	for range runtime.NumCPU() {
		wg.Go(func() {
			salt := make([]byte, 16)
			for time.Now().Before(deadline) {
				rand.Read(salt)
				argon2.IDKey([]byte("secureP@ss123"), salt, argonTime, argonMemory, argonThreads, 32)
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}

// server is a running authapi with a user, a token and a key.
type server struct {
	url     string
	addr    string // host:port
	bareURL string // the bare Echo's
	// nginx with the shipped gateway configuration, once an operation
	// needs it: gatewayURL through authapi's check, nginxURL straight
	// to the same upstream
	nginx                *nginxproc.Process
	upstream             net.Listener
	gatewayURL, nginxURL string
	cmd                  *exec.Cmd
	dir                  string
	token                string // of the user "bench", who owns the keys created and revoked
	listToken            string // of "lister", who owns 3 keys
	key                  string
	exited               chan struct{}
}

func startServer(o options) (*server, error) {
	dir, err := os.MkdirTemp("", "authbench-")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.Create(filepath.Join(dir, "authapi.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.bin)
	cmd.Env = append(os.Environ(),
		"AUTH_ADDR="+addr,
		"AUTH_DATA_DIR="+filepath.Join(dir, "var"),
	)
	cmd.Env = append(cmd.Env, limitsOff()...)
	cmd.Env = append(cmd.Env, o.extra...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{url: "http://" + addr, addr: addr, cmd: cmd, dir: dir, exited: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(s.exited) }()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(s.url + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		select {
		case <-s.exited:
			log, _ := os.ReadFile(filepath.Join(dir, "authapi.log"))
			return nil, fmt.Errorf("authapi exited:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, errors.New("authapi did not answer within 2 minutes")
		}
	}
	if s.token, err = s.user("bench"); err != nil {
		s.stop()
		return nil, err
	}
	if s.listToken, err = s.user("lister"); err != nil {
		s.stop()
		return nil, err
	}
	for i := range 3 {
		var k struct {
			RawKey string `json:"raw_key"`
		}
		if err := s.call("POST", "/v1/auth/api-keys", s.listToken, `{"name":"k`+strconv.Itoa(i)+`"}`, &k); err != nil {
			s.stop()
			return nil, err
		}
		s.key = k.RawKey
	}
	return s, nil
}

// gateway starts nginx with the shipped configuration (deploy/nginx), in
// front of authapi and of an upstream in this process that answers "pong",
// plus a second server of the same nginx that proxies to that upstream
// without the check; once per run. nginx runs a worker per CPU, without
// an access log.
func (s *server) gateway() error {
	if s.nginx != nil {
		return nil
	}
	var err error
	if s.upstream, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return err
	}
	go http.Serve(s.upstream, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "pong") }))
	var addrs [2]string
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		addrs[i] = ln.Addr().String()
		ln.Close()
	}
	conf, err := nginxproc.Config(nginxproc.Addresses{Listen: addrs[0], Authapi: s.addr, Product: s.upstream.Addr().String()})
	if err != nil {
		return err
	}
	direct := fmt.Sprintf(`server {
    listen %s;
    location / {
        proxy_pass http://authapi_product;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
}`, addrs[1])
	if s.nginx, err = nginxproc.Start(conf, addrs[:], nginxproc.Options{Workers: runtime.NumCPU(), HTTP: direct}); err != nil {
		return err
	}
	s.gatewayURL, s.nginxURL = "http://"+addrs[0], "http://"+addrs[1]
	return nil
}

// stop ends the server with SIGTERM (it stops its PostgreSQL) and removes
// its folder, and stops nginx.
func (s *server) stop() {
	if s.nginx != nil {
		s.nginx.Stop()
		s.nginx.Remove()
		s.upstream.Close()
	}
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(time.Minute):
		s.cmd.Process.Kill()
		<-s.exited
	}
	os.RemoveAll(s.dir)
}

// user registers name and returns a token.
func (s *server) user(name string) (string, error) {
	body := `{"username":"` + name + `","email":"` + name + `@example.com","password":"secureP@ss123","full_name":"Bench"}`
	if err := s.call("POST", "/v1/auth/register", "", body, nil); err != nil {
		return "", err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err := s.call("POST", "/v1/auth/login", "", `{"username":"`+name+`","password":"secureP@ss123"}`, &tok)
	return tok.AccessToken, err
}

func (s *server) call(method, path, token, body string, out any) error {
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s %s = %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// createKeys creates n keys for the user "bench", 8 at a time, and returns
// their IDs.
func (s *server) createKeys(n int) ([]string, error) {
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				var k struct{ ID string }
				errs[i] = s.call("POST", "/v1/auth/api-keys", s.token, `{"name":"to revoke"}`, &k)
				ids[i] = k.ID
			}
		})
	}
	wg.Wait()
	return ids, errors.Join(errs...)
}

var (
	rpsLine     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	latLine     = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	totalLine   = regexp.MustCompile(`(\d+) requests in`)
	non2xxLine  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	socketLine  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	latencyUnit = map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}
)

// limitsOff is the settings of every bench's server: the bench logs in and
// registers from one address far beyond the throttles and creates
// thousands of keys for one user, and wrk is one client, which the
// per-client limits would measure instead of the operations (make
// bench-flood measures them).
func limitsOff() []string {
	env := []string{"AUTH_LOGIN_MAX_FAILURES=0", "AUTH_LOGIN_MAX_FAILURES_PER_ADDRESS=0", "AUTH_REGISTER_MAX_PER_ADDRESS=0", "AUTH_MAX_ACTIVE_KEYS=0"}
	for k, v := range authproc.ClientLimitsOff {
		env = append(env, k+"="+v)
	}
	return env
}

// wrkThreads is how many threads wrk runs for conns connections.
func wrkThreads(conns int) int { return min(conns, 2) }

// wrk drives url with script, and reads the CPU time of the process pid
// (without its descendants but PostgreSQL's, when pid is authapi's).
func (s *server) wrk(url string, pid int, script string, conns int, d time.Duration) (result, error) {
	f := filepath.Join(s.dir, "script.lua")
	if err := os.WriteFile(f, []byte(script), 0o600); err != nil {
		return result{}, err
	}
	threads := wrkThreads(conns)
	srv0, db0 := bench.CPUTimes(pid)
	// A hashing call waits in the server's queue for up to 10 s; wrk's
	// default timeout (2 s) would count that wait as an error.
	out, err := exec.Command("wrk", "-t"+strconv.Itoa(threads), "-c"+strconv.Itoa(conns), "--timeout", "30s",
		"-d"+strconv.Itoa(int(d.Seconds()))+"s", "--latency", "-s", f, url).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	srv1, db1 := bench.CPUTimes(pid)
	var r result
	m := rpsLine.FindSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk's output:\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	for _, m := range latLine.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(m[2]), 64)
		lat := time.Duration(v * float64(latencyUnit[string(m[3])]))
		if string(m[1]) == "50" {
			r.p50 = lat
		} else {
			r.p99 = lat
		}
	}
	if m := totalLine.FindSubmatch(out); m != nil {
		r.requests, _ = strconv.Atoi(string(m[1]))
	}
	if r.requests > 0 {
		r.cpuServer = (srv1 - srv0) / time.Duration(r.requests)
		// PostgreSQL processes that exit meanwhile (autovacuum workers)
		// take their time with them: the figure is approximate.
		r.cpuDB = max(db1-db0, 0) / time.Duration(r.requests)
		if pid == os.Getpid() { // the descendants are wrk
			r.cpuDB = 0
		}
	}
	if m := non2xxLine.FindSubmatch(out); m != nil {
		n, _ := strconv.Atoi(string(m[1]))
		r.errors += n
	}
	if m := socketLine.FindSubmatch(out); m != nil {
		for _, g := range m[1:] {
			n, _ := strconv.Atoi(string(g))
			r.errors += n
		}
	}
	return r, nil
}

// request is a wrk script sending one fixed request.
func request(method, path string, header map[string]string, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "wrk.method = %q\nwrk.path = %q\n", method, path)
	if body != "" {
		fmt.Fprintf(&b, "wrk.body = %q\n", body)
	}
	for _, k := range sortedKeys(header) {
		fmt.Fprintf(&b, "wrk.headers[%q] = %q\n", k, header[k])
	}
	return b.String()
}

// cycle is a wrk script sending method to prefix+id for each of ids in
// turn, each thread from its own place.
func cycle(method, prefix string, ids []string, header map[string]string) string {
	var b strings.Builder
	b.WriteString("local ids = {")
	for _, id := range ids {
		fmt.Fprintf(&b, "%q,", id)
	}
	b.WriteString("}\nlocal n = 0\nlocal headers = {}\n")
	for _, k := range sortedKeys(header) {
		fmt.Fprintf(&b, "headers[%q] = %q\n", k, header[k])
	}
	fmt.Fprintf(&b, `function init(args) n = math.random(#ids) end
function request()
  n = n %% #ids + 1
  return wrk.format(%q, %q .. ids[n], headers)
end
`, method, prefix)
	return b.String()
}

// registerScript is a wrk script registering a new user with each request.
// Names carry the time the script was loaded, so that every wrk run (the
// script serves both connection counts) registers names of its own.
func registerScript() string {
	var tag [3]byte
	rand.Read(tag[:])
	return fmt.Sprintf(`local run = string.format("%%x", os.time())
local counter = 1
function setup(thread) thread:set("id", counter .. "r" .. run); counter = counter + 1 end
local id = ""
local n = 0
function init(args) id = wrk.thread:get("id") end
function request()
  n = n + 1
  local name = "b%x" .. id .. "x" .. n
  return wrk.format("POST", "/v1/auth/register", {["Content-Type"] = "application/json"},
    '{"username":"' .. name .. '","email":"' .. name .. '@example.com","password":"secureP@ss123","full_name":"Bench"}')
end
`, tag)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// target is what an operation must reach at 32 connections.
type target struct {
	ratio  float64       // of its limit
	rps    float64       // absolute, from the peers table of issue 5 (0: none)
	p99    time.Duration // 0: none
	errors bool          // must have none
	text   string
}

var targets = map[string]target{
	"GET /v1/me (API key)":                {ratio: 0.7, rps: 6 * 4700, p99: 5 * time.Millisecond, text: "≥ 0.7 × no-work, p99 < 5 ms, ≥ 28,200/s"},
	"GET /v1/auth/verify (API key)":       {ratio: 0.9, text: "≥ 0.9 × GET /v1/me"},
	"GET /v1/me/ping via nginx + authapi": {ratio: 0.5, text: "≥ 0.5 × nginx without the check"},
	"GET /v1/auth/api-keys (JWT)":         {ratio: 0.4, text: "≥ 0.4 × no-work"},
	"POST /v1/auth/login":                 {ratio: 0.85, rps: 2 * 32, errors: true, text: "≥ 0.85 × raw argon2id, no errors, ≥ 64/s"},
	"POST /v1/auth/register":              {ratio: 0.85, rps: 4 * 16, errors: true, text: "≥ 0.85 × raw argon2id, no errors, ≥ 64/s"},
}

// format writes the report in Markdown.
func format(o options, runs []map[string]result, raw []float64, loads []string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Reproduce: `make bench BENCH_FLAGS='-runs %d -duration %v'`.\n\n", o.runs, o.duration)
	fmt.Fprintf(&b, "Measured %s on %d CPUs (%s, %s), wrk -t1 -c1 and -t2 -c32 on the same machine; medians of %d runs of %v per load. ",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.GOOS+"/"+runtime.GOARCH, runtime.Version(), o.runs, o.duration)
	fmt.Fprintf(&b, "Server: embedded PostgreSQL, default settings (argon2id m=%d KiB t=%d p=%d, credential cache on, access log on) except the login and registration throttles and the active-key cap, which are off so that the bench can repeat logins, registrations and key creations from one address. ", argonMemory, argonTime, argonThreads)
	fmt.Fprintf(&b, "Raw argon2id on all CPUs, measured by the bench for 3 s before and 3 s after each load of a hashing call (the ratio uses their mean): median %.1f hashes/s (all: %s). Load average (1, 5, 15 min) before → after each run: %s. CPU per request is read from /proc around each load (PostgreSQL's is approximate: processes that exit take their time with them).\n\n",
		bench.Median(raw), joinFloats(raw), strings.Join(loads, "; "))
	fmt.Fprintf(&b, "The ratios of GET /v1/auth/verify and of the nginx + authapi row are measured in %d slices of each side alternating with its limit (wrk's rates summed), after the rows' own loads, so that both sides of a ratio see the same moments of a shared machine. ", pairedSlices)
	fmt.Fprintf(&b, "The /v1/me/ping rows go through nginx (%d workers, no access log) with deploy/nginx/authapi.conf to an upstream in the bench's own process answering \"pong\", with the key of GET /v1/me, cached; the reference is a second server of the same nginx proxying to the same upstream without the check. Their CPU column is authapi's.\n\n", runtime.NumCPU())
	b.WriteString("| operation | conns | req/s | p50 | p99 | errors | ratio to limit | target at 32 | met? | CPU µs/request: server + PostgreSQL |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, op := range operations {
		for _, conns := range []int{1, 32} {
			var rps, ratio []float64
			var p50, p99, cpuS, cpuD []time.Duration
			var errs []int
			for _, r := range runs {
				x, ok := r[key(op.name, conns)]
				if !ok {
					continue
				}
				rps, ratio, p50, p99, errs = append(rps, x.rps), append(ratio, x.ratio), append(p50, x.p50), append(p99, x.p99), append(errs, x.errors)
				cpuS, cpuD = append(cpuS, x.cpuServer), append(cpuD, x.cpuDB)
			}
			if len(rps) == 0 {
				continue
			}
			limit := map[string]string{"healthz": " of no-work", "argon2id": " of raw argon2id", "me": " of GET /v1/me", "nginx": " of nginx without the check", "": ""}[op.limit]
			ratioText := "—"
			if op.limit != "" {
				ratioText = fmt.Sprintf("%.2f%s", bench.Median(ratio), limit)
			}
			tgt, met := "", ""
			if t, ok := targets[op.name]; ok && conns == 32 {
				tgt = t.text
				ok := bench.Median(ratio) >= t.ratio && (t.rps == 0 || bench.Median(rps) >= t.rps) &&
					(t.p99 == 0 || bench.Median(p99) < t.p99) && (!t.errors || slices.Max(errs) == 0)
				met = map[bool]string{true: "yes", false: "**no**"}[ok]
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %d | %s | %s | %s | %s + %s |\n", op.name, conns, bench.Commas(bench.Median(rps)),
				bench.Round(bench.Median(p50)), bench.Round(bench.Median(p99)), slices.Max(errs), ratioText, tgt, met, micros(bench.Median(cpuS)), micros(bench.Median(cpuD)))
		}
	}
	return b.String()
}

func micros(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'f', 0, 64)
}

func joinFloats(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', 1, 64)
	}
	return strings.Join(s, ", ")
}

// writeSection replaces the section of path that the make target
// rewrites (between its markers) with report.
func writeSection(path, target, report string) error {
	return bench.ReplaceSection(path, "<!-- make "+target+": begin -->", "<!-- make "+target+": end -->", report)
}
