//go:build faults

package faults_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSigtermUnderLoad sends SIGTERM to authapi, running on its embedded
// PostgreSQL, while slow requests (logins with the real argon2id cost, one
// hash at a time) are in flight: every one of them must complete, new
// connections must be refused once the listener is closed, the process
// must exit 0 within the drain timeout, and the embedded PostgreSQL must
// have shut down cleanly, leaving no process behind.
func TestSigtermUnderLoad(t *testing.T) {
	const drain = 10 * time.Second
	dataDir := t.TempDir()
	a := MustStartAuthAPI(t, baseEnv(map[string]string{
		"AUTH_DATA_DIR":          dataDir,
		"AUTH_ARGON2_MEMORY_KIB": "", // the defaults: OWASP's m=19 MiB, t=2
		"AUTH_ARGON2_TIME":       "",
		"AUTH_HASH_WORKERS":      "1",
		"AUTH_SHUTDOWN_TIMEOUT":  drain.String(),
		"AUTH_LOG_LEVEL":         "debug", // PostgreSQL's own log lines
		// 16 concurrent logins of one user from one address are more
		// in-flight attempts than the per-pair limit (10) admits until the
		// first succeeds; whether they fit was a matter of timing.
		"AUTH_LOGIN_MAX_FAILURES": "0",
	}))
	c := a.Client()
	const password = "secureP@ss123"
	if r := c.Register(context.Background(), "patient", password); r.Status != http.StatusOK {
		t.Fatalf("register = %s", r)
	}
	pgDir := filepath.Join(dataDir, "postgres")
	postmaster, err := postmasterPID(pgDir)
	if err != nil {
		t.Fatal(err)
	}
	pgProcs := append([]int{postmaster}, childrenOf(postmaster)...)

	// Slow requests, all sent before the signal.
	const inFlight = 16
	var wrote sync.WaitGroup
	wrote.Add(inFlight)
	results := make(chan result, inFlight)
	for range inFlight {
		go func() {
			var once sync.Once
			ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
				WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(wrote.Done) },
			})
			results <- c.Login(ctx, "patient", password)
		}()
	}
	wrote.Wait()
	time.Sleep(200 * time.Millisecond) // accepted and queued for the hasher
	a.Signal(syscall.SIGTERM)
	term := time.Now()

	// New connections, until the process is gone.
	addr := strings.TrimPrefix(a.URL, "http://")
	var refusedAt time.Duration = -1
	var acceptedAfterRefusal, dials int
	for alive := true; alive; {
		select {
		case <-a.Exited():
			alive = false
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		dials++
		switch {
		case err == nil:
			conn.Close()
			if refusedAt >= 0 {
				acceptedAfterRefusal++
			}
		// A connection that reached the backlog just before the listener
		// closed is reset rather than refused: not served either way.
		case errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET):
			if refusedAt < 0 {
				refusedAt = time.Since(term)
			}
		default:
			t.Errorf("dial after SIGTERM: %v, want refused", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	state, err := a.Wait(drain + 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	exited := time.Since(term)

	var slowest time.Duration
	var afterTerm int
	for range inFlight {
		r := <-results
		if r.Status != http.StatusOK {
			t.Errorf("an in-flight login after SIGTERM: %s, want 200", r)
		}
		if r.Start.Add(r.Took).After(term) {
			afterTerm++
		}
		slowest = max(slowest, r.Took)
	}
	if afterTerm == 0 {
		t.Fatalf("every login finished before SIGTERM: the test proves nothing")
	}
	if state.ExitCode() != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", state.ExitCode())
	}
	if exited > drain {
		t.Errorf("exited %v after SIGTERM, want within the drain timeout %v", exited, drain)
	}
	if refusedAt < 0 || refusedAt > time.Second || acceptedAfterRefusal > 0 {
		t.Errorf("first refused connection %v after SIGTERM, %d accepted after it; want refusals within 1s and no acceptance after", refusedAt, acceptedAfterRefusal)
	}

	// The embedded PostgreSQL is gone, and knows it shut down cleanly.
	var left []int
	for _, pid := range pgProcs {
		if alive(pid) {
			left = append(left, pid)
		}
	}
	if len(left) > 0 {
		t.Errorf("PostgreSQL processes %v still alive after authapi exited", left)
	}
	if _, err := os.Stat(filepath.Join(pgDir, "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("postmaster.pid still there (%v): PostgreSQL did not shut down", err)
	}
	cluster := clusterState(t, pgDir)
	if cluster != "shut down" {
		t.Errorf("pg_controldata: Database cluster state %q, want \"shut down\"", cluster)
	}
	if !strings.Contains(a.Log.String(), "database system is shut down") {
		t.Errorf("PostgreSQL's log lacks \"database system is shut down\"")
	}
	report(t, "%d logins (real argon2id, one hasher), %d of them still in flight at SIGTERM, all completed with 200, the slowest in %s; new connections refused %s after SIGTERM (%d dials, none accepted after); "+
		"exit status %d %s after SIGTERM (drain timeout %v); %d PostgreSQL processes gone, cluster state %q",
		inFlight, afterTerm, ms(slowest), ms(refusedAt), dials, state.ExitCode(), ms(exited), drain, len(pgProcs), cluster)
}

// clusterState returns pg_controldata's "Database cluster state" for dir.
func clusterState(t *testing.T, dir string) string {
	t.Helper()
	bin, err := exec.LookPath("pg_controldata")
	if err != nil {
		found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_controldata")
		if len(found) == 0 {
			t.Fatal("pg_controldata not found")
		}
		bin = found[len(found)-1]
	}
	out, err := exec.Command(bin, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_controldata: %v\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(line, "Database cluster state:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("pg_controldata printed no cluster state:\n%s", out)
	return ""
}
