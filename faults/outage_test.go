//go:build faults

package faults_test

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestDatabaseOutageUnderLoad takes PostgreSQL away under a steady load,
// three ways: a clean stop, a crash (immediate shutdown, WAL replay at the
// next start) and a freeze (every PostgreSQL process stopped with SIGSTOP,
// so that connections stay open and nothing answers, like a host that drops
// off the network). During each outage every request must fail fast with
// 503 problem+json, /readyz must say 503 and /healthz 200; afterwards the
// same process must recover by itself, and every write it acknowledged,
// before, during or after the outages, must be there.
func TestDatabaseOutageUnderLoad(t *testing.T) {
	// A request may wait AUTH_DB_TIMEOUT for its statement, then up to the
	// store's half second for a stalled connection to give up; the rest
	// is slack for a loaded machine.
	const dbTimeout, bound = 2 * time.Second, 4 * time.Second
	db := MustStartDatabase(t)
	a := MustStartAuthAPI(t, baseEnv(map[string]string{"AUTH_DATABASE_URL": db.URL, "AUTH_DB_TIMEOUT": dbTimeout.String()}))
	c := a.Client()
	l := startLoad(t, c, "o", 8)

	for _, o := range []struct {
		name     string
		down, up func()
	}{
		{"stop", db.MustStop, db.MustStart},
		{"crash", db.MustCrash, db.MustStart},
		{"freeze", db.Freeze, db.Thaw},
	} {
		time.Sleep(time.Second) // normal traffic first
		before := len(l.Results())
		down := time.Now()
		o.down()

		// Probe while the database is away.
		var ready, healthy []int
		for time.Since(down) < 3*time.Second {
			ready = append(ready, c.Get(context.Background(), "/readyz").Status)
			healthy = append(healthy, c.Get(context.Background(), "/healthz").Status)
			time.Sleep(250 * time.Millisecond)
		}
		o.up()
		up := time.Now()
		recovered, err := waitFor(30*time.Second, 20*time.Millisecond, func() bool {
			for _, r := range l.Results()[before:] {
				if r.Start.After(up) && r.Status == http.StatusOK {
					return true
				}
			}
			return false
		})
		if err != nil {
			t.Fatalf("%s: no request succeeded within 30s of the database coming back", o.name)
		}
		readyAgain, err := waitFor(30*time.Second, 20*time.Millisecond, func() bool {
			return c.Get(context.Background(), "/readyz").Status == http.StatusOK
		})
		if err != nil {
			t.Fatalf("%s: /readyz not 200 within 30s of the database coming back", o.name)
		}
		readyAgain += recovered // both measured from up

		// Every request of the outage: 200 (finished before the database
		// went), or 503 problem+json within the bound; nothing else, and
		// none slower.
		var failed, slow int
		var during []time.Duration
		var worst result
		for _, r := range l.Results()[before:] {
			if r.Start.Before(down) || r.Start.After(up) {
				continue
			}
			during = append(during, r.Took)
			if r.Took > worst.Took {
				worst = r
			}
			switch {
			case r.Status == http.StatusOK:
			case r.Unavailable():
				failed++
			default:
				t.Errorf("%s: a request during the outage got %s, want 200 or 503 problem+json", o.name, r)
			}
			if r.Took > bound {
				slow++
			}
		}
		if slow > 0 {
			t.Errorf("%s: %d requests took longer than %v (AUTH_DB_TIMEOUT %v); the slowest: %s", o.name, slow, bound, dbTimeout, worst)
		}
		for i := range ready {
			if ready[i] != http.StatusServiceUnavailable || healthy[i] != http.StatusOK {
				t.Errorf("%s: probe %d during the outage: /readyz %d, /healthz %d; want 503 and 200", o.name, i, ready[i], healthy[i])
			}
		}
		report(t, "%s: %d requests during the outage, %d got 503 problem+json (p50 %s, max %s, bound %s); first success %s after the database was back, /readyz 200 after %s",
			o.name, len(during), failed, ms(percentile(during, 50)), ms(worst.Took), ms(bound), ms(recovered), ms(readyAgain))
	}

	time.Sleep(time.Second)
	l.Stop()
	users, keys := l.MustVerifyAcked(t, c)
	report(t, "after 3 outages the same process serves every acknowledged write: %d users log in, %d keys authenticate (%d requests in all)",
		users, keys, len(l.Results()))
}
