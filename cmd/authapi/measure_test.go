package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"authapi/internal/authproc"
	"authapi/password"
	"authapi/store/storetest"
)

// The measurements of issue 3 (BENCHMARKS.md, "Hardening measurements"):
// they start the real binary with the default (OWASP) argon2id parameters,
// so they take minutes and run only when asked:
//
//	make measure-hardening
//
// (AUTH_MEASURE=1 go test -run '^TestMeasure' -v ./cmd/authapi, with a
// PostgreSQL the way make test has one). They report; they assert only
// that the requests were answered, never a time.
const measureEnv = "AUTH_MEASURE"

func skipUnlessMeasuring(t *testing.T) {
	if os.Getenv(measureEnv) == "" {
		t.Skipf("a measurement: set %s=1 (make measure-hardening)", measureEnv)
	}
}

// binary is the real authapi, built once per test run.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func mustBuild(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "authapi-measure-")
		if err != nil {
			buildErr = err
			return
		}
		binPath, buildErr = authproc.Build(dir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// process is the binary running on its own database.
type process struct {
	*authproc.Process
	DBURL string
}

// MustStartBinary runs the built binary with the defaults but for env
// (KEY=VALUE), and waits until it listens. X-Forwarded-For from the harness
// is believed, so that it can speak from many addresses.
func MustStartBinary(t *testing.T, env ...string) *process {
	t.Helper()
	p := &process{DBURL: storetest.NewURL(t)}
	settings := map[string]string{
		"AUTH_ADDR": "127.0.0.1:0", "AUTH_DATABASE_URL": p.DBURL, "AUTH_DATABASE_LISTEN_URL": storetest.DirectURL(p.DBURL),
		"AUTH_JWT_SECRET": secret, "AUTH_TRUSTED_PROXIES": "127.0.0.1/32", "AUTH_LOG_LEVEL": "warn",
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		settings[k] = v
	}
	p.Process = authproc.MustStart(t, mustBuild(t), settings)
	t.Cleanup(func() { p.Stop(30 * time.Second) })
	return p
}

// status reads a field of /proc/<pid>/status, in KiB.
func (p *process) status(t *testing.T, field string) int {
	t.Helper()
	kib, err := p.statusKiB(field)
	if err != nil {
		t.Fatal(err)
	}
	return kib
}

func (p *process) statusKiB(field string) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, p.Pid())
}

// MustInsertUsers creates users user0..user(n-1) with one password, hashed
// once with the server's default parameters: registering them through the
// API would cost n hashes and trip the registration limit.
func (p *process) MustInsertUsers(t *testing.T, n int, pw string) {
	t.Helper()
	h, err := password.NewHasher(password.OWASP, password.DefaultPool)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := h.Hash(context.Background(), pw)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("postgres", p.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO users (username, email, full_name, password_hash)
		SELECT 'user' || i, 'user' || i || '@example.com', 'User ' || i, $1 FROM generate_series(0, $2 - 1) AS i`, hash, n); err != nil {
		t.Fatal(err)
	}
}

// login sends one login from address and returns its status and duration.
func login(c *http.Client, url, username, pw, address string) (int, time.Duration, error) {
	req, _ := http.NewRequest("POST", url+"/v1/auth/login", strings.NewReader(fmt.Sprintf(`{"username":%q,"password":%q}`, username, pw)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", address)
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, time.Since(start), nil
}

// address is a distinct client address per attempt (198.18.0.0/15, for
// benchmarks), so that no throttle interferes.
func address(i int) string { return fmt.Sprintf("198.18.%d.%d", i/250, i%250+1) }

// rawHashRate is how many OWASP argon2id hashes per second this machine
// computes with one goroutine per CPU: the ceiling of login throughput.
func rawHashRate(n int) float64 {
	workers := runtime.GOMAXPROCS(0)
	p := password.OWASP
	salt := make([]byte, p.SaltLen)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				argon2.IDKey([]byte("secureP@ss123"), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

func median(d []float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// TestMeasureLoginBurst fires bursts of 500 concurrent logins at the
// binary and reports its peak RSS (VmHWM) and its login throughput against
// the raw argon2id hash rate, measured between the bursts in the same run.
func TestMeasureLoginBurst(t *testing.T) {
	skipUnlessMeasuring(t)
	const burst = 500
	rounds := envInt("AUTH_MEASURE_ROUNDS", 3)
	p := MustStartBinary(t)
	p.MustInsertUsers(t, burst, "secureP@ss123")
	t.Logf("idle: VmRSS %d KiB, VmHWM %d KiB", p.status(t, "VmRSS"), p.status(t, "VmHWM"))

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: burst}, Timeout: 2 * time.Minute}
	var ratios, loginRates, hashRates []float64
	for round := 1; round <= rounds; round++ {
		before := rawHashRate(32 * runtime.GOMAXPROCS(0))
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			counts  = map[int]int{}
			errs    int
			release = make(chan struct{})
		)
		for i := range burst {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-release
				status, _, err := login(client, p.URL, fmt.Sprintf("user%d", i), "secureP@ss123", address(i))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs++
					return
				}
				counts[status]++
			}()
		}
		// VmHWM is the peak; VmRSS sampled during the burst shows when.
		stop, sampled := make(chan struct{}), make(chan int)
		go func() {
			peak := 0
			for {
				select {
				case <-stop:
					sampled <- peak
					return
				case <-time.After(50 * time.Millisecond):
					if kib, err := p.statusKiB("VmRSS"); err == nil {
						peak = max(peak, kib)
					}
				}
			}
		}()
		start := time.Now()
		close(release)
		wg.Wait()
		elapsed := time.Since(start)
		close(stop)
		peak := <-sampled
		after := rawHashRate(32 * runtime.GOMAXPROCS(0))
		if errs > 0 || counts[200] == 0 {
			t.Fatalf("round %d: statuses %v, %d transport errors", round, counts, errs)
		}
		hashRate := (before + after) / 2
		loginRate := float64(counts[200]) / elapsed.Seconds()
		ratios, loginRates, hashRates = append(ratios, loginRate/hashRate), append(loginRates, loginRate), append(hashRates, hashRate)
		t.Logf("round %d: %d concurrent logins: statuses %v in %v: %.1f logins/s; raw argon2id %.1f hashes/s (%.1f before, %.1f after): ratio %.2f; VmRSS peak sampled %d KiB, VmHWM %d KiB",
			round, burst, counts, elapsed.Round(time.Millisecond), loginRate, hashRate, before, after, loginRate/hashRate, peak, p.status(t, "VmHWM"))
	}
	t.Logf("RESULT peak RSS (VmHWM) %.1f MiB over %d bursts of %d concurrent logins; login throughput median %.1f/s, raw hash rate median %.1f/s, ratio median %.2f (GOMAXPROCS %d)",
		float64(p.status(t, "VmHWM"))/1024, rounds, burst, median(loginRates), median(hashRates), median(ratios), runtime.GOMAXPROCS(0))
}

// TestMeasureEnumerationTiming times logins for unknown usernames and for
// known ones with a wrong password, interleaved in random order, and
// reports the medians and their ratio.
func TestMeasureEnumerationTiming(t *testing.T) {
	skipUnlessMeasuring(t)
	n := envInt("AUTH_MEASURE_ATTEMPTS", 200)
	p := MustStartBinary(t)
	p.MustInsertUsers(t, n, "secureP@ss123")
	client := &http.Client{Timeout: time.Minute}
	attempt := func(i int, unknown bool) time.Duration {
		name := fmt.Sprintf("user%d", i%n)
		if unknown {
			name = fmt.Sprintf("nobody%d", i)
		}
		status, d, err := login(client, p.URL, name, "wrong password", address(i))
		if err != nil || status != 401 {
			t.Fatalf("login %s = %d, %v, want 401", name, status, err)
		}
		return d
	}
	for i := range 20 { // warm up connections, pools and caches
		attempt(10000+i, i%2 == 0)
	}
	var unknown, wrong []float64
	for i := range n {
		first := rand.IntN(2) == 0
		for _, u := range []bool{first, !first} {
			d := float64(attempt(2*i+map[bool]int{true: 0, false: 1}[u], u).Microseconds()) / 1000
			if u {
				unknown = append(unknown, d)
			} else {
				wrong = append(wrong, d)
			}
		}
	}
	mu, mw := median(unknown), median(wrong)
	t.Logf("RESULT %d attempts each: unknown username median %.2f ms, wrong password median %.2f ms, ratio %.3f (difference %.1f%%)",
		n, mu, mw, mu/mw, 100*(mu-mw)/mw)
}
