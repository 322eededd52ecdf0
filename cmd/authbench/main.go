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

	"authapi/internal/bench"
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
	flag.StringVar(&o.only, "only", "", "run only the operations whose name contains this (and the no-work route)")
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
	name  string // as in the report
	limit string // "healthz" or "argon2id"
	setup func(s *server) (script string, err error)
	// bare: served by a bare Echo in this process rather than by authapi
	bare bool
}

var operations = []operation{
	{name: "GET /healthz (no work)", setup: func(s *server) (string, error) {
		return request("GET", "/healthz", nil, ""), nil
	}},
	// Not authapi: Echo v4 alone, answering "Hello, World!" (the issue's
	// table cites one). Its tail at 32 connections is what the scheduler
	// does to any server sharing two CPUs with wrk.
	{name: "GET / (a bare Echo hello-world, for reference)", bare: true, setup: func(s *server) (string, error) {
		var err error
		s.bareURL, err = bareEcho()
		return request("GET", "/", nil, ""), err
	}},
	{name: "GET /v1/me (API key)", limit: "healthz", setup: func(s *server) (string, error) {
		return request("GET", "/v1/me", map[string]string{"X-API-Key": s.key}, ""), nil
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
	for _, op := range operations {
		if o.only != "" && op.limit != "" && !strings.Contains(op.name, o.only) {
			continue
		}
		script, err := op.setup(s)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", op.name, err)
		}
		for _, conns := range []int{1, 32} {
			var before float64
			if op.limit == "argon2id" {
				before = argon2Rate(3 * time.Second)
			}
			url, pid := s.url, s.cmd.Process.Pid
			if op.bare {
				url, pid = s.bareURL, os.Getpid()
			}
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
			switch op.limit {
			case "healthz":
				r.ratio = r.rps / out[key(operations[0].name, conns)].rps
			case "argon2id":
				r.ratio = r.rps / raw
			}
			fmt.Fprintf(os.Stderr, "  %-32s c=%-2d %9.1f/s p50 %-9v p99 %-9v errors %d  CPU/request: server %v, PostgreSQL %v\n", op.name, conns, r.rps, r.p50, r.p99, r.errors, r.cpuServer, r.cpuDB)
			out[key(op.name, conns)] = r
		}
	}
	return out, raws, nil
}

func key(name string, conns int) string { return name + "@" + strconv.Itoa(conns) }

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
	url       string
	bareURL   string // the bare Echo's
	cmd       *exec.Cmd
	dir       string
	token     string // of the user "bench", who owns the keys created and revoked
	listToken string // of "lister", who owns 3 keys
	key       string
	exited    chan struct{}
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
		// The bench logs in and registers from one address far beyond
		// the throttles, and creates thousands of keys for one user.
		"AUTH_LOGIN_MAX_FAILURES=0",
		"AUTH_LOGIN_MAX_FAILURES_PER_ADDRESS=0",
		"AUTH_REGISTER_MAX_PER_ADDRESS=0",
		"AUTH_MAX_ACTIVE_KEYS=0",
	)
	cmd.Env = append(cmd.Env, o.extra...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{url: "http://" + addr, cmd: cmd, dir: dir, exited: make(chan struct{})}
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

// stop ends the server with SIGTERM (it stops its PostgreSQL) and removes
// its folder.
func (s *server) stop() {
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
	"GET /v1/me (API key)":        {ratio: 0.7, rps: 6 * 4700, p99: 5 * time.Millisecond, text: "≥ 0.7 × no-work, p99 < 5 ms, ≥ 28,200/s"},
	"GET /v1/auth/api-keys (JWT)": {ratio: 0.4, text: "≥ 0.4 × no-work"},
	"POST /v1/auth/login":         {ratio: 0.85, rps: 2 * 32, errors: true, text: "≥ 0.85 × raw argon2id, no errors, ≥ 64/s"},
	"POST /v1/auth/register":      {ratio: 0.85, rps: 4 * 16, errors: true, text: "≥ 0.85 × raw argon2id, no errors, ≥ 64/s"},
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
			limit := map[string]string{"healthz": " of no-work", "argon2id": " of raw argon2id", "": ""}[op.limit]
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
