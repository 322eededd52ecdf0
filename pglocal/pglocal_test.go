//go:build unix

package pglocal_test

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lib/pq"

	"authapi/internal/syncbuf"
	"authapi/pglocal"
)

const startTimeout = 30 * time.Second

// start starts an ephemeral server on dir and stops it when the test ends.
func start(t *testing.T, dir, database string) *pglocal.Server {
	t.Helper()
	return startConfig(t, pglocal.Config{Dir: dir, Database: database, Ephemeral: true})
}

func startConfig(t *testing.T, cfg pglocal.Config) *pglocal.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	s, err := pglocal.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start(Dir: %s, Database: %q) = %v, want nil error", cfg.Dir, cfg.Database, err)
	}
	t.Cleanup(func() { stopServer(t, s) })
	return s
}

// stopServer stops s; as Stop is idempotent it may already have been stopped.
func stopServer(t *testing.T, s *pglocal.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Errorf("Stop() = %v, want nil", err)
	}
}

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatalf("sql.Open(%q) = %v", dsn, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestDataSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")

	s := start(t, dir, "app")
	db := open(t, s.URL("app"))
	for _, q := range []string{
		"CREATE TABLE notes (body text NOT NULL)",
		"INSERT INTO notes VALUES ('kept across restarts')",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("Exec(%q) = %v", q, err)
		}
	}
	db.Close()
	stopServer(t, s)

	s = start(t, dir, "app") // app exists now: Start must not try to recreate it
	var body string
	if err := open(t, s.URL("app")).QueryRow("SELECT body FROM notes").Scan(&body); err != nil {
		t.Fatalf("after restart, SELECT body FROM notes = %v, want the row", err)
	}
	if body != "kept across restarts" {
		t.Errorf("after restart, body = %q, want %q", body, "kept across restarts")
	}
}

func TestURL(t *testing.T) {
	t.Parallel()
	s := start(t, filepath.Join(t.TempDir(), "data"), "app")

	u := s.URL("app")
	if !strings.HasPrefix(u, "postgres://authapi@/app?host=%2F") {
		t.Errorf("URL(%q) = %q, want postgres://authapi@/app?host=%%2F...", "app", u)
	}
	if _, err := pq.NewConnector(u); err != nil {
		t.Errorf("pq.NewConnector(URL(%q)) = %v, want nil error", "app", err)
	}

	// Names that need escaping in a URL path must still reach the right database.
	const odd = "odd name/with ?#%& chars"
	if _, err := open(t, s.URL("postgres")).Exec("CREATE DATABASE " + pq.QuoteIdentifier(odd)); err != nil {
		t.Fatalf("CREATE DATABASE %q = %v", odd, err)
	}

	for _, database := range []string{"postgres", "app", odd} {
		t.Run(database, func(t *testing.T) {
			var got, user string
			err := open(t, s.URL(database)).QueryRow("SELECT current_database(), current_user").Scan(&got, &user)
			if err != nil {
				t.Fatalf("connecting with URL(%q) = %q: %v", database, s.URL(database), err)
			}
			if got != database || user != "authapi" {
				t.Errorf("through URL(%q): current_database(), current_user = %q, %q; want %q, %q", database, got, user, database, "authapi")
			}
		})
	}
}

// TestUnreadableParent simulates a checkout under /root, which the postgres
// user cannot traverse.
func TestUnreadableParent(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("only meaningful as root, where the server runs as another user")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the server reaches a data directory under an untraversable parent through /proc, on Linux only")
	}
	home, err := os.MkdirTemp("", "pglocal-home-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(home, "checkout", "data")

	s := start(t, dir, "")
	var one int
	if err := open(t, s.URL("postgres")).QueryRow("SELECT 1").Scan(&one); err != nil {
		t.Fatalf("SELECT 1 on a server under a 0700 parent = %v, want nil error", err)
	}
	if fi, err := os.Stat(home); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("parent directory after Start: %v, %v; want mode 0700 unchanged", fi.Mode(), err)
	}
}

func TestSecondStartOnSameDirFails(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	first := start(t, dir, "")

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	second, err := pglocal.Start(ctx, pglocal.Config{Dir: dir, Ephemeral: true})
	if err == nil {
		second.Stop(ctx)
		t.Fatalf("second Start(%s) while the first server runs = nil error, want one", dir)
	}
	t.Logf("second Start error, as users see it: %v", err)
	if !strings.Contains(err.Error(), "postmaster.pid") {
		t.Errorf("second Start(%s) = %v, want PostgreSQL's postmaster.pid complaint", dir, err)
	}

	var one int
	if err := open(t, first.URL("postgres")).QueryRow("SELECT 1").Scan(&one); err != nil {
		t.Errorf("first server after a failed second Start: SELECT 1 = %v, want nil error", err)
	}
}

// TestStartWaitsForStoppingServer restarts on a data directory whose
// previous server is still shutting down, as happens when a program is
// restarted right after it died: Start waits for it instead of failing on
// postmaster.pid. A stopped backend holds the old server in its shutdown
// for as long as the test needs.
func TestStartWaitsForStoppingServer(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	old, err := pglocal.Start(ctx, pglocal.Config{Dir: dir, Ephemeral: true})
	if err != nil {
		t.Fatalf("Start() = %v", err)
	}
	t.Cleanup(func() { old.Stop(context.Background()) })
	conn, err := open(t, old.URL("postgres")).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var backend int
	if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(backend, syscall.SIGSTOP)
	t.Cleanup(func() { syscall.Kill(backend, syscall.SIGCONT) })
	if err := syscall.Kill(pglocal.PID(old), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}

	started := make(chan error, 1)
	go func() {
		s, err := pglocal.Start(ctx, pglocal.Config{Dir: dir, Ephemeral: true})
		if err == nil {
			t.Cleanup(func() { stopServer(t, s) })
		}
		started <- err
	}()
	select {
	case err := <-started:
		t.Fatalf("Start() while the previous server is stopping = %v, want it to wait", err)
	case <-time.After(2 * time.Second):
	}
	syscall.Kill(backend, syscall.SIGCONT)
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("Start() once the previous server stopped = %v, want nil error", err)
		}
	case <-time.After(startTimeout):
		t.Fatalf("Start() still waiting %v after the previous server was let go", startTimeout)
	}
}

func TestStopLeavesNothing(t *testing.T) {
	t.Parallel()
	expired, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name    string
		ctx     context.Context
		wantErr error
	}{
		{"fast shutdown", context.Background(), nil},
		{"expired context forces it down", expired, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
			defer cancel()
			s, err := pglocal.Start(ctx, pglocal.Config{Dir: filepath.Join(t.TempDir(), "data"), Ephemeral: true})
			if err != nil {
				t.Fatalf("Start() = %v, want nil error", err)
			}
			pid := pglocal.PID(s)
			sockDir := socketDir(t, s)
			// An open connection means a backend, which must go too.
			db := open(t, s.URL("postgres"))
			if err := db.Ping(); err != nil {
				t.Fatalf("Ping() = %v", err)
			}

			err = s.Stop(tt.ctx)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Stop() = %v, want %v", err, tt.wantErr)
			}
			select {
			case <-s.Exited():
			default:
				t.Errorf("Exited() still open after Stop returned")
			}
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("after Stop, kill(%d, 0) = %v, want ESRCH (process gone)", pid, err)
			}
			if _, err := os.Stat(sockDir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("after Stop, socket directory %s: Stat = %v, want not exist", sockDir, err)
			}
			if again := s.Stop(context.Background()); again != err {
				t.Errorf("second Stop() = %v, want the first call's result %v", again, err)
			}
		})
	}
}

func TestExitedReportsCrash(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	s, err := pglocal.Start(ctx, pglocal.Config{Dir: filepath.Join(t.TempDir(), "data"), Ephemeral: true})
	if err != nil {
		t.Fatalf("Start() = %v, want nil error", err)
	}
	if err := syscall.Kill(pglocal.PID(s), syscall.SIGKILL); err != nil {
		t.Fatalf("kill postgres: %v", err)
	}
	select {
	case <-s.Exited():
	case <-time.After(10 * time.Second):
		t.Fatalf("Exited() not closed 10s after postgres was killed")
	}
	err = s.Stop(ctx)
	if err == nil {
		t.Fatalf("Stop() after a crash = nil, want an error saying the server had exited")
	}
	t.Logf("Stop error after a crash, as users see it: %v", err)
}

func TestDataDirStates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string) // creates what is at dir before Start
		wantErr bool
	}{
		{"missing, parents too", func(t *testing.T, dir string) {}, false},
		{"empty directory", func(t *testing.T, dir string) { mustMkdir(t, dir) }, false},
		{"foreign files", func(t *testing.T, dir string) {
			mustMkdir(t, dir)
			mustWrite(t, filepath.Join(dir, "notes.txt"), "precious user data")
			mustMkdir(t, filepath.Join(dir, "sub"))
			mustWrite(t, filepath.Join(dir, "sub", "more.txt"), "more")
		}, true},
		{"regular file", func(t *testing.T, dir string) {
			mustMkdir(t, filepath.Dir(dir))
			mustWrite(t, dir, "not a directory")
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "a", "b", "data")
			tt.prepare(t, dir)
			var before string
			if tt.wantErr {
				before = snapshot(t, filepath.Dir(dir))
			}

			ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
			defer cancel()
			s, err := pglocal.Start(ctx, pglocal.Config{Dir: dir, Ephemeral: true})
			if tt.wantErr {
				if err == nil {
					s.Stop(ctx)
					t.Fatalf("Start(%s) = nil error, want one", dir)
				}
				t.Logf("Start error, as users see it: %v", err)
				if after := snapshot(t, filepath.Dir(dir)); after != before {
					t.Errorf("Start(%s) failed but changed the files:\nbefore:\n%s\nafter:\n%s", dir, before, after)
				}
				return
			}
			if err != nil {
				t.Fatalf("Start(%s) = %v, want nil error", dir, err)
			}
			t.Cleanup(func() { stopServer(t, s) })
			if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
				t.Errorf("after Start(%s): %v, want an initialised cluster", dir, err)
			}
			if _, err := os.Stat(dir + ".initdb-tmp"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("after Start(%s): temporary initdb directory: Stat = %v, want not exist", dir, err)
			}
		})
	}
}

func TestLogger(t *testing.T) {
	t.Parallel()
	var buf syncbuf.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := startConfig(t, pglocal.Config{Dir: filepath.Join(t.TempDir(), "data"), Ephemeral: true, Logger: logger})
	stopServer(t, s)

	out := buf.String()
	for _, want := range []string{
		"level=INFO msg=\"pglocal: PostgreSQL ready\"",
		"database system is ready to accept connections",
		"database system is shut down",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log output lacks %q; got:\n%s", want, out)
		}
	}
	for line := range strings.Lines(out) {
		if strings.Contains(line, "ready to accept connections") && !strings.Contains(line, "level=DEBUG") {
			t.Errorf("server log line %q not at Debug level", line)
		}
	}
}

// TestFindBinaries must not run in parallel: it changes PATH. Each case
// lays out fake binaries under a root that stands for / (PATH aside) and
// says where postgres and initdb must be taken from.
func TestFindBinaries(t *testing.T) {
	const (
		debian    = "usr/lib/postgresql"
		brewArm   = "opt/homebrew/opt"
		brewIntel = "usr/local/opt"
		brewBin   = "opt/homebrew/bin"
	)
	both := []string{"postgres", "initdb"}
	tests := []struct {
		name     string
		bins     map[string][]string // directory under root (or "PATH", "pgconfig") -> the binaries in it
		pgConfig string              // what a pg_config on PATH prints ("" for no pg_config)
		want     string              // directory under root; "" wants ErrNoBinaries
	}{
		{"PATH first", map[string][]string{"PATH": both, "pgconfig": both, debian + "/15/bin": both, brewBin: both}, "pgconfig", "PATH"},
		{"PATH only with both", map[string][]string{"PATH": {"postgres"}, debian + "/15/bin": both}, "", debian + "/15/bin"},
		{"pg_config before Debian", map[string][]string{"pgconfig": both, debian + "/16/bin": both}, "pgconfig", "pgconfig"},
		{"pg_config naming a directory without them", map[string][]string{"pgconfig": {"initdb"}, debian + "/16/bin": both}, "pgconfig", debian + "/16/bin"},
		{"pg_config printing nothing useful", map[string][]string{debian + "/16/bin": both}, "not-a-path", debian + "/16/bin"},
		{"newest Debian version with both", map[string][]string{
			debian + "/9.6/bin": both, debian + "/10/bin": both, debian + "/15/bin": both,
			debian + "/16/bin": {"postgres"}, debian + "/latest/bin": both,
		}, "", debian + "/15/bin"},
		{"Debian before Homebrew", map[string][]string{debian + "/13/bin": both, brewArm + "/postgresql@17/bin": both}, "", debian + "/13/bin"},
		{"newest Homebrew formula, Apple silicon before Intel", map[string][]string{
			brewArm + "/postgresql@14/bin": both, brewArm + "/postgresql@17/bin": both,
			brewIntel + "/postgresql@18/bin": both, brewBin: both,
		}, "", brewArm + "/postgresql@17/bin"},
		{"Homebrew on Intel", map[string][]string{brewIntel + "/postgresql@15/bin": both, brewIntel + "/postgresql@16/bin": both, brewBin: both}, "", brewIntel + "/postgresql@16/bin"},
		{"Homebrew bin last", map[string][]string{brewBin: both, brewArm + "/postgresql@17/bin": {"postgres"}}, "", brewBin},
		{"nothing complete anywhere", map[string][]string{"PATH": {"initdb"}, debian + "/15/bin": {"postgres"}, brewBin: {"initdb"}}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for dir, names := range tt.bins {
				fakeBinaries(t, filepath.Join(root, dir), names...)
			}
			path := filepath.Join(root, "PATH")
			mustMkdir(t, path)
			if tt.pgConfig != "" {
				out := tt.pgConfig
				if out == "pgconfig" {
					out = filepath.Join(root, "pgconfig")
				}
				if err := os.WriteFile(filepath.Join(path, "pg_config"), []byte("#!/bin/sh\necho '"+out+"'\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("PATH", path)
			pg, initdb, err := pglocal.FindBinaries(root)
			if tt.want == "" {
				if !errors.Is(err, pglocal.ErrNoBinaries) {
					t.Fatalf("findBinaries = %s %s, %v; want ErrNoBinaries", pg, initdb, err)
				}
				for _, place := range []string{"PATH", "pg_config", debian, brewArm, brewIntel, brewBin} {
					if !strings.Contains(err.Error(), place) {
						t.Errorf("findBinaries = %v, want it to name %s among the places searched", err, place)
					}
				}
				return
			}
			want := filepath.Join(root, tt.want)
			if err != nil || pg != filepath.Join(want, "postgres") || initdb != filepath.Join(want, "initdb") {
				t.Errorf("findBinaries = %s %s, %v; want both in %s", pg, initdb, err, want)
			}
		})
	}
	msg := pglocal.ErrNoBinaries.Error()
	for _, want := range []string{"apt-get install postgresql", "brew install postgresql@", "AUTH_DATABASE_URL"} {
		if !strings.Contains(msg, want) {
			t.Errorf("ErrNoBinaries = %q, want it to mention %s", msg, want)
		}
	}
}

func fakeBinaries(t *testing.T, dir string, names ...string) {
	t.Helper()
	mustMkdir(t, dir)
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// socketDir extracts the socket directory from the server's URL.
func socketDir(t *testing.T, s *pglocal.Server) string {
	t.Helper()
	u, err := url.Parse(s.URL("postgres"))
	if err != nil {
		t.Fatalf("url.Parse(URL()) = %v", err)
	}
	return u.Query().Get("host")
}

// snapshot describes every file under root (names, modes, contents).
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b.WriteString(path + " " + info.Mode().String())
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			b.WriteString(" " + string(data))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot(%s): %v", root, err)
	}
	return b.String()
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
