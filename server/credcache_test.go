package server_test

import (
	"database/sql"
	"errors"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"authapi/server"
	"authapi/store/storetest"
)

// MustExec runs statements on the env's database as an operator would.
func (e *env) MustExec(stmt string, args ...any) {
	e.t.Helper()
	db, err := sql.Open("postgres", e.DBURL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt, args...); err != nil {
		e.t.Fatalf("%s: %v", stmt, err)
	}
}

// eventually polls get until it returns want, for at most wait.
func eventually(tb testing.TB, wait time.Duration, want int, get func() int) {
	tb.Helper()
	var got int
	for deadline := time.Now().Add(wait); ; time.Sleep(time.Millisecond) {
		if got = get(); got == want || time.Now().After(deadline) {
			break
		}
	}
	if got != want {
		tb.Fatalf("status = %d for %v, want %d", got, wait, want)
	}
}

// TestCredentialCacheHearsSQL changes credentials behind the server's back,
// in SQL, after the server cached them: the triggers tell it, and the
// credential stops working long before the cache's lifetime.
func TestCredentialCacheHearsSQL(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		sql  string // $1 is the key's ID, $2 the user's
	}{
		{"key revoked", `UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND user_id = $2`},
		{"key deleted", `DELETE FROM api_keys WHERE id = $1 AND user_id = $2`},
		{"user deleted", `DELETE FROM users WHERE id = $2 AND $1::uuid IS NOT NULL`},
		{"keys truncated", `TRUNCATE api_keys`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := e.MustLogin(uniqueName())
			key := e.MustCreateKey(u, "k")
			if r := e.do(true, "GET", "/v1/me", "", "X-API-Key", key.RawKey); r.Status != 200 {
				t.Fatalf("GET /v1/me = %d %s, want 200", r.Status, r.Body)
			}
			if n, _ := e.Srv.CacheSize(); n == 0 {
				t.Fatal("the key was not cached")
			}
			if strings.Contains(tc.sql, "$1") {
				e.MustExec(tc.sql, key.ID, u.ID)
			} else {
				e.MustExec(tc.sql)
			}
			eventually(t, time.Second, 401, func() int { return e.do(true, "GET", "/v1/me", "", "X-API-Key", key.RawKey).Status })
		})
	}
	for _, tc := range []struct {
		name, sql, field, want string
	}{
		{"profile changed", `UPDATE users SET full_name = 'Renamed' WHERE id = $2 AND $1::uuid IS NOT NULL`, "full_name", "Renamed"},
		{"key moved to another user", `UPDATE api_keys SET user_id = (SELECT id FROM users WHERE username = 'other') WHERE id = $1 AND user_id = $2`, "username", "other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.MustRegister("other")
			u := e.MustLogin(uniqueName())
			key := e.MustCreateKey(u, "k")
			// With the cache emptied, the key is the only one it can
			// hold; a fill is dropped when a change is heard meanwhile
			// (such as the previous subtest's), so use it until cached.
			e.Srv.FlushCache()
			for i := 0; i < 100; i++ {
				r := e.do(true, "GET", "/v1/me", "", "X-API-Key", key.RawKey)
				if r.Status != 200 {
					t.Fatalf("GET /v1/me = %d %s, want 200", r.Status, r.Body)
				}
				if r.JSON[tc.field] == tc.want {
					t.Fatalf("%s is already %q before the change", tc.field, tc.want)
				}
				if n, _ := e.Srv.CacheSize(); n == 1 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			if n, _ := e.Srv.CacheSize(); n != 1 {
				t.Fatalf("cached keys = %d, want 1: the key was not cached", n)
			}
			e.MustExec(tc.sql, key.ID, u.ID)
			eventually(t, time.Second, 1, func() int {
				if e.do(true, "GET", "/v1/me", "", "X-API-Key", key.RawKey).JSON[tc.field] == tc.want {
					return 1
				}
				return 0
			})
			e.MustExec(`DELETE FROM users WHERE username = 'other'`)
		})
	}
	t.Run("JWT user deleted", func(t *testing.T) {
		u := e.MustLogin(uniqueName())
		// With the cache emptied, this user is the only one it can hold;
		// a fill is dropped when a change is heard meanwhile, so list
		// until cached.
		e.Srv.FlushCache()
		for i := 0; i < 100; i++ {
			if r := e.do(true, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+u.Token); r.Status != 200 {
				t.Fatalf("GET /v1/auth/api-keys = %d, want 200", r.Status)
			}
			if _, n := e.Srv.CacheSize(); n == 1 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if _, n := e.Srv.CacheSize(); n != 1 {
			t.Fatalf("cached users = %d, want 1: the JWT's user was not cached", n)
		}
		e.MustExec(`DELETE FROM users WHERE id = $1`, u.ID)
		eventually(t, time.Second, 401, func() int {
			return e.do(true, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+u.Token).Status
		})
	})
}

// TestKeyListingCacheHearsSQL changes a cached key listing behind the
// server's back: the triggers tell it, and the very next listing shows the
// change (the server syncs with the notifications before it serves one
// from the cache).
func TestKeyListingCacheHearsSQL(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		sql  string // $1 is the key's ID, $2 the user's
		want func(body string) bool
	}{
		{"key renamed", `UPDATE api_keys SET name = 'renamed' WHERE id = $1 AND user_id = $2`,
			func(b string) bool { return strings.Contains(b, `"name":"renamed"`) }},
		{"key used", `UPDATE api_keys SET last_used_at = '2026-01-02T03:04:00Z' WHERE id = $1 AND user_id = $2`,
			func(b string) bool { return strings.Contains(b, `"last_used_at":"2026-01-02T03:04:00Z"`) }},
		{"key revoked", `UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND user_id = $2`,
			func(b string) bool { return strings.Contains(b, `"is_active":false`) }},
		{"key added", `INSERT INTO api_keys (user_id, name, prefix, digest) SELECT user_id, 'added', prefix, sha256(digest) FROM api_keys WHERE id = $1 AND user_id = $2`,
			func(b string) bool { return strings.Contains(b, `"name":"added"`) }},
		{"key deleted", `DELETE FROM api_keys WHERE id = $1 AND user_id = $2`,
			func(b string) bool { return b == "[]\n" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := e.MustLogin(uniqueName())
			key := e.MustCreateKey(u, "k")
			list := func() string {
				r := e.do(true, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+u.Token)
				if r.Status != 200 {
					t.Fatalf("GET /v1/auth/api-keys = %d %s", r.Status, r.Body)
				}
				return string(r.Body)
			}
			// A fill is dropped when a change is heard meanwhile, such as
			// the key's creation: list until the listing is cached.
			before := list()
			for i := 0; i < 100 && !e.Srv.ListingCached(uuid.MustParse(u.ID)); i++ {
				time.Sleep(time.Millisecond)
				before = list()
			}
			if tc.want(before) {
				t.Fatalf("the listing already says what the change should make it say: %s", before)
			}
			if !e.Srv.ListingCached(uuid.MustParse(u.ID)) {
				t.Fatal("the listing was not cached")
			}
			if list() != before {
				t.Fatal("a second listing differs from the first with nothing changed")
			}
			e.MustExec(tc.sql, key.ID, u.ID)
			if after := list(); !tc.want(after) {
				t.Fatalf("the listing right after the change: %s", after)
			}
		})
	}
}

var nameSeq atomic.Int64

// uniqueName returns a fresh valid username.
func uniqueName() string { return "user" + strconv.FormatInt(nameSeq.Add(1), 10) }

// TestCredentialCacheWithoutNotifications cuts the notification connection:
// the cache empties and is bypassed, so a key revoked in SQL meanwhile (of
// which the server hears nothing) is refused at once; when the connection
// is back, the cache is used again.
func TestCredentialCacheWithoutNotifications(t *testing.T) {
	dbURL := storetest.NewURL(t)
	p := MustProxy(t, storetest.DirectURL(dbURL))
	e := newEnv(t, options{dbURL: dbURL, listenURL: p.URL})
	u := e.MustLogin("cutoff")
	key := e.MustCreateKey(u, "k")
	me := func(k string) int { return e.do(true, "GET", "/v1/me", "", "X-API-Key", k).Status }
	if me(key.RawKey) != 200 {
		t.Fatal("the key does not work")
	}
	if n, _ := e.Srv.CacheSize(); n != 1 {
		t.Fatalf("cached keys = %d, want 1", n)
	}
	// A fill is dropped when a change is heard meanwhile, such as the
	// key's creation: list until the listing is cached.
	userID := uuid.MustParse(u.ID)
	for i := 0; i < 100 && !e.Srv.ListingCached(userID); i++ {
		if r := e.do(true, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+u.Token); r.Status != 200 {
			t.Fatalf("GET /v1/auth/api-keys = %d %s, want 200", r.Status, r.Body)
		}
		time.Sleep(time.Millisecond)
	}
	if !e.Srv.ListingCached(userID) {
		t.Fatal("the listing was not cached before the cut")
	}

	p.Cut()
	waitListening(t, e.Srv, false)
	if n, _ := e.Srv.CacheSize(); n != 0 {
		t.Fatalf("cached keys with the notifications cut = %d, want 0", n)
	}
	e.MustExec(`UPDATE api_keys SET revoked_at = now() WHERE id = $1`, key.ID)
	if got := me(key.RawKey); got != 401 {
		t.Fatalf("a key revoked in SQL while notifications were cut = %d, want 401 at once", got)
	}
	// The listing, cached before the cut, is read from the database.
	if r := e.do(true, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+u.Token); r.Status != 200 || !strings.Contains(string(r.Body), `"is_active":false`) {
		t.Fatalf("the listing while notifications were cut = %d %s, want the key revoked in SQL", r.Status, r.Body)
	}
	if e.Srv.ListingCached(userID) {
		t.Fatal("the listing was cached while notifications were cut: the cache must be bypassed")
	}
	other := e.MustCreateKey(u, "other")
	for range 2 {
		if got := me(other.RawKey); got != 200 {
			t.Fatalf("another key = %d, want 200", got)
		}
	}
	if n, _ := e.Srv.CacheSize(); n != 0 {
		t.Fatalf("cached keys with the notifications cut = %d, want 0: the cache must be bypassed", n)
	}

	p.Restore()
	waitListening(t, e.Srv, true)
	me(other.RawKey)
	if n, _ := e.Srv.CacheSize(); n != 1 {
		t.Fatalf("cached keys once notifications are back = %d, want 1", n)
	}
}

// waitListening waits until the server's credential cache is in use (or
// bypassed), as want says.
func waitListening(tb testing.TB, srv *server.Server, want bool) {
	tb.Helper()
	for deadline := time.Now().Add(15 * time.Second); srv.CacheListening() != want; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("the credential cache's listening is not %v after 15s", want)
		}
	}
}

// proxy forwards connections to PostgreSQL, and can cut them.
type proxy struct {
	URL string

	ln      net.Listener
	target  func() (net.Conn, error)
	mu      sync.Mutex
	open    bool
	conns   []net.Conn
	stopped chan struct{}
}

// MustProxy starts a proxy in front of the database of dbURL (a unix
// socket or TCP one) and returns it; URL reaches the same database.
func MustProxy(tb testing.TB, dbURL string) *proxy {
	tb.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		tb.Fatal(err)
	}
	var dial func() (net.Conn, error)
	q := u.Query()
	if dir := q.Get("host"); filepath.IsAbs(dir) {
		socks, _ := filepath.Glob(filepath.Join(dir, ".s.PGSQL.*"))
		if len(socks) == 0 {
			tb.Fatalf("no PostgreSQL socket in %s", dir)
		}
		dial = func() (net.Conn, error) { return net.Dial("unix", socks[0]) }
		q.Del("host")
	} else {
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "5432")
		}
		dial = func() (net.Conn, error) { return net.Dial("tcp", host) }
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	u.Host = ln.Addr().String()
	u.RawQuery = q.Encode()
	p := &proxy{URL: u.String(), ln: ln, target: dial, open: true, stopped: make(chan struct{})}
	go p.serve()
	tb.Cleanup(func() { ln.Close(); <-p.stopped; p.Cut() })
	return p
}

func (p *proxy) serve() {
	defer close(p.stopped)
	for {
		c, err := p.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		p.mu.Lock()
		if !p.open {
			p.mu.Unlock()
			c.Close()
			continue
		}
		t, err := p.target()
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, t)
		p.mu.Unlock()
		go func() { io.Copy(t, c); t.Close() }()
		go func() { io.Copy(c, t); c.Close() }()
	}
}

// Cut closes every connection and refuses new ones until Restore.
func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open = false
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Restore accepts connections again.
func (p *proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open = true
}
