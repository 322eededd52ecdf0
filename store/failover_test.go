package store_test

import (
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lib/pq"

	"authapi/store"
	"authapi/store/storetest"
)

// A server that does not take writes, for a URL with
// target_session_attrs=read-write, is what every member of a highly
// available cluster looks like between the old primary's end and the new
// one's promotion.

// readWriteURL returns a fresh database's direct URL (sessions of its own,
// whatever the pooler) asking for a read-write session, and an admin pool
// on it. With several, the URL first names a server that refuses
// connections, as a stopped member does.
func readWriteURL(t *testing.T, several bool) (string, *sql.DB) {
	t.Helper()
	u, err := url.Parse(storetest.DirectURL(storetest.NewURL(t)))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pq.NewConfig(u.String())
	if err != nil {
		t.Fatal(err)
	}
	// The admin's sessions take writes whatever the database's default.
	q := u.Query()
	q.Set("default_transaction_read_only", "off")
	u.RawQuery = q.Encode()
	admin, err := sql.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	q.Del("default_transaction_read_only")
	q.Set("target_session_attrs", "read-write")
	if several {
		u.Host = ""
		q.Set("host", "127.0.0.1,"+cfg.Host)
		q.Set("port", strconv.Itoa(closedPort(t))+","+strconv.Itoa(int(cfg.Port)))
	}
	u.RawQuery = q.Encode()
	return u.String(), admin
}

// closedPort returns a TCP port of 127.0.0.1 that nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// setReadOnly makes the database's new sessions read-only (or not), as a
// standby's are, and ends its other sessions, as a demotion does.
func setReadOnly(t *testing.T, admin *sql.DB, on bool) {
	t.Helper()
	stmt := `ALTER DATABASE %s RESET default_transaction_read_only`
	if on {
		stmt = `ALTER DATABASE %s SET default_transaction_read_only = on`
	}
	var name string
	if err := admin.QueryRowContext(ctx, `SELECT current_database()`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ExecContext(ctx, strings.ReplaceAll(stmt, "%s", pq.QuoteIdentifier(name))); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
}

// TestNoWritableServerIsUnavailable: while no server takes writes,
// requests fail as the database being unavailable (503 and Retry-After),
// and succeed again once one does, on the same pool.
func TestNoWritableServerIsUnavailable(t *testing.T) {
	for _, several := range []bool{false, true} {
		t.Run(map[bool]string{false: "one server", true: "several servers"}[several], func(t *testing.T) {
			u, admin := readWriteURL(t, several)
			db, err := store.Open(ctx, u, store.Options{MaxConns: 2, QueryTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			MustCreateUser(t, db, "before")

			setReadOnly(t, admin, true)
			err = db.CreateUser(ctx, &store.User{Username: "during", Email: "during@example.com", FullName: "D", PasswordHash: hash})
			if !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("CreateUser with no writable server = %v, want ErrUnavailable", err)
			}
			// It is logged, and is the start-up's last word when no
			// server comes: one line, whatever each server said.
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("CreateUser with no writable server = %q, want one line", err)
			}
			if _, err := db.UserByUsername(ctx, "before"); !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("UserByUsername with no writable server = %v, want ErrUnavailable", err)
			}

			setReadOnly(t, admin, false)
			MustCreateUser(t, db, "after")
		})
	}
}

// TestOpenWithoutWritableServer: authapi starting while no server takes
// writes waits for one (the start-up retries ErrUnavailable), while a URL
// that cannot work fails at once.
func TestOpenWithoutWritableServer(t *testing.T) {
	u, admin := readWriteURL(t, true)
	setReadOnly(t, admin, true)
	_, err := store.Open(ctx, u, store.Options{QueryTimeout: 5 * time.Second})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open(read-only server) = %v, want ErrUnavailable", err)
	}

	// One server refuses connections, the other has no such database.
	bad, _ := url.Parse(u)
	bad.Path = "/authapi_no_such_database"
	if _, err := store.Open(ctx, bad.String(), store.Options{QueryTimeout: 5 * time.Second}); err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open(unknown database) = %v, want an error other than ErrUnavailable", err)
	}
}

func TestServerUnavailable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	readOnly := errors.New("session is read-only") // lib/pq's, for target_session_attrs
	hosts := func(errs ...error) error {           // lib/pq's shape for several servers
		for i, err := range errs {
			errs[i] = fmt.Errorf("connecting to 127.0.0.1:%d: %w", 5432+i, err)
		}
		return fmt.Errorf("pq: could not connect to any of the hosts:\n%w", errors.Join(errs...))
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"refused", refused, true},
		{"read-only", readOnly, true},
		{"standby", errors.New("server is in hot standby mode"), true},
		{"starting up", &pq.Error{Code: "57P03"}, true},
		{"too many connections", &pq.Error{Code: "53300"}, true},
		{"password", &pq.Error{Code: "28P01"}, false},
		{"no such database", &pq.Error{Code: "3D000"}, false},
		{"another error", errors.New("pq: unsupported client_encoding"), false},
		{"every server down or read-only", hosts(refused, readOnly, &pq.Error{Code: "57P01"}), true},
		{"one server misconfigured", hosts(refused, &pq.Error{Code: "28P01"}, readOnly), false},
	} {
		if got := store.ServerUnavailable(tc.err); got != tc.want {
			t.Errorf("serverUnavailable(%s: %v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestReadOnlyConnectionLeavesThePool: a pooled connection whose server
// stops taking writes (its primary demoted without closing sessions)
// fails the write that finds out as the database being unavailable, and
// is not used again: the next write goes through a new connection.
func TestReadOnlyConnectionLeavesThePool(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(db *store.DB, u *store.User) error
	}{
		{"a write returning rows", func(db *store.DB, u *store.User) error {
			return db.CreateUser(ctx, &store.User{Username: u.Username + "x", Email: "x" + u.Email, FullName: "X", PasswordHash: hash})
		}},
		{"a write returning none", func(db *store.DB, u *store.User) error {
			return db.SetPasswordHash(ctx, u.ID, hash)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One connection, so that the write after the failure would
			// get the same one if it were kept.
			db, err := store.Open(ctx, storetest.DirectURL(storetest.NewURL(t)), store.Options{MaxConns: 1, QueryTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			u := MustCreateUser(t, db, "demoted")
			if err := db.Exec(ctx, `SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY`); err != nil {
				t.Fatal(err)
			}
			if err := tc.write(db, u); !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("a write on a read-only session = %v, want ErrUnavailable", err)
			}
			if err := tc.write(db, u); err != nil {
				t.Fatalf("the next write = %v, want it on a new connection", err)
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"postgres://authapi@db1,db2,db3:5432/authapi?target_session_attrs=read-write", true},
		{"postgres://authapi@db1,db2,db3/authapi?port=5432,5433,5434&target_session_attrs=read-write", true},
		{"host=db1,db2 port=5432,5433 dbname=authapi target_session_attrs=read-write", true},
		{"postgres://authapi@db1:5432/authapi", true},
		{"postgres://authapi@[::1]:5432/authapi", true},
		{"postgres://authapi@/authapi?host=/run/postgresql", true},
		// libpq's form, which lib/pq reads as host names with colons.
		{"postgres://authapi@db1:5432,db2:5433/authapi", false},
		{"postgres://authapi@db1:5432,db2/authapi", false},
	} {
		if err := store.CheckURL(tc.url); (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q) = %v, want ok=%v", tc.url, err, tc.ok)
		}
	}
}
