//go:build faults

package faults_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKill9UnderLoad kills authapi with SIGKILL while workers register
// users and create keys, restarts it, and checks that every acknowledged
// write is there and usable, and that nothing half-written is visible:
// every user row holds a well-formed argon2id hash of the password that
// was sent (acknowledged or not, the user logs in with it), and every key
// has an owner. It does so against an external PostgreSQL and against the
// embedded one, which dies with authapi.
func TestKill9UnderLoad(t *testing.T) {
	for _, embedded := range []bool{false, true} {
		name := map[bool]string{false: "external", true: "embedded"}[embedded]
		t.Run(name, func(t *testing.T) {
			env := baseEnv(nil)
			if embedded {
				env["AUTH_DATA_DIR"] = t.TempDir()
			} else {
				env["AUTH_DATABASE_URL"] = MustStartDatabase(t).URL
			}
			a := MustStartAuthAPI(t, env)
			l := startLoad(t, a.Client(), "k", 12)
			if _, err := waitFor(30*time.Second, 10*time.Millisecond, func() bool {
				u, k := l.Acked()
				return u >= 200 && k >= 150
			}); err != nil {
				t.Fatalf("the load did not get 200 registrations and 150 keys acknowledged within 30s")
			}
			a.Signal(syscall.SIGKILL)
			killed := time.Now()
			state, err := a.Wait(10 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if ws := state.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("authapi ended with %v, want killed by SIGKILL", state)
			}
			l.Stop()
			var lost int
			for _, r := range l.Results() {
				if r.Err != nil {
					lost++
				}
			}
			ackedUsers, ackedKeys := l.Acked()

			b := MustStartAuthAPI(t, env)
			restarted := time.Since(killed)
			c := b.Client()
			db := MustOpenSQL(t, databaseURL(t, env))

			// Nothing half-written: the schema's constraints should make
			// these impossible, and this checks that they hold.
			if n := MustCount(t, db, `SELECT count(*) FROM users WHERE password_hash !~ $1`, phcPattern); n != 0 {
				t.Errorf("%d users have no well-formed argon2id hash", n)
			}
			if n := MustCount(t, db, `SELECT count(*) FROM api_keys k WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = k.user_id)`); n != 0 {
				t.Errorf("%d API keys have no owner", n)
			}
			// An event is written in the transaction of its change: no
			// committed key without its event, no event of a key that
			// was never committed.
			if n := MustCount(t, db, `SELECT count(*) FROM api_keys k WHERE NOT EXISTS
				(SELECT 1 FROM security_events e WHERE e.key_id = k.id AND e.type = 'api_key_created')`); n != 0 {
				t.Errorf("%d committed keys have no api_key_created event", n)
			}
			if n := MustCount(t, db, `SELECT count(*) FROM security_events e WHERE e.type = 'api_key_created' AND NOT EXISTS
				(SELECT 1 FROM api_keys k WHERE k.id = e.key_id)`); n != 0 {
				t.Errorf("%d api_key_created events are of keys that were never committed", n)
			}
			events := MustCount(t, db, `SELECT count(*) FROM security_events WHERE type = 'api_key_created'`)
			// Every user in the database is one the load sent, acknowledged
			// or not, and logs in with the password it sent.
			names := MustUsernames(t, db)
			l.mu.Lock()
			attempted := l.attempted
			l.mu.Unlock()
			errs := parallel(8, len(names), func(i int) error {
				password, ok := attempted[names[i]]
				if !ok {
					return fmt.Errorf("user %q in the database was never sent", names[i])
				}
				if r := c.Login(context.Background(), names[i], password); r.Status != http.StatusOK {
					return fmt.Errorf("user %q in the database cannot log in: %s", names[i], r)
				}
				return nil
			})
			for _, err := range errs[:min(10, len(errs))] {
				t.Error(err)
			}
			if len(names) < ackedUsers {
				t.Errorf("%d users in the database, fewer than the %d acknowledged", len(names), ackedUsers)
			}
			keys := MustCount(t, db, `SELECT count(*) FROM api_keys`)
			l.MustVerifyAcked(t, c)
			report(t, "killed with %d users and %d keys acknowledged and %d requests in flight; restarted and serving in %s; "+
				"all acknowledged writes usable; the database holds %d users (%d committed but unacknowledged, all able to log in) and %d keys (%d unacknowledged), none half-written, each with its creation event (%d events)",
				ackedUsers, ackedKeys, lost, ms(restarted), len(names), len(names)-ackedUsers, keys, keys-ackedKeys, events)
		})
	}
}

// phcPattern is what the password package writes: argon2id, version 19,
// a 16-byte salt and a 32-byte key in unpadded base64.
const phcPattern = `^\$argon2id\$v=19\$m=[0-9]+,t=[0-9]+,p=[0-9]+\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`

// databaseURL returns the URL of the database authapi uses with env: the
// external one, or the embedded one in the data folder, whose socket
// folder postmaster.pid names.
func databaseURL(t *testing.T, env map[string]string) string {
	t.Helper()
	if u := env["AUTH_DATABASE_URL"]; u != "" {
		return u
	}
	b, err := os.ReadFile(filepath.Join(env["AUTH_DATA_DIR"], "postgres", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	// postmaster.pid: pid, data directory, start time, port, socket folder, ...
	lines := strings.Split(string(b), "\n")
	if len(lines) < 5 {
		t.Fatalf("postmaster.pid: %q", b)
	}
	return (&url.URL{Scheme: "postgres", User: url.User("authapi"), Path: "/authapi",
		RawQuery: url.Values{"host": {lines[4]}, "sslmode": {"disable"}}.Encode()}).String()
}

// MustUsernames lists the usernames in the database.
func MustUsernames(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT username FROM users`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}
