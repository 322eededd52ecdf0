//go:build faults

package faults_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"authapi/internal/authproc"
	"authapi/pglocal"
)

// bin is the authapi binary under test, built once by TestMain.
var bin string

// Secrets shared by every authapi process of a test, so that a restarted
// process accepts the keys and tokens of the one before.
const (
	jwtSecret = "faults-jwt-secret-0123456789abcdef"
	pepper    = "faults-api-key-pepper-0123456789abcdef"
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "authapi-faults-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if bin, err = authproc.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	code := m.Run()
	if len(reports) > 0 {
		fmt.Println("fault suite measurements:")
		for _, r := range reports {
			fmt.Println("  " + r)
		}
	}
	return code
}

var (
	reportMu sync.Mutex
	reports  []string
)

// report logs a measurement and keeps it for the summary printed at the end
// of the run.
func report(t *testing.T, format string, args ...any) {
	t.Helper()
	line := t.Name() + ": " + fmt.Sprintf(format, args...)
	t.Log(line)
	reportMu.Lock()
	reports = append(reports, line)
	reportMu.Unlock()
}

// database is a durable PostgreSQL of the test's own, which the test may
// stop, crash, freeze and start again at the same URL.
type database struct {
	t      *testing.T
	cfg    pglocal.Config
	srv    *pglocal.Server
	URL    string
	frozen []int
}

// MustStartDatabase initialises and starts a server with an "authapi"
// database. It is stopped at the end of the test.
func MustStartDatabase(t *testing.T) *database {
	t.Helper()
	// The socket folder outlives restarts, so that the URL stays valid; it
	// must be reachable by PostgreSQL's user, which t.TempDir's parent
	// (0700, ours) is not.
	sock, err := os.MkdirTemp("", "authapi-faults-sock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sock) })
	d := &database{t: t, cfg: pglocal.Config{Dir: filepath.Join(t.TempDir(), "pg"), SocketDir: sock, Database: "authapi"}}
	d.MustStart()
	d.URL = d.srv.URL("authapi")
	return d
}

// MustStart starts the server (again) and waits until it accepts connections.
func (d *database) MustStart() {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := pglocal.Start(ctx, d.cfg)
	if err != nil {
		d.t.Fatalf("start PostgreSQL: %v", err)
	}
	d.srv = srv
	d.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Stop(ctx) // already stopped when the test did; that error is expected
	})
}

// MustStop shuts the server down cleanly (PostgreSQL's fast shutdown).
func (d *database) MustStop() {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.srv.Stop(ctx); err != nil {
		d.t.Fatalf("stop PostgreSQL: %v", err)
	}
}

// MustCrash stops the server the hard way (PostgreSQL's immediate shutdown:
// no checkpoint, WAL replay at the next start), as a power cut would.
func (d *database) MustCrash() {
	d.t.Helper()
	if err := syscall.Kill(d.postmaster(), syscall.SIGQUIT); err != nil {
		d.t.Fatalf("SIGQUIT the postmaster: %v", err)
	}
	select {
	case <-d.srv.Exited():
	case <-time.After(30 * time.Second):
		d.t.Fatal("PostgreSQL did not exit within 30s of SIGQUIT")
	}
}

// Freeze stops every process of the server with SIGSTOP: connections stay
// open and nothing answers, as when the database's host drops off the
// network. Thaw undoes it.
func (d *database) Freeze() {
	d.t.Helper()
	pids := append([]int{d.postmaster()}, childrenOf(d.postmaster())...)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGSTOP)
	}
	d.frozen = pids
	d.t.Cleanup(d.Thaw) // never leave stopped processes behind
}

// Thaw resumes the processes Freeze stopped.
func (d *database) Thaw() {
	for _, pid := range d.frozen {
		syscall.Kill(pid, syscall.SIGCONT)
	}
	d.frozen = nil
}

// postmaster returns the server's process ID, from postmaster.pid.
func (d *database) postmaster() int {
	d.t.Helper()
	pid, err := postmasterPID(d.cfg.Dir)
	if err != nil {
		d.t.Fatal(err)
	}
	return pid
}

func postmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut after
		// its closing parenthesis.
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			kids = append(kids, child)
		}
	}
	return kids
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// MustOpenSQL opens a plain connection pool to url, for checks and for
// sessions of the test's own.
func MustOpenSQL(t *testing.T, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// MustCount runs a query returning one number.
func MustCount(t *testing.T, db *sql.DB, query string, args ...any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n int
	if err := db.QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// authapi is one authapi process.
type authapi struct{ *authproc.Process }

// baseEnv is what every process gets unless the test says otherwise:
// cheap argon2id parameters (the code path is the same) and fixed secrets.
func baseEnv(extra map[string]string) map[string]string {
	env := map[string]string{
		"AUTH_ADDR":              "127.0.0.1:0",
		"AUTH_JWT_SECRET":        jwtSecret,
		"AUTH_API_KEY_PEPPER":    pepper,
		"AUTH_ARGON2_MEMORY_KIB": "64",
		"AUTH_ARGON2_TIME":       "1",
		"AUTH_LOG_LEVEL":         "info",
		"AUTH_SHUTDOWN_TIMEOUT":  "10s",
		// The load registers and logs in hundreds of users from one
		// address, which the default limits (50 registrations an hour, 600
		// logins a window per address) would refuse; the suite's faults
		// are the database's and the process's, not one client's.
		// Concurrent requests from that one address are the load: they
		// must reach the database together, not wait their turn; hence
		// every per-client limit off too.
		"AUTH_REGISTER_MAX_PER_ADDRESS": "0",
	}
	maps.Copy(env, authproc.ClientLimitsOff)
	for k, v := range extra {
		if v == "" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	return env
}

// launch starts authapi with env (and PATH) and returns at once.
func launch(t *testing.T, env map[string]string, args ...string) *authapi {
	t.Helper()
	return &authapi{authproc.Launch(t, bin, env, args...)}
}

// MustStartAuthAPI launches authapi and waits until it listens.
func MustStartAuthAPI(t *testing.T, env map[string]string, args ...string) *authapi {
	t.Helper()
	return &authapi{authproc.MustStart(t, bin, env, args...)}
}

// Client returns an HTTP client for the process.
func (a *authapi) Client() *client {
	return newClient(a.URL)
}

// client speaks to one authapi.
type client struct {
	base string
	hc   *http.Client
}

func newClient(base string) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	// The timeout only keeps a broken test from hanging: the assertions
	// on how long requests take are far tighter.
	return &client{base: base, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// result is one request's outcome.
type result struct {
	Op     string
	Start  time.Time
	Took   time.Duration
	Status int // 0 when the request failed
	Err    error
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a map.
func (r result) JSON() map[string]any {
	var m map[string]any
	json.Unmarshal(r.Body, &m)
	return m
}

// Str returns a string member of the JSON body.
func (r result) Str(name string) string {
	s, _ := r.JSON()[name].(string)
	return s
}

// Unavailable reports whether r is the 503 problem that a database outage
// must produce: problem+json of type unavailable, with Retry-After.
func (r result) Unavailable() bool {
	retry, _ := strconv.Atoi(r.Header.Get("Retry-After"))
	return r.Status == http.StatusServiceUnavailable &&
		r.Header.Get("Content-Type") == "application/problem+json" &&
		r.Str("type") == "urn:authapi:problem:unavailable" && retry >= 1
}

func (r result) String() string {
	if r.Err != nil {
		return fmt.Sprintf("%s: %v after %v", r.Op, r.Err, r.Took.Round(time.Millisecond))
	}
	return fmt.Sprintf("%s: %d after %v %s", r.Op, r.Status, r.Took.Round(time.Millisecond), bytes.TrimSpace(r.Body))
}

// do sends one request; header holds name, value pairs.
func (c *client) do(ctx context.Context, op, method, path, body string, header ...string) result {
	r := result{Op: op, Start: time.Now()}
	req, err := authproc.NewRequest(ctx, method, c.base+path, body, header...)
	if err != nil {
		r.Err = err
		return r
	}
	resp, err := c.hc.Do(req)
	if err == nil {
		r.Body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		r.Status, r.Header = resp.StatusCode, resp.Header
	}
	r.Took, r.Err = time.Since(r.Start), err
	return r
}

func (c *client) Register(ctx context.Context, name, password string) result {
	body, _ := json.Marshal(map[string]string{"username": name, "email": name + "@example.com", "password": password, "full_name": "User " + name})
	return c.do(ctx, "register", "POST", "/v1/auth/register", string(body))
}

func (c *client) Login(ctx context.Context, name, password string) result {
	body, _ := json.Marshal(map[string]string{"username": name, "password": password})
	return c.do(ctx, "login", "POST", "/v1/auth/login", string(body))
}

func (c *client) CreateKey(ctx context.Context, token, name string) result {
	return c.do(ctx, "create key", "POST", "/v1/auth/api-keys", `{"name":"`+name+`"}`, "Authorization", "Bearer "+token)
}

func (c *client) Me(ctx context.Context, key string) result {
	return c.do(ctx, "me", "GET", "/v1/me", "", "X-API-Key", key)
}

func (c *client) Get(ctx context.Context, path string) result {
	return c.do(ctx, path, "GET", path, "")
}

// load drives registrations, logins, key creations and key uses from
// several workers and remembers every acknowledged write.
type load struct {
	c      *client
	prefix string

	mu        sync.Mutex
	attempted map[string]string // username -> password, for every registration sent
	users     map[string]string // acknowledged: username -> password
	keys      map[string]string // acknowledged: raw key -> owner's username
	results   []result

	stop chan struct{}
	wg   sync.WaitGroup
}

// startLoad starts workers against c. Usernames start with prefix, so that
// loads against one database do not collide. The load stops on Stop, at
// the latest after a minute.
func startLoad(t *testing.T, c *client, prefix string, workers int) *load {
	l := &load{c: c, prefix: prefix, attempted: map[string]string{}, users: map[string]string{}, keys: map[string]string{}, stop: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.work(ctx, w)
		}()
	}
	go func() {
		select {
		case <-l.stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	t.Cleanup(l.Stop)
	return l
}

// Stop ends the load and waits for the workers.
func (l *load) Stop() {
	l.mu.Lock()
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.mu.Unlock()
	l.wg.Wait()
}

func (l *load) work(ctx context.Context, w int) {
	for i := 0; i < 100000; i++ {
		select {
		case <-l.stop:
			return
		default:
		}
		name := fmt.Sprintf("%s%dx%d", l.prefix, w, i)
		password := "pw-" + name + "-Secret!"
		l.mu.Lock()
		l.attempted[name] = password
		l.mu.Unlock()
		r := l.record(l.c.Register(ctx, name, password))
		if r.Status != http.StatusOK {
			l.pause()
			continue
		}
		l.mu.Lock()
		l.users[name] = password
		l.mu.Unlock()
		r = l.record(l.c.Login(ctx, name, password))
		token := r.Str("access_token")
		if token == "" {
			l.pause()
			continue
		}
		r = l.record(l.c.CreateKey(ctx, token, "k"))
		key := r.Str("raw_key")
		if key == "" {
			l.pause()
			continue
		}
		l.mu.Lock()
		l.keys[key] = name
		l.mu.Unlock()
		l.record(l.c.Me(ctx, key))
	}
}

// pause keeps a worker from spinning on fast failures.
func (l *load) pause() {
	select {
	case <-l.stop:
	case <-time.After(20 * time.Millisecond):
	}
}

func (l *load) record(r result) result {
	l.mu.Lock()
	l.results = append(l.results, r)
	l.mu.Unlock()
	return r
}

// Results returns the outcomes so far.
func (l *load) Results() []result {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.results)
}

// Acked returns how many registrations and key creations were acknowledged.
func (l *load) Acked() (users, keys int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.users), len(l.keys)
}

// MustVerifyAcked checks through c that every acknowledged user logs in
// and every acknowledged key authenticates as its owner.
func (l *load) MustVerifyAcked(t *testing.T, c *client) (users, keys int) {
	t.Helper()
	l.mu.Lock()
	type check struct{ user, password, key string }
	var checks []check
	for u, p := range l.users {
		checks = append(checks, check{user: u, password: p})
	}
	for k, u := range l.keys {
		checks = append(checks, check{user: u, key: k})
	}
	l.mu.Unlock()
	errs := parallel(8, len(checks), func(i int) error {
		ch := checks[i]
		ctx := context.Background()
		if ch.key == "" {
			if r := c.Login(ctx, ch.user, ch.password); r.Status != http.StatusOK {
				return fmt.Errorf("acknowledged user %s cannot log in: %s", ch.user, r)
			}
			return nil
		}
		if r := c.Me(ctx, ch.key); r.Status != http.StatusOK || r.Str("username") != ch.user {
			return fmt.Errorf("acknowledged key of %s does not authenticate: %s", ch.user, r)
		}
		return nil
	})
	for _, err := range errs[:min(len(errs), 10)] {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.Fatalf("%d of %d acknowledged writes are missing or unusable", len(errs), len(checks))
	}
	u, k := l.Acked()
	return u, k
}

// parallel runs f(0..n-1) on workers goroutines and returns the errors.
func parallel(workers, n int, f func(i int) error) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errs
}

// waitFor polls cond every interval until it holds or timeout passes, and
// returns how long it took.
func waitFor(timeout, interval time.Duration, cond func() bool) (time.Duration, error) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), errors.New("timed out")
		}
		time.Sleep(interval)
	}
}

// percentile returns the p-th percentile (0-100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p/100))]
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
