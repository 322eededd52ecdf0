//go:build faults

package faults_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStartBeforeDatabase starts authapi while its database is down: it
// must retry with a growing pause, say why in its log, and serve once the
// database appears; with a short limit it must give up with a clear message
// and a non-zero exit status.
func TestStartBeforeDatabase(t *testing.T) {
	t.Run("waits", func(t *testing.T) {
		db := MustStartDatabase(t)
		db.MustStop()
		a := launch(t, baseEnv(map[string]string{"AUTH_DATABASE_URL": db.URL, "AUTH_DB_CONNECT_TIMEOUT": "1m"}))
		time.Sleep(3 * time.Second)
		select {
		case <-a.Exited():
			state, _ := a.Wait(time.Second)
			t.Fatalf("authapi exited while waiting for the database (%v):\n%s", state, a.Log)
		default:
		}
		retries := a.LogLines("database not reachable yet; retrying")
		if len(retries) < 3 {
			t.Fatalf("%d retries logged in 3s, want at least 3:\n%s", len(retries), a.Log)
		}
		var pauses []string
		prev := time.Duration(0)
		for _, r := range retries {
			wait, err := time.ParseDuration(r["retry_in"].(string))
			if err != nil || wait < prev {
				t.Errorf("retry_in %v after %v: want a pause that does not shrink", r["retry_in"], prev)
			}
			if msg, _ := r["error"].(string); !strings.Contains(msg, "database unavailable") {
				t.Errorf("retry logged with error %q, want why the database is unavailable", msg)
			}
			prev = wait
			pauses = append(pauses, wait.String())
		}

		db.MustStart()
		up := time.Now()
		if err := a.WaitListening(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		listening := time.Since(up)
		c := a.Client()
		if r := c.Get(context.Background(), "/readyz"); r.Status != http.StatusOK {
			t.Fatalf("/readyz once listening = %s, want 200", r)
		}
		if r := c.Register(context.Background(), "late", "secureP@ss123"); r.Status != http.StatusOK {
			t.Fatalf("register once listening = %s, want 200 (migrated and serving)", r)
		}
		report(t, "%d retries logged in the first 3s, pauses %s, each naming the cause (%q); listening and ready %s after the database came up (not listening while it waits)",
			len(retries), strings.Join(pauses, " "), retries[0]["error"], ms(listening))
	})

	t.Run("gives up", func(t *testing.T) {
		// A socket folder with no server in it.
		url := "postgres://authapi@/authapi?sslmode=disable&host=" + t.TempDir()
		const limit = 2 * time.Second
		start := time.Now()
		a := launch(t, baseEnv(map[string]string{"AUTH_DATABASE_URL": url, "AUTH_DB_CONNECT_TIMEOUT": limit.String()}))
		state, err := a.Wait(limit + 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		if state.ExitCode() == 0 {
			t.Fatalf("authapi exited with status 0 after the database stayed away, want non-zero")
		}
		msg := lastLine(a.Log.String())
		if !strings.Contains(msg, "the database was not reachable within 2s") {
			t.Fatalf("last words %q, want them to say that the database was not reachable within 2s", msg)
		}
		if took > limit+5*time.Second {
			t.Fatalf("authapi gave up after %v, want about AUTH_DB_CONNECT_TIMEOUT (%v)", took, limit)
		}
		report(t, "with AUTH_DB_CONNECT_TIMEOUT=%v: exit status %d after %s, saying %q", limit, state.ExitCode(), ms(took), msg)
	})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
