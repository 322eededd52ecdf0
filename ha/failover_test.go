//go:build ha

// Package ha_test runs two authapi instances on a highly available
// PostgreSQL (three members under Patroni in synchronous mode, a
// single-member etcd, all on loopback) and moves the primary under load:
// kill -9 of its postmaster, then a planned switchover. Nothing
// acknowledged may be lost, a revoked key may not come back from a cache,
// no request may get a 500, and the instances recover by themselves.
//
// It runs alone (make test-ha, build tag ha): it needs Debian's patroni
// and etcd-server packages, and takes the machine for about a minute.
package ha_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"authapi/internal/authproc"
)

// bin is the authapi binary under test, built once by TestMain.
var bin string

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "authapi-ha-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "ha:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if bin, err = authproc.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "ha:", err)
		return 1
	}
	code := m.Run()
	if len(reports) > 0 {
		fmt.Println("high availability measurements:")
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

// report logs a measurement and keeps it for the summary at the end.
func report(t *testing.T, format string, args ...any) {
	t.Helper()
	line := t.Name() + ": " + fmt.Sprintf(format, args...)
	t.Log(line)
	reportMu.Lock()
	reports = append(reports, line)
	reportMu.Unlock()
}

// loginLimit is the instances' failed logins per username and address.
const loginLimit = 5

// MustStartInstances starts n authapi processes on the cluster's database,
// sharing their secrets, and waits until each hears change notifications
// (its credential cache is in use).
func MustStartInstances(t *testing.T, c *cluster, n int) []*instance {
	t.Helper()
	env := map[string]string{
		"AUTH_ADDR":              "127.0.0.1:0",
		"AUTH_DATABASE_URL":      c.URL("authapi"),
		"AUTH_JWT_SECRET":        "ha-jwt-secret-0123456789abcdef0123",
		"AUTH_API_KEY_PEPPER":    "ha-api-key-pepper-0123456789abcdef",
		"AUTH_ARGON2_MEMORY_KIB": "64",
		"AUTH_ARGON2_TIME":       "1",
		// The load registers, logs in, creates keys and checks revoked
		// ones from one address far beyond the per-address and per-user
		// limits (authproc.ClientLimitsOff, below); the per-pair login
		// limit is the one tested.
		"AUTH_REGISTER_MAX_PER_ADDRESS":       "0",
		"AUTH_LOGIN_MAX_FAILURES_PER_ADDRESS": "0",
		"AUTH_LOGIN_MAX_FAILURES":             fmt.Sprint(loginLimit),
	}
	maps.Copy(env, authproc.ClientLimitsOff)
	var ins []*instance
	for i := range n {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		p := authproc.MustStart(t, bin, env)
		in := &instance{Process: p, name: string(rune('A' + i)), hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
		t.Cleanup(func() { in.Stop(30 * time.Second) }) // before the kill authproc registered
		ins = append(ins, in)
	}
	for _, in := range ins {
		in.mustWaitListening(t, 30*time.Second)
	}
	return ins
}

// mustWaitListening waits until the instance hears change notifications
// again, and returns how long that took.
func (in *instance) mustWaitListening(t *testing.T, timeout time.Duration) time.Duration {
	t.Helper()
	took, err := waitFor(timeout, 20*time.Millisecond, func() bool {
		return in.metric(t, "authapi_credential_cache_listening", "") == 1
	})
	if err != nil {
		t.Fatalf("instance %s does not hear change notifications after %v", in.name, timeout)
	}
	return took
}

func TestFailover(t *testing.T) {
	c := MustStartCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.admin.ExecContext(ctx, `CREATE DATABASE authapi`); err != nil {
		t.Fatal(err)
	}
	ins := MustStartInstances(t, c, 2)

	t.Run("kill -9 the primary's postmaster", func(t *testing.T) {
		move(t, c, ins, "k", func(old *member) time.Time { return c.KillPrimary(old) })
	})
	if t.Failed() {
		return
	}
	// The old primary rejoins as a standby; a switchover needs a
	// synchronous one.
	c.MustWaitHealthy(2 * time.Minute)
	t.Run("patronictl switchover", func(t *testing.T) {
		move(t, c, ins, "s", func(old *member) time.Time {
			at, out := c.Switchover(old, c.SyncStandby())
			report(t, "patronictl switchover returned after %v: %s", ms(time.Since(at)), switchedLine(out))
			return at
		})
	})
}

// move runs the load through the instances, moves the primary with
// disrupt (which returns when it began), and checks what the instances
// did and kept. Usernames start with prefix.
func move(t *testing.T, c *cluster, ins []*instance, prefix string, disrupt func(old *member) time.Time) {
	ctx := context.Background()
	old := c.Leader()
	if old == nil {
		t.Fatal("no primary")
	}

	// A user with one failed login short of the limit, through A.
	throttled, password := prefix+"throttled", "pw-throttled-Secret!"
	if r := ins[0].Register(ctx, throttled, password); r.Status != http.StatusOK {
		t.Fatalf("register: %s", r)
	}
	for i := range loginLimit - 1 {
		if r := ins[0].Login(ctx, throttled, "wrong password"); r.Status != http.StatusUnauthorized {
			t.Fatalf("failed login %d: %s, want 401", i+1, r)
		}
	}

	hits := make([]float64, len(ins))
	for i, in := range ins {
		hits[i] = in.metric(t, "authapi_api_key_verifications_total", `result="hit"`)
	}
	l := startLoad(t, prefix, ins, 3)
	time.Sleep(3 * time.Second)
	for i, in := range ins {
		// The keys are used through both instances: each must be
		// answering from its cache, or there is nothing to test.
		if h := in.metric(t, "authapi_api_key_verifications_total", `result="hit"`); h <= hits[i] {
			t.Fatalf("instance %s's credential cache answered nothing under the load", in.name)
		}
	}

	watches := make([]*listenWatch, len(ins))
	for i, in := range ins {
		watches[i] = watchListening(in)
	}
	at := disrupt(old)
	promoted := c.MustWaitPromoted(old, time.Minute)
	promotedAfter := time.Since(at)
	// The first write through each instance since it lost its
	// notification connection (when the old primary went) is on the new
	// primary.
	writesBack := make([]time.Time, len(ins))
	for i, in := range ins {
		if _, err := waitFor(time.Minute, 20*time.Millisecond, func() bool {
			lost := watches[i].Lost()
			if lost.IsZero() {
				return false
			}
			r, ok := l.firstWriteAfter(in.name, lost)
			writesBack[i] = r.Start.Add(r.Took)
			return ok
		}); err != nil {
			t.Fatalf("no write acknowledged through %s on the new primary within a minute", in.name)
		}
	}
	// Keep the load on while the instances reconnect their listeners:
	// revocations meanwhile are what a cache kept across the move would
	// miss.
	time.Sleep(3 * time.Second)
	l.Stop()
	lost, back := make([]time.Time, len(ins)), make([]time.Time, len(ins))
	for i, in := range ins {
		in.mustWaitListening(t, 30*time.Second)
		lost[i], back[i] = watches[i].Stop()
		if lost[i].IsZero() || back[i].IsZero() {
			t.Fatalf("instance %s: the move was not seen on its change notifications", in.name)
		}
		// The listener finds the new primary about as soon as the pool
		// does: the cache is bypassed little longer than writes fail.
		if d := back[i].Sub(writesBack[i]); d > listenLag {
			t.Errorf("instance %s heard change notifications again %v after its first write on the new primary, want at most %v", in.name, ms(d), listenLag)
		}
	}

	results := l.Results()
	var unavailable, bad []result
	var slowest result
	var firstFail, lastFail time.Time
	for _, r := range results {
		if !expected(r) {
			bad = append(bad, r)
		}
		if r.unavailable() {
			unavailable = append(unavailable, r)
			if firstFail.IsZero() || r.Start.Before(firstFail) {
				firstFail = r.Start
			}
			if end := r.Start.Add(r.Took); end.After(lastFail) {
				lastFail = end
			}
		}
		if r.Took > slowest.Took {
			slowest = r
		}
	}
	for _, r := range bad[:min(len(bad), 10)] {
		t.Errorf("unexpected answer: %s", r)
	}
	if len(bad) > 0 {
		t.Fatalf("%d of %d requests got neither their success nor a 503 problem with Retry-After", len(bad), len(results))
	}

	users, keys, revoked := l.MustVerify(t)

	// The counts survived: the limit's last failure through B, and then
	// even the right password is throttled, through either instance.
	if r := ins[1].Login(ctx, throttled, "wrong password"); r.Status != http.StatusUnauthorized {
		t.Fatalf("failed login %d, after the move: %s, want 401", loginLimit, r)
	}
	for _, in := range ins {
		if r := in.Login(ctx, throttled, password); r.Status != http.StatusTooManyRequests {
			t.Fatalf("login through %s after %d failures, %d of them before the move: %s, want 429", in.name, loginLimit, loginLimit-1, r)
		}
	}

	// The caches are in use again: a key used twice is answered from
	// the cache the second time.
	var valid string
	for raw := range l.keys {
		if !l.tried[raw] {
			valid = raw
			break
		}
	}
	for _, in := range ins {
		before := in.metric(t, "authapi_api_key_verifications_total", `result="hit"`)
		for range 2 {
			if r := in.Me(ctx, valid); r.Status != http.StatusOK {
				t.Fatalf("GET /v1/me through %s: %s", in.name, r)
			}
		}
		if in.metric(t, "authapi_api_key_verifications_total", `result="hit"`) <= before {
			t.Fatalf("instance %s's credential cache answers nothing after the move", in.name)
		}
	}

	for _, in := range ins {
		select {
		case <-in.Exited():
			t.Fatalf("instance %s exited", in.name)
		default:
		}
		if n := len(in.LogLines("listening")); n != 1 {
			t.Fatalf("instance %s logged %d starts, want 1", in.name, n)
		}
	}

	lastRevoked, _ := l.lastWriteBefore(at, "revoke")
	report(t, "%s -> %s: the new primary was promoted (Patroni's /primary answers 200) %v after the move began; writes stopped for %v (A) and %v (B)",
		old.name, promoted.name, ms(promotedAfter), ms(l.writeGap(ins[0].name)), ms(l.writeGap(ins[1].name)))
	if len(unavailable) > 0 {
		report(t, "%d of %d requests failed, all 503 problem+json with Retry-After, between %v and %v from the move's start; slowest request: %s, %v",
			len(unavailable), len(results), ms(firstFail.Sub(at)), ms(lastFail.Sub(at)), slowest.Op, ms(slowest.Took))
	} else {
		report(t, "0 of %d requests failed; slowest request: %s, %v", len(results), slowest.Op, ms(slowest.Took))
	}
	report(t, "credential caches bypassed for %v (A) and %v (B), from the loss of the notification connection until it was back on the new primary; the last revocation acknowledged before the move ended %v before it",
		ms(back[0].Sub(lost[0])), ms(back[1].Sub(lost[1])), ms(at.Sub(lastRevoked)))
	report(t, "checked through both instances: %d users log in, %d keys authenticate, %d revoked keys are refused; the login throttle's count survived",
		users, keys, revoked)
}

// listenLag bounds how much later than its pool an instance's change
// listener may find the new primary.
const listenLag = 2 * time.Second

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

// switchedLine returns patronictl's line saying that the switchover
// happened, or its last line.
func switchedLine(out string) string {
	lines := slices.DeleteFunc(strings.Split(out, "\n"), func(l string) bool { return strings.TrimSpace(l) == "" })
	for _, l := range lines {
		if strings.Contains(l, "Successfully") {
			return strings.TrimSpace(l)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}
