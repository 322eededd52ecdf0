package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"authapi/internal/syncbuf"
	"authapi/migrations"
	"authapi/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

const secret = "0123456789abcdef0123456789abcdef"

// fastEnv keeps argon2id cheap in tests.
func fastEnv(extra map[string]string) map[string]string {
	env := map[string]string{"AUTH_ADDR": "127.0.0.1:0", "AUTH_ARGON2_MEMORY_KIB": "64", "AUTH_ARGON2_TIME": "1", "AUTH_LOG_LEVEL": "warn"}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// started is a run in progress.
type started struct {
	URL     string
	Metrics string // the metrics listener's /metrics, with AUTH_METRICS_ADDR
	cancel  context.CancelFunc
	done    chan error
	stderr  *syncbuf.Buffer
}

// MustRun calls run with a fake environment and waits until it listens.
func MustRun(t *testing.T, env map[string]string, args ...string) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &started{cancel: cancel, done: make(chan error, 1), stderr: &syncbuf.Buffer{}}
	go func() {
		s.done <- run(ctx, append([]string{"authapi"}, args...), func(k string) string { return env[k] }, pw, s.stderr)
		pw.Close()
	}()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, pr)
	}()
	for s.URL == "" {
		select {
		case line := <-lines:
			if m, ok := strings.CutPrefix(line, "authapi: metrics on "); ok {
				s.Metrics = m
			} else {
				s.URL = strings.TrimPrefix(line, "authapi: listening on ")
			}
		case err := <-s.done:
			t.Fatalf("run returned before listening: %v\n%s", err, s.stderr)
		case <-time.After(60 * time.Second):
			t.Fatalf("run did not listen within a minute\n%s", s.stderr)
		}
	}
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// Stop cancels the run and checks that it returns nil promptly.
func (s *started) Stop(t *testing.T) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("run after cancel = %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("run did not return within 30s of cancel")
	}
}

func post(t *testing.T, url, body, bearer string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// lastUsed returns the last_used_at of the caller's only key.
func lastUsed(t *testing.T, url, token string) any {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/v1/auth/api-keys", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var keys []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&keys); err != nil || len(keys) != 1 {
		t.Fatalf("listing = %v %v", keys, err)
	}
	return keys[0]["last_used_at"]
}

func get(t *testing.T, url, header, value string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if header != "" {
		req.Header.Set(header, value)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestRunWithDatabaseURL(t *testing.T) {
	url := storetest.NewURL(t)
	s := MustRun(t, fastEnv(map[string]string{"AUTH_DATABASE_URL": url, "AUTH_JWT_SECRET": secret,
		// LISTEN needs a session connection, which a transaction pooler
		// is not (make test-pgbouncer), as in a deployment behind one.
		"AUTH_DATABASE_LISTEN_URL": storetest.DirectURL(url)}))
	for _, path := range []string{"/healthz", "/readyz"} {
		if code := get(t, s.URL+path, "", ""); code != 200 {
			t.Fatalf("GET %s = %d", path, code)
		}
	}
	code, _ := post(t, s.URL+"/v1/auth/register", `{"username":"runner","email":"runner@example.com","password":"secureP@ss123","full_name":"R"}`, "")
	if code != 200 {
		t.Fatalf("register = %d", code)
	}
	code, tok := post(t, s.URL+"/v1/auth/login", `{"username":"runner","password":"secureP@ss123"}`, "")
	if code != 200 {
		t.Fatalf("login = %d", code)
	}
	code, key := post(t, s.URL+"/v1/auth/api-keys", `{"name":"k"}`, tok["access_token"].(string))
	if code != 200 {
		t.Fatalf("create key = %d", code)
	}
	if code := get(t, s.URL+"/v1/me", "X-API-Key", key["raw_key"].(string)); code != 200 {
		t.Fatalf("GET /v1/me = %d", code)
	}
	// The use shows in the listing within five seconds, written in the
	// background.
	used := time.Now()
	for {
		if lastUsed(t, s.URL, tok["access_token"].(string)) != nil {
			break
		}
		if time.Since(used) > 5*time.Second {
			t.Fatal("last_used_at still null 5s after a use")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if strings.Contains(s.stderr.String(), secret) {
		t.Fatal("the log contains the JWT secret")
	}
}

// TestRunEmbeddedDefault starts the private PostgreSQL in the data folder,
// twice: the data and the generated secrets survive the restart.
// TestMetricsListener: with AUTH_METRICS_ADDR, /metrics is served there
// and not on the API's port.
func TestMetricsListener(t *testing.T) {
	url := storetest.NewURL(t)
	s := MustRun(t, fastEnv(map[string]string{"AUTH_DATABASE_URL": url, "AUTH_JWT_SECRET": secret,
		"AUTH_DATABASE_LISTEN_URL": storetest.DirectURL(url), "AUTH_METRICS_ADDR": "127.0.0.1:0"}))
	if s.Metrics == "" {
		t.Fatal("run did not say where the metrics are")
	}
	if code := get(t, s.Metrics, "", ""); code != 200 {
		t.Fatalf("GET %s = %d, want 200", s.Metrics, code)
	}
	if code := get(t, s.URL+"/metrics", "", ""); code != 404 {
		t.Fatalf("GET /metrics on the API's port = %d, want 404", code)
	}
	if code := get(t, s.URL+"/healthz", "", ""); code != 200 {
		t.Fatalf("GET /healthz = %d", code)
	}
}

func TestRunEmbeddedDefault(t *testing.T) {
	dir := t.TempDir()
	env := fastEnv(map[string]string{"AUTH_DATA_DIR": dir})
	s := MustRun(t, env)
	post(t, s.URL+"/v1/auth/register", `{"username":"keeper","email":"keeper@example.com","password":"secureP@ss123","full_name":"K"}`, "")
	_, tok := post(t, s.URL+"/v1/auth/login", `{"username":"keeper","password":"secureP@ss123"}`, "")
	_, key := post(t, s.URL+"/v1/auth/api-keys", `{"name":"k"}`, tok["access_token"].(string))
	s.Stop(t)

	for _, name := range []string{"jwt-secret", "api-key-pepper"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() < 32 {
			t.Fatalf("%s: %v %v, want a generated secret readable by its owner only", name, fi, err)
		}
	}

	s = MustRun(t, env)
	if code := get(t, s.URL+"/v1/me", "X-API-Key", key["raw_key"].(string)); code != 200 {
		t.Fatalf("the API key after a restart = %d, want 200 (data and pepper kept)", code)
	}
	if code := get(t, s.URL+"/v1/auth/api-keys", "Authorization", "Bearer "+tok["access_token"].(string)); code != 200 {
		t.Fatalf("the JWT after a restart = %d, want 200 (secret kept)", code)
	}
}

func TestRunRefusesBadConfiguration(t *testing.T) {
	url := "postgres://nobody@/nowhere?host=/nonexistent&sslmode=disable"
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"database URL without a JWT secret", map[string]string{"AUTH_DATABASE_URL": url}, nil, "AUTH_JWT_SECRET"},
		{"short JWT secret", map[string]string{"AUTH_DATABASE_URL": url, "AUTH_JWT_SECRET": "short"}, nil, "at least 32 bytes"},
		{"short pepper", map[string]string{"AUTH_DATABASE_URL": url, "AUTH_JWT_SECRET": secret, "AUTH_API_KEY_PEPPER": "short"}, nil, "AUTH_API_KEY_PEPPER"},
		{"bad duration", map[string]string{"AUTH_TOKEN_TTL": "soon"}, nil, "AUTH_TOKEN_TTL"},
		{"bad number", map[string]string{"AUTH_LOGIN_MAX_FAILURES": "ten"}, nil, "AUTH_LOGIN_MAX_FAILURES"},
		{"negative limit", map[string]string{"AUTH_LOGIN_MAX_FAILURES": "-1"}, nil, "must not be negative"},
		{"bad CIDR", map[string]string{"AUTH_TRUSTED_PROXIES": "10.0.0.0/99"}, nil, "AUTH_TRUSTED_PROXIES"},
		{"bad log format", map[string]string{"AUTH_LOG_FORMAT": "xml"}, nil, "log format"},
		{"negative per-address limit", map[string]string{"AUTH_LOGIN_MAX_FAILURES_PER_ADDRESS": "-1"}, nil, "must not be negative"},
		{"negative registration limit", map[string]string{"AUTH_REGISTER_MAX_PER_ADDRESS": "-5"}, nil, "must not be negative"},
		{"no login window", map[string]string{"AUTH_LOGIN_MAX_FAILURES": "0", "AUTH_LOGIN_WINDOW": "0s"}, nil, "login window"},
		{"tiny header limit", map[string]string{"AUTH_MAX_HEADER_BYTES": "100"}, nil, "header limit"},
		{"zero timeout", map[string]string{"AUTH_READ_HEADER_TIMEOUT": "0s"}, nil, "timeouts must be positive"},
		{"CORS origin with a path", map[string]string{"AUTH_CORS_ORIGINS": "https://app.example.com/login"}, nil, "AUTH_CORS_ORIGINS"},
		{"CORS origin without a scheme", map[string]string{"AUTH_CORS_ORIGINS": "app.example.com"}, nil, "AUTH_CORS_ORIGINS"},
		{"CORS wildcard pattern", map[string]string{"AUTH_CORS_ORIGINS": "https://*.example.com"}, nil, "AUTH_CORS_ORIGINS"},
		{"CORS * with others", map[string]string{"AUTH_CORS_ORIGINS": "*,https://app.example.com"}, nil, "cannot be combined"},
		{"a port per host in the database URL", map[string]string{"AUTH_DATABASE_URL": "postgres://a@db1:5432,db2:5433/authapi", "AUTH_JWT_SECRET": secret}, nil, "AUTH_DATABASE_URL: the host \"db1:5432\" names a port"},
		{"a port per host in the listen URL", map[string]string{"AUTH_DATABASE_URL": url, "AUTH_JWT_SECRET": secret, "AUTH_DATABASE_LISTEN_URL": "postgres://a@db1,db2:5433,db3:5434/authapi"}, nil, "AUTH_DATABASE_LISTEN_URL: the host \"db2:5433\""},
		{"unknown flag", nil, []string{"-nope"}, "not defined"},
		{"stray argument", nil, []string{"serve"}, "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), append([]string{"authapi"}, tc.args...), func(k string) string { return tc.env[k] }, io.Discard, &stderr)
			if err == nil || !strings.Contains(err.Error()+stderr.String(), tc.want) {
				t.Fatalf("run = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"authapi", "-h"}, func(string) string { return "" }, io.Discard, &out); err != nil {
		t.Fatalf("run -h = %v", err)
	}
	for _, v := range []string{"AUTH_ADDR", "AUTH_DATABASE_URL", "AUTH_JWT_SECRET", "AUTH_DATA_DIR", "AUTH_TOKEN_TTL", "AUTH_LOGIN_MAX_FAILURES", "AUTH_LOGIN_WINDOW", `default "127.0.0.1:8080"`, "default 15m0s",
		"AUTH_LOGIN_MAX_FAILURES_PER_ADDRESS", "AUTH_REGISTER_MAX_PER_ADDRESS", "AUTH_CORS_ORIGINS", "AUTH_MAX_HEADER_BYTES",
		"AUTH_READ_HEADER_TIMEOUT", "AUTH_READ_TIMEOUT", "AUTH_WRITE_TIMEOUT", "AUTH_IDLE_TIMEOUT"} {
		if !strings.Contains(out.String(), v) {
			t.Errorf("-h does not mention %s", v)
		}
	}
}

func TestFlagsBeatEnvironment(t *testing.T) {
	env := map[string]string{"AUTH_TOKEN_TTL": "2h", "AUTH_ADDR": "127.0.0.1:1", "AUTH_JWT_PREVIOUS_SECRETS": "a,b"}
	c, err := parseConfig("authapi", []string{"-token-ttl", "5m"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.TokenTTL != 5*time.Minute || c.Addr != "127.0.0.1:1" || len(c.JWTPrevious) != 2 {
		t.Fatalf("parseConfig = TTL %v, addr %q, previous %v; want the flag's TTL and the environment's address", c.TokenTTL, c.Addr, c.JWTPrevious)
	}
	d, _ := parseConfig("authapi", nil, func(string) string { return "" }, io.Discard)
	if d.Addr != "127.0.0.1:8080" || d.DataDir != "./var" || d.TokenTTL != time.Hour || d.LoginMaxFailures != 10 || d.LoginWindow != 15*time.Minute {
		t.Fatalf("defaults = %+v", d)
	}
	// The hardening defaults of the contract and the README.
	if d.LoginMaxFailuresPerAddress != 100 || d.RegisterMaxPerAddress != 50 || len(d.CORSOrigins) != 0 || d.HeaderLimit != 8192 ||
		d.ReadHeaderTimeout != 5*time.Second || d.ReadTimeout != 30*time.Second || d.WriteTimeout != 30*time.Second || d.IdleTimeout != 2*time.Minute {
		t.Fatalf("hardening defaults = %+v", d)
	}
	h := newHTTPServer(d, http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if h.ReadHeaderTimeout != d.ReadHeaderTimeout || h.ReadTimeout != d.ReadTimeout || h.WriteTimeout != d.WriteTimeout || h.IdleTimeout != d.IdleTimeout || h.MaxHeaderBytes != 2*d.HeaderLimit {
		t.Fatalf("newHTTPServer = %+v, want the configured timeouts and twice the header limit", h)
	}
}

// TestMigrateOnly starts from an empty database: with AUTH_MIGRATE=false
// the server serves without touching the schema; `authapi migrate` applies
// every migration and exits without serving; then the server (still with
// AUTH_MIGRATE=false) works.
func TestMigrateOnly(t *testing.T) {
	url := storetest.NewEmptyURL(t)
	env := fastEnv(map[string]string{"AUTH_DATABASE_URL": url, "AUTH_JWT_SECRET": secret, "AUTH_MIGRATE": "false", "AUTH_LOG_LEVEL": "info",
		"AUTH_DATABASE_LISTEN_URL": storetest.DirectURL(url)})
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	version := func() (v int64) {
		t.Helper()
		var exists bool
		if err := db.QueryRow(`SELECT to_regclass('goose_db_version') IS NOT NULL AND to_regclass('users') IS NOT NULL`).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists {
			if err := db.QueryRow(`SELECT max(version_id) FROM goose_db_version`).Scan(&v); err != nil {
				t.Fatal(err)
			}
		}
		return v
	}

	s := MustRun(t, env)
	if code := get(t, s.URL+"/healthz", "", ""); code != 200 {
		t.Fatalf("GET /healthz with AUTH_MIGRATE=false = %d, want 200", code)
	}
	s.Stop(t)
	if v := version(); v != 0 {
		t.Fatalf("after a run with AUTH_MIGRATE=false the schema is at version %d, want no schema", v)
	}

	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"authapi", "migrate"}, func(k string) string { return env[k] }, &stdout, &stderr)
	if err != nil || !strings.Contains(stderr.String(), "migrations applied") {
		t.Fatalf("run migrate = %v\n%s", err, stderr.String())
	}
	if strings.Contains(stdout.String(), "listening") {
		t.Fatalf("run migrate served: %s", stdout.String())
	}
	if got, want := version(), latestMigration(t); got != want {
		t.Fatalf("after migrate the schema is at version %d, want %d", got, want)
	}

	s = MustRun(t, env)
	code, _ := post(t, s.URL+"/v1/auth/register", `{"username":"migrated","email":"migrated@example.com","password":"secureP@ss123","full_name":"M"}`, "")
	if code != 200 {
		t.Fatalf("register after migrate, with AUTH_MIGRATE=false = %d, want 200", code)
	}
}

// latestMigration is the highest version among the embedded migrations.
func latestMigration(t *testing.T) int64 {
	t.Helper()
	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	var latest int64
	for _, f := range files {
		prefix, _, _ := strings.Cut(f, "_")
		v, err := strconv.ParseInt(prefix, 10, 64)
		if err != nil {
			t.Fatalf("migration %s: %v", f, err)
		}
		latest = max(latest, v)
	}
	return latest
}
