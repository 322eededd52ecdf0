// Command authapi serves the authentication API: registration, login (JWT)
// and API keys, on PostgreSQL. Without a database URL it runs a private
// PostgreSQL from the machine's binaries in its data folder. Run it with -h
// for the settings.
package main

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"authapi/apikey"
	"authapi/limit"
	"authapi/password"
	"authapi/pglocal"
	"authapi/server"
	"authapi/store"
	"authapi/token"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "authapi:", err)
		os.Exit(1)
	}
}

// run is the whole program; main only calls it, so that tests can too.
// It serves until ctx ends or SIGINT or SIGTERM arrives, then drains
// in-flight requests and returns nil.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	name, args := filepath.Base(args[0]), args[1:]
	migrateOnly := len(args) > 0 && args[0] == "migrate"
	if migrateOnly {
		args = args[1:]
	}
	cfg, err := parseConfig(name, args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	tuneGC(cfg)
	logs := &logBuffer{w: stderr}
	defer logs.Flush() // deferred first, so it runs last
	go logs.flushEvery(ctx)
	log, err := newLogger(cfg, logs)
	if err != nil {
		return err
	}
	// Settle the secrets first: a configuration error should not wait for
	// a database.
	var jwtSecret, pepper []byte
	if !migrateOnly {
		if jwtSecret, pepper, err = secrets(cfg, log); err != nil {
			return err
		}
	}

	dbURL := cfg.DatabaseURL
	var pgExited <-chan struct{}
	if dbURL == "" {
		pg, err := pglocal.Start(ctx, pglocal.Config{Dir: filepath.Join(cfg.DataDir, "postgres"), Database: "authapi", Logger: log})
		if errors.Is(err, pglocal.ErrNoBinaries) {
			return fmt.Errorf("%w\n(or pass -database-url)", err)
		}
		if err != nil {
			return fmt.Errorf("start the embedded PostgreSQL: %w", err)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := pg.Stop(sctx); err != nil {
				log.Warn("stop the embedded PostgreSQL", "error", err)
			}
		}()
		dbURL, pgExited = pg.URL("authapi"), pg.Exited()
	}

	db, err := openStore(ctx, log, dbURL, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if cfg.Migrate || migrateOnly {
		if err := db.Migrate(ctx); err != nil {
			return err
		}
	}
	if migrateOnly {
		log.Info("migrations applied")
		return nil
	}

	srv, err := newServer(cfg, db, log, jwtSecret, pepper)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	httpSrv := newHTTPServer(cfg, srv.Handler(), log)
	if cfg.ConcurrencyPerAddress > 0 {
		proxies := cfg.TrustedProxies
		cl := limit.NewListener(ln, cfg.ConcurrencyPerAddress, cfg.ReadHeaderTimeout, func(a netip.Addr) bool {
			return slices.ContainsFunc(proxies, func(p netip.Prefix) bool { return p.Contains(a) })
		})
		cl.Attach(httpSrv)
		ln = cl
	}
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("metrics listener: %w", err)
		}
		metricsSrv := newHTTPServer(cfg, srv.MetricsHandler(), log)
		go metricsSrv.Serve(mln)
		defer metricsSrv.Close()
		fmt.Fprintf(stdout, "authapi: metrics on http://%s/metrics\n", mln.Addr())
	}
	fmt.Fprintf(stdout, "authapi: listening on http://%s\n", ln.Addr())
	log.Info("listening", "addr", ln.Addr().String(), "embedded_postgres", cfg.DatabaseURL == "")

	// The background work outlives the drain (its last act is to write
	// the keys' last uses), and ends before the database closes. The
	// change listener is stopped with it, but not waited for: closing its
	// connection to a stalled database could hold up the exit.
	bg, cancelBG := context.WithCancel(context.Background())
	bgDone := make(chan struct{})
	go func() { defer close(bgDone); background(bg, srv, db, cfg, log) }()
	defer func() { cancelBG(); <-bgDone }()
	listenURL := cfg.DatabaseListen
	if listenURL == "" {
		listenURL = dbURL
	}
	if changes := srv.ChangeListener(listenURL); changes != nil {
		go changes.Run(bg)
	}

	served := make(chan error, 1)
	go func() { served <- httpSrv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-pgExited:
		httpSrv.Close()
		return errors.New("the embedded PostgreSQL exited unexpectedly")
	case <-ctx.Done():
	}
	log.Info("shutting down: draining in-flight requests", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(sctx); err != nil {
		log.Warn("drain", "error", err)
	}
	return nil
}

// newHTTPServer bounds every phase of a connection, so that slow or
// stalled clients cannot hold it open, and the headers it will read at all.
func newHTTPServer(cfg *config, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		// The server's own limit (a 431 problem) applies below this one;
		// this is the hard stop, answered by net/http in plain text.
		MaxHeaderBytes: 2 * cfg.HeaderLimit,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// tuneGC sets GOGC to 400, and a soft memory limit of 64 MiB plus twice
// what the password hashing pool holds live, unless GOGC or GOMEMLIMIT are
// set: the live heap is small and the allocation rate high
// (docs/design.md).
func tuneGC(cfg *config) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		workers := cfg.hashWorkers()
		debug.SetMemoryLimit(64<<20 + 2*int64(workers+1)*int64(cfg.Argon2Memory)<<10)
	}
}

func newLogger(cfg *config, w *logBuffer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(flushingHandler{slog.NewTextHandler(w, opts), w}), nil
	}
	return slog.New(flushingHandler{slog.NewJSONHandler(w, opts), w}), nil
}

// openStore connects, retrying with backoff while the database is not up
// yet, for at most DBConnectTimeout.
func openStore(ctx context.Context, log *slog.Logger, url string, cfg *config) (*store.DB, error) {
	if cfg.DBConnectTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.DBConnectTimeout)
		defer cancel()
	}
	// A separate LISTEN URL says the database URL may lead to a pooler in
	// transaction mode, where most server connections would lack the
	// prepared reads (they still work, unprepared, after a wasted round
	// trip); the database URL itself carries LISTEN only if it is a session
	// connection.
	prepare := cfg.DBPrepare == "on" || cfg.DBPrepare == "auto" && cfg.DatabaseListen == ""
	opts := store.Options{MaxConns: cfg.DBMaxConns, QueryTimeout: cfg.DBTimeout, Prepare: prepare}
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		db, err := store.Open(ctx, url, opts)
		if err == nil {
			return db, nil
		}
		if !errors.Is(err, store.ErrUnavailable) {
			return nil, fmt.Errorf("connect to the database: %w", err)
		}
		log.Warn("database not reachable yet; retrying", "error", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the database was not reachable within %v: %w", cfg.DBConnectTimeout, err)
		case <-time.After(wait):
		}
	}
}

func newServer(cfg *config, db *store.DB, log *slog.Logger, secret, pepper []byte) (*server.Server, error) {
	previous := make([][]byte, len(cfg.JWTPrevious))
	for i, p := range cfg.JWTPrevious {
		previous[i] = []byte(p)
	}
	tokens, err := token.New(token.Config{
		Secret: secret, Previous: previous, Issuer: cfg.JWTIssuer, Audience: cfg.JWTIssuer,
		TTL: cfg.TokenTTL, Leeway: 5 * time.Second, CacheSize: cfg.CacheSize,
	})
	if err != nil {
		return nil, err
	}
	hasher, err := password.NewHasher(
		password.Params{Memory: uint32(cfg.Argon2Memory), Time: uint32(cfg.Argon2Time), Threads: uint8(cfg.Argon2Threads), SaltLen: 16, KeyLen: 32},
		password.Pool{Workers: cfg.HashWorkers, Queue: cfg.HashQueue, MaxWait: cfg.HashWait})
	if err != nil {
		return nil, err
	}
	return server.New(server.Config{
		Store:                      db,
		Hasher:                     hasher,
		Tokens:                     tokens,
		Keys:                       apikey.NewDigester(pepper),
		Logger:                     log,
		BodyLimit:                  cfg.BodyLimit,
		LoginMaxFailures:           cfg.LoginMaxFailures,
		LoginWindow:                cfg.LoginWindow,
		MaxActiveKeys:              cfg.MaxActiveKeys,
		KeyMaxLifetime:             cfg.KeyMaxLifetime,
		KeyDefaultLifetime:         cfg.KeyDefaultLife,
		TrustedProxies:             cfg.TrustedProxies,
		LoginMaxFailuresPerAddress: cfg.LoginMaxFailuresPerAddress,
		RegisterMaxPerAddress:      cfg.RegisterMaxPerAddress,
		HeaderLimit:                cfg.HeaderLimit,
		CORSOrigins:                cfg.CORSOrigins,
		QuietReads:                 cfg.AccessLog == "events",
		CredentialCacheSize:        cfg.CacheSize,
		CredentialCacheTTL:         cfg.CacheTTL,
		RateLimitPerAddress:        cfg.RateLimitPerAddress,
		LoginMaxPerAddress:         cfg.LoginMaxPerAddress,
		AuthFailuresPerAddress:     cfg.AuthFailuresPerAddress,
		KeyWritesPerUser:           cfg.KeyWritesPerUser,
		ThrottleDelay:              cfg.ThrottleDelay,
		PasswordChecksPerAddress:   cfg.PasswordChecksPerAddress,
		MetricsElsewhere:           cfg.MetricsAddr != "",
		RevokedKeyRetention:        cfg.RevokedKeyRetention,
		ReauthMaxAge:               cfg.ReauthMaxAge,
		EventRetention:             cfg.EventRetention,
	})
}

// secrets returns the JWT secret and the API key pepper. With the embedded
// default, missing ones are generated once and kept in the data folder;
// with a database URL the JWT secret is required, since instances must
// share it.
func secrets(cfg *config, log *slog.Logger) (jwtSecret, pepper []byte, err error) {
	embedded := cfg.DatabaseURL == ""
	switch {
	case cfg.JWTSecret != "":
		jwtSecret = []byte(cfg.JWTSecret)
	case embedded:
		if jwtSecret, err = keptSecret(filepath.Join(cfg.DataDir, "jwt-secret")); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, errors.New("AUTH_JWT_SECRET (or -jwt-secret) is required with AUTH_DATABASE_URL: at least 32 bytes, e.g. from `openssl rand -hex 32`")
	}
	if len(jwtSecret) < token.MinSecretLen {
		return nil, nil, fmt.Errorf("AUTH_JWT_SECRET must be at least %d bytes, got %d: e.g. from `openssl rand -hex 32`", token.MinSecretLen, len(jwtSecret))
	}
	switch {
	case cfg.APIKeyPepper != "":
		pepper = []byte(cfg.APIKeyPepper)
	case embedded:
		if pepper, err = keptSecret(filepath.Join(cfg.DataDir, "api-key-pepper")); err != nil {
			return nil, nil, err
		}
	default:
		log.Warn("AUTH_API_KEY_PEPPER is not set: deriving it from the JWT secret, so rotating that secret would invalidate every API key; set AUTH_API_KEY_PEPPER")
		if pepper, err = hkdf.Key(sha256.New, jwtSecret, nil, "authapi api-key pepper", 32); err != nil {
			return nil, nil, err
		}
	}
	if len(pepper) < 32 {
		return nil, nil, fmt.Errorf("AUTH_API_KEY_PEPPER must be at least 32 bytes, got %d", len(pepper))
	}
	return jwtSecret, pepper, nil
}

// keptSecret reads the secret in path, or creates it (32 random bytes, in
// hex, readable by the owner only) if there is none yet.
func keptSecret(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil {
		return []byte(strings.TrimSpace(string(b))), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	secret := hex.EncodeToString(b[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) { // another process won the race
		return keptSecret(path)
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteString(secret + "\n"); err != nil {
		f.Close()
		return nil, err
	}
	return []byte(secret), f.Close()
}
