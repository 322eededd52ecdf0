// Package storetest gives tests a real, migrated PostgreSQL database each.
//
// A package's TestMain calls Main. The server is the one named by
// AUTH_TEST_DATABASE_URL (`make test` starts one throwaway server per run and
// sets it); without it, Main starts a private one with pglocal, the code
// behind the embedded default. The migrations run once, into a template
// database; NewDB then clones the template per test, which takes
// milliseconds. Without PostgreSQL the tests skip, unless CI=true, where
// they fail.
package storetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"authapi/migrations"
	"authapi/pglocal"
	"authapi/store"
)

// EnvURL names the variable holding an admin URL of a test server.
const EnvURL = "AUTH_TEST_DATABASE_URL"

// EnvPoolerURL names the variable holding the URL of a connection pooler
// (PgBouncer in transaction pooling mode, with a wildcard database entry)
// in front of the EnvURL server; `make test-pgbouncer` sets it. The
// databases of NewURL and NewDB are then reached through the pooler, as
// authapi reaches its database when deployed behind PgBouncer, while the
// template, CREATE DATABASE and DROP DATABASE stay on the direct URL.
const EnvPoolerURL = "AUTH_TEST_POOLER_URL"

var (
	poolerURL string // "" without a pooler
	adminURL  string // "" when no server could be had
	setupErr  error  // why not
	template  string // name of the migrated template database
)

// Main sets up the server and the template, runs the tests, tears down what
// it started, and exits.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adminURL, poolerURL = os.Getenv(EnvURL), os.Getenv(EnvPoolerURL)
	if adminURL == "" {
		dir, err := os.MkdirTemp("", "authapi-storetest-")
		if err != nil {
			setupErr = err
			return m.Run()
		}
		defer os.RemoveAll(dir)
		srv, err := pglocal.Start(ctx, pglocal.Config{Dir: dir + "/pg", Ephemeral: true, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			setupErr = err
			return m.Run()
		}
		defer srv.Stop(context.Background())
		adminURL = srv.URL("postgres")
	}
	if template, setupErr = ensureTemplate(ctx, adminURL); setupErr == nil && poolerURL != "" {
		setupErr = ping(ctx, poolerURL)
	}
	if setupErr != nil {
		adminURL = ""
	}
	return m.Run()
}

// ensureTemplate creates the migrated template database once per set of
// migrations; concurrent test binaries wait on an advisory lock.
func ensureTemplate(ctx context.Context, admin string) (string, error) {
	name, err := templateName()
	if err != nil {
		return "", err
	}
	db, err := sql.Open("postgres", admin)
	if err != nil {
		return "", err
	}
	defer db.Close()
	conn, err := db.Conn(ctx) // advisory locks belong to one session
	if err != nil {
		return "", fmt.Errorf("storetest: connect to %s: %w", redact(admin), err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(7002)`); err != nil {
		return "", err
	}
	defer conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock(7002)`)

	var exists bool
	if err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	// Migrate under a temporary name and rename when done, so that a
	// half-migrated template is never used.
	building := name + "_building"
	if _, err := conn.ExecContext(ctx, `DROP DATABASE IF EXISTS `+pq.QuoteIdentifier(building)); err != nil {
		return "", err
	}
	if _, err := conn.ExecContext(ctx, `CREATE DATABASE `+pq.QuoteIdentifier(building)); err != nil {
		return "", err
	}
	s, err := store.Open(ctx, withDatabase(admin, building), store.Options{MaxConns: 2})
	if err != nil {
		return "", err
	}
	err = s.Migrate(ctx)
	s.Close()
	if err != nil {
		return "", err
	}
	if _, err := conn.ExecContext(ctx, `ALTER DATABASE `+pq.QuoteIdentifier(building)+` RENAME TO `+pq.QuoteIdentifier(name)); err != nil {
		return "", err
	}
	return name, nil
}

// ping checks that u answers.
func ping(ctx context.Context, u string) error {
	db, err := sql.Open("postgres", u)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("storetest: %s %s: %w", EnvPoolerURL, redact(u), err)
	}
	return nil
}

// templateName is derived from the migrations' contents, so that changing
// them builds a new template.
func templateName() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		fmt.Fprintf(h, "%s\x00%s\x00", path, b)
		return err
	})
	return "authapi_template_" + hex.EncodeToString(h.Sum(nil))[:12], err
}

// NewURL creates a fresh migrated database for this test, dropped when the
// test passes (kept and logged when it fails), and returns its URL: through
// the pooler when there is one.
func NewURL(tb testing.TB) string {
	tb.Helper()
	return newDatabase(tb, template)
}

// NewEmptyURL is NewURL for a database without any migration applied.
func NewEmptyURL(tb testing.TB) string {
	tb.Helper()
	return newDatabase(tb, "template0")
}

// DirectURL returns the URL of the same database as u (from NewURL or
// NewEmptyURL) that bypasses the pooler, for what a transaction pooler
// cannot carry, such as LISTEN. Without a pooler it returns u.
func DirectURL(u string) string {
	if poolerURL == "" {
		return u
	}
	parsed, err := url.Parse(u)
	if err != nil {
		panic(fmt.Errorf("storetest: DirectURL(%s): %w", redact(u), err))
	}
	return withDatabase(adminURL, strings.TrimPrefix(parsed.Path, "/"))
}

func newDatabase(tb testing.TB, from string) string {
	tb.Helper()
	if adminURL == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("storetest: no PostgreSQL under CI: %v", setupErr)
		}
		tb.Skipf("storetest: no PostgreSQL (%v); set %s or install Debian's postgresql package", setupErr, EnvURL)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "authapi_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := sql.Open("postgres", adminURL)
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE `+pq.QuoteIdentifier(name)+` TEMPLATE `+pq.QuoteIdentifier(from)); err != nil {
		tb.Fatalf("storetest: create database: %v", err)
	}
	u := withDatabase(adminURL, name)
	if poolerURL != "" {
		u = withDatabase(poolerURL, name)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("storetest: kept database %s for inspection", redact(u))
			return
		}
		admin, err := sql.Open("postgres", adminURL)
		if err != nil {
			return
		}
		defer admin.Close()
		admin.Exec(`DROP DATABASE IF EXISTS ` + pq.QuoteIdentifier(name) + ` WITH (FORCE)`)
	})
	return u
}

// NewDB is NewURL, opened; the pool is closed at the end of the test.
func NewDB(tb testing.TB) *store.DB {
	tb.Helper()
	db, err := store.Open(context.Background(), NewURL(tb), store.Options{MaxConns: 10, QueryTimeout: 10 * time.Second})
	if err != nil {
		tb.Fatalf("storetest: open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// withDatabase returns admin with its database replaced by name. admin must
// be a URL (postgres://...), not a key=value string.
func withDatabase(admin, name string) string {
	u, err := url.Parse(admin)
	if err != nil || u.Scheme == "" {
		panic(errors.New("storetest: " + EnvURL + " must be a postgres:// URL"))
	}
	u.Path = "/" + name
	return u.String()
}

// redact hides a password in a URL for logs.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparseable URL)"
}
