// Package pglocal runs a private PostgreSQL server from the machine's PostgreSQL binaries.
//
// The server is reachable only through a unix socket in a fresh private
// directory, trusts every connection that reaches that socket, and (on Linux)
// shuts down when the process that started it dies. It backs authapi's
// built-in default database and the test harness's throwaway servers; it is
// not meant to replace a managed production database. It runs on Linux, macOS
// and the other unix systems; elsewhere Start says to use a server of one's own.
package pglocal

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lib/pq"
)

// Config describes the server to start.
type Config struct {
	// Dir is the cluster's data directory. It is created and initialised (initdb) on first use and reused afterwards, so data survives restarts.
	Dir string
	// Database is created if it does not exist yet ("" creates none).
	Database string
	// Ephemeral trades durability for speed, for throwaway test servers: initdb --no-sync, fsync=off, synchronous_commit=off, full_page_writes=off.
	Ephemeral bool
	// Logger receives the server's own log lines at Debug level, and pglocal's progress at Info. Nil discards.
	Logger *slog.Logger
	// SocketDir, if set, is an existing directory for the server's socket,
	// kept across restarts so that a URL stays valid (fault tests stop and
	// restart a server under a running client). Empty makes a private
	// temporary one, removed by Stop.
	SocketDir string
}

// ErrNoBinaries reports that the PostgreSQL server binaries (postgres and
// initdb) were found in none of the places findBinaries searches.
var ErrNoBinaries = errors.New("pglocal: PostgreSQL server binaries (postgres, initdb) not found: " +
	"install PostgreSQL's server (Debian, Ubuntu: apt-get install postgresql; macOS: brew install postgresql@17), " +
	"or set AUTH_DATABASE_URL to use an existing server")

// binDirs are the places findBinaries searches after PATH and pg_config, in
// order: glob patterns of bin directories. Where a pattern matches several,
// the newest major version (what its * matched) is taken.
var binDirs = []string{
	"/usr/lib/postgresql/*/bin",          // Debian, Ubuntu: one per major version, not on PATH
	"/opt/homebrew/opt/postgresql@*/bin", // Homebrew, Apple silicon: versioned formulae are keg-only (not linked onto PATH)
	"/usr/local/opt/postgresql@*/bin",    // Homebrew, Intel
	"/opt/homebrew/bin",                  // Homebrew's linked binaries, missing from PATH outside a login shell
}

const (
	// superuser is the role initdb creates; every connection uses it.
	superuser = "authapi"
	// port only names the socket file (.s.PGSQL.5432): nothing listens on TCP.
	port = 5432

	pollInterval = 50 * time.Millisecond
	// pidFileStatusLine is the 0-based line of postmaster.pid holding the
	// server's status (PostgreSQL 10 and later).
	pidFileStatusLine = 7
	// stoppingGrace is how long a live earlier server may take to show
	// that it is stopping; previousServerWait bounds the wait for it to
	// finish.
	stoppingGrace      = time.Second
	previousServerWait = 30 * time.Second
	// quitGrace is how long an immediate (SIGQUIT) shutdown may take before
	// SIGKILL, once the caller's deadline has already passed.
	quitGrace = 3 * time.Second
	// logDrainWait bounds how long Stop and error reports wait for the last
	// log lines; a lingering backend could hold the pipe open.
	logDrainWait = 2 * time.Second
	keptLogLines = 50
	errLogLines  = 20
)

// Server is a running PostgreSQL server started by Start.
type Server struct {
	dir     string
	sockDir string
	ownSock bool // sockDir was made by us, and Stop removes it
	cmd     *exec.Cmd
	logger  *slog.Logger
	logs    *logTail

	exited  chan struct{} // closed once cmd.Wait has returned
	waitErr error         // cmd.Wait's result; read only after exited is closed

	stopMu  sync.Mutex
	stopped bool
	stopErr error
}

// Start initialises cfg.Dir if needed, starts a server on it, waits until it
// accepts connections and creates cfg.Database. On error nothing is left
// running. ctx bounds the start-up only, not the server's lifetime: end it
// with Stop.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Dir == "" {
		return nil, errors.New("pglocal: Config.Dir is empty")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("pglocal: data directory: %w", err)
	}
	if errPlatform != nil {
		return nil, errPlatform
	}
	bins, err := findBinaries(ctx, binDirs)
	if err != nil {
		return nil, err
	}
	acct, err := serverAccount()
	if err != nil {
		return nil, err
	}
	if err := prepareDataDir(ctx, dir, bins, acct, cfg.Ephemeral, logger); err != nil {
		return nil, err
	}
	awaitPreviousServer(ctx, dir, logger)

	began := time.Now()
	s, err := launch(dir, cfg.SocketDir, bins.postgres, acct, cfg.Ephemeral, logger)
	if err != nil {
		return nil, err
	}
	if err := s.initialise(ctx, cfg.Database); err != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Stop(stopCtx) // the start-up error is the one worth reporting
		return nil, err
	}
	logger.Info("pglocal: PostgreSQL ready", "dir", dir, "socket_dir", s.sockDir,
		"user", acct.String(), "took", time.Since(began).Round(time.Millisecond))
	return s, nil
}

// URL returns a lib/pq connection URL for database on this server, through its unix socket, e.g. "postgres://authapi@/DBNAME?host=%2Ftmp%2Fauthapi-pg-123&sslmode=disable".
//
// The socket directory goes in the host query parameter because Go's URL
// parser rejects an escaped path in the host part.
func (s *Server) URL(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(superuser),
		Path:     "/" + database,
		RawQuery: url.Values{"host": {s.sockDir}, "sslmode": {"disable"}}.Encode(),
	}
	return u.String()
}

// Exited is closed when the postgres process exits, for whatever reason (lets the caller notice a crash).
func (s *Server) Exited() <-chan struct{} {
	return s.exited
}

// Stop shuts the server down cleanly (SIGINT = PostgreSQL "fast" shutdown), waits for it to exit, escalates to SIGQUIT then SIGKILL when ctx expires, and removes the socket directory. Safe to call twice.
//
// It reports an error if the server had already exited on its own, or if it
// had to be forced down. Later calls return the first call's result.
func (s *Server) Stop(ctx context.Context) error {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if !s.stopped {
		s.stopErr = s.stop(ctx)
		s.stopped = true
	}
	return s.stopErr
}

func (s *Server) stop(ctx context.Context) error {
	err := s.shutdown(ctx)
	// Wait for the final log lines, so that nothing reaches the Logger after
	// Stop returns (a test's logger must not be used after the test ends).
	s.logs.waitDone(ctx)
	if !s.ownSock {
		return err
	}
	if rmErr := os.RemoveAll(s.sockDir); rmErr != nil && err == nil {
		err = fmt.Errorf("pglocal: stop: remove socket directory: %w", rmErr)
	}
	return err
}

// shutdown makes the postgres process exit and waits until it has been reaped.
func (s *Server) shutdown(ctx context.Context) error {
	select {
	case <-s.exited:
		return fmt.Errorf("pglocal: server for %s had already exited (%v)%s", s.dir, s.waitErr, s.logReport())
	default:
	}
	s.logger.Info("pglocal: stopping PostgreSQL", "dir", s.dir)
	// SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions,
	// disconnect clients, write a checkpoint, exit. An error here means the
	// process is already gone, which the select below sees.
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
		if s.waitErr != nil {
			return fmt.Errorf("pglocal: stop: postgres: %w%s", s.waitErr, s.logReport())
		}
		return nil
	case <-ctx.Done():
	}
	// SIGQUIT is the "immediate" shutdown: no checkpoint, crash recovery on
	// the next start. SIGKILL is the last resort; backends notice that the
	// postmaster died and exit on their own.
	_ = s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.exited:
	case <-time.After(quitGrace):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	return fmt.Errorf("pglocal: stop: server did not shut down in time, forced it down: %w", ctx.Err())
}

// awaitPreviousServer waits, within limits, while an earlier server on dir
// is shutting down, so that a program restarted right after it died (its
// server got SIGINT through Pdeathsig and is still writing its shutdown
// checkpoint) does not fail on postmaster.pid. A server that is running and
// not stopping is left for postgres itself to refuse, with its own message.
func awaitPreviousServer(ctx context.Context, dir string, logger *slog.Logger) {
	began := time.Now()
	logged := false
	for {
		pid, status, err := readPidFile(dir)
		if err != nil || !processAlive(pid) {
			return
		}
		// The signal that stops it may still be on its way: the status
		// turns to "stopping" within milliseconds of it.
		if status != "stopping" && time.Since(began) > stoppingGrace || time.Since(began) > previousServerWait {
			return
		}
		if !logged && status == "stopping" {
			logger.Info("pglocal: waiting for the previous PostgreSQL on this data directory to shut down", "dir", dir, "pid", pid)
			logged = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pollInterval):
		}
	}
}

// readPidFile returns the process ID and the status ("starting", "ready",
// "stopping", "standby") that a server recorded in its postmaster.pid.
func readPidFile(dir string) (pid int, status string, err error) {
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return 0, "", err
	}
	lines := strings.Split(string(b), "\n")
	if pid, err = strconv.Atoi(strings.TrimSpace(lines[0])); err != nil {
		return 0, "", fmt.Errorf("pglocal: postmaster.pid: %w", err)
	}
	if len(lines) > pidFileStatusLine {
		status = strings.TrimSpace(lines[pidFileStatusLine])
	}
	return pid, status, nil
}

// initialise waits for the freshly launched server and creates database.
func (s *Server) initialise(ctx context.Context, database string) error {
	db, err := sql.Open("postgres", s.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pglocal: %w", err)
	}
	defer db.Close()
	if err := s.awaitReady(ctx, db); err != nil {
		return err
	}
	return createDatabase(ctx, db, database)
}

// logReport returns the server's last log lines for an error message. Once
// the process has exited, it first lets the reader catch up, as the lines
// explaining why are the last ones written.
func (s *Server) logReport() string {
	select {
	case <-s.exited:
		s.logs.waitDone(context.Background())
	default:
	}
	return s.logs.report()
}

// awaitReady polls until the server answers a query. PostgreSQL offers no
// readiness notification to a plain parent process, and connecting is the
// only test that covers everything a client needs (socket, auth, recovery).
func (s *Server) awaitReady(ctx context.Context, db *sql.DB) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		var one int
		err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("pglocal: postgres for %s exited before accepting connections (%v)%s",
				s.dir, s.waitErr, s.logReport())
		case <-ctx.Done():
			return fmt.Errorf("pglocal: waiting for postgres to accept connections: %w (last attempt: %v)%s",
				ctx.Err(), err, s.logReport())
		case <-tick.C:
		}
	}
}

func createDatabase(ctx context.Context, db *sql.DB, name string) error {
	if name == "" {
		return nil
	}
	var one int
	err := db.QueryRowContext(ctx, "SELECT 1 FROM pg_database WHERE datname = $1", name).Scan(&one)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("pglocal: look up database %q: %w", name, err)
	}
	// CREATE DATABASE takes no parameters, hence the quoted identifier.
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name)); err != nil {
		return fmt.Errorf("pglocal: create database %q: %w", name, err)
	}
	return nil
}

// launch starts the postmaster on an initialised data directory without
// waiting for it to accept connections.
func launch(dir, sockDir, postgres string, acct account, ephemeral bool, logger *slog.Logger) (*Server, error) {
	ownSock := sockDir == ""
	var err error
	if ownSock {
		sockDir, err = makeSocketDir(acct)
	} else {
		sockDir, err = filepath.Abs(sockDir)
		if err == nil {
			err = acct.chown(sockDir)
		}
	}
	if err != nil {
		return nil, err
	}
	removeSock := func() {
		if ownSock {
			os.RemoveAll(sockDir)
		}
	}
	dataDir, err := openChildDir(dir)
	if err != nil {
		removeSock()
		return nil, err
	}
	defer dataDir.close() // the child has its own copy

	// One pipe for stdout and stderr: PostgreSQL logs to stderr, and the
	// interleaving is kept. An *os.File is handed to the child directly, so
	// cmd.Wait does not wait for the reader (backends may hold it open).
	pr, pw, err := os.Pipe()
	if err != nil {
		removeSock()
		return nil, fmt.Errorf("pglocal: log pipe: %w", err)
	}
	cmd := exec.Command(postgres, serverArgs(dataDir.arg, sockDir, ephemeral)...)
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.ExtraFiles = dataDir.files
	cmd.Dir = "/" // our working directory may be unreachable for acct
	cmd.SysProcAttr = acct.sysProcAttr(syscall.SIGINT)
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		removeSock()
		return nil, fmt.Errorf("pglocal: start postgres: %w", err)
	}

	s := &Server{
		dir:     dir,
		sockDir: sockDir,
		ownSock: ownSock,
		cmd:     cmd,
		logger:  logger,
		logs:    newLogTail(logger, dir, dataDir.arg),
		exited:  make(chan struct{}),
	}
	go s.logs.consume(pr)
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	return s, nil
}

func serverArgs(dataDirArg, sockDir string, ephemeral bool) []string {
	args := []string{
		"-D", dataDirArg,
		"-k", sockDir,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=",
		// Only the server's own user (and root) may connect; that is what
		// makes trust authentication safe.
		"-c", "unix_socket_permissions=0700",
		"-c", "max_connections=200",
	}
	if ephemeral {
		args = append(args,
			"-c", "fsync=off",
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off")
	}
	return args
}

// makeSocketDir creates the private directory for the server's socket.
// MkdirTemp makes it 0700, so only the server's user and root can reach the
// socket.
func makeSocketDir(acct account) (string, error) {
	dir, err := os.MkdirTemp("", "authapi-pg-")
	if err == nil && len(socketPath(dir)) > maxSocketPath {
		// A long $TMPDIR would make the socket path too long to bind.
		os.Remove(dir)
		dir, err = os.MkdirTemp("/tmp", "authapi-pg-")
	}
	if err != nil {
		return "", fmt.Errorf("pglocal: create socket directory: %w", err)
	}
	if err := acct.chown(dir); err != nil {
		os.Remove(dir)
		return "", fmt.Errorf("pglocal: socket directory: %w", err)
	}
	return dir, nil
}

func socketPath(sockDir string) string {
	return filepath.Join(sockDir, ".s.PGSQL."+strconv.Itoa(port))
}

// childDir is how initdb or postgres is told its data directory: the
// argument of its -D, and the files it inherits as fd 3 onwards.
type childDir struct {
	arg   string
	files []*os.File
}

func (c childDir) close() {
	for _, f := range c.files {
		f.Close()
	}
}

// dirState classifies an existing or missing data directory.
type dirState int

const (
	dirMissing dirState = iota
	dirEmpty
	dirCluster // holds PG_VERSION: initialised before
	dirForeign // holds something else: not ours to touch
)

func dataDirState(dir string) (dirState, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return dirMissing, nil
	case err != nil:
		return 0, fmt.Errorf("pglocal: data directory %s: %w", dir, err)
	case len(entries) == 0:
		return dirEmpty, nil
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		return dirForeign, nil
	}
	return dirCluster, nil
}

// prepareDataDir leaves dir holding an initialised cluster that acct owns.
func prepareDataDir(ctx context.Context, dir string, bins binaries, acct account, ephemeral bool, logger *slog.Logger) error {
	state, err := dataDirState(dir)
	if err != nil {
		return err
	}
	switch state {
	case dirCluster:
		return checkOwner(dir, acct)
	case dirForeign:
		return fmt.Errorf("pglocal: data directory %s is not empty and holds no PostgreSQL cluster (no PG_VERSION); "+
			"refusing to touch it: choose another directory or empty it", dir)
	}
	logger.Info("pglocal: initialising PostgreSQL cluster", "dir", dir, "user", acct.String())
	return initCluster(ctx, dir, bins.initdb, acct, ephemeral, logger)
}

// initCluster runs initdb into a sibling temporary directory and renames it
// into place, so an interrupted first run never leaves a half-initialised
// cluster at dir (the next run just starts over).
func initCluster(ctx context.Context, dir, initdb string, acct account, ephemeral bool, logger *slog.Logger) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("pglocal: initdb: %w", err)
	}
	tmp := dir + ".initdb-tmp"
	out, err := runInitdb(ctx, tmp, initdb, "C.UTF-8", acct, ephemeral, logger)
	if err != nil && strings.Contains(out, "locale") {
		// Not every system has C.UTF-8; plain C always exists.
		_, err = runInitdb(ctx, tmp, initdb, "C", acct, ephemeral, logger)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return err
	}
	// syscall.Rename, not os.Rename: os.Rename refuses any existing
	// directory as the target, while rename(2) atomically replaces an empty
	// one (and fails with ENOTEMPTY should one have appeared meanwhile).
	if err := syscall.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("pglocal: initdb: move cluster from %s to %s: %w", tmp, dir, err)
	}
	return nil
}

// runInitdb initialises a cluster in a fresh directory tmp and returns
// initdb's output.
func runInitdb(ctx context.Context, tmp, initdb, locale string, acct account, ephemeral bool, logger *slog.Logger) (string, error) {
	if err := os.RemoveAll(tmp); err != nil { // left over from an interrupted run
		return "", fmt.Errorf("pglocal: initdb: %w", err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return "", fmt.Errorf("pglocal: initdb: %w", err)
	}
	if err := acct.chown(tmp); err != nil {
		return "", fmt.Errorf("pglocal: initdb: %w", err)
	}
	dataDir, err := openChildDir(tmp)
	if err != nil {
		return "", err
	}
	defer dataDir.close()

	args := []string{"-D", dataDir.arg, "-U", superuser, "--auth=trust", "--encoding=UTF8", "--locale=" + locale}
	if ephemeral {
		args = append(args, "--no-sync")
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, initdb, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.ExtraFiles = dataDir.files
	cmd.Dir = "/"
	// initdb only writes into tmp, so killing it is always safe.
	cmd.SysProcAttr = acct.sysProcAttr(syscall.SIGKILL)
	err = cmd.Run()
	for line := range strings.Lines(out.String()) {
		logger.Debug("initdb: " + strings.TrimRight(line, "\n"))
	}
	if err != nil {
		return out.String(), fmt.Errorf("pglocal: initdb (locale %s): %w%s", locale, err, formatTail(lastLines(out.String(), errLogLines)))
	}
	return out.String(), nil
}

type binaries struct {
	postgres, initdb string
}

// findBinaries looks for postgres and initdb on PATH, then in the directory
// `pg_config --bindir` names, then in dirs (see binDirs). Outside PATH, it
// takes only a directory that holds both.
func findBinaries(ctx context.Context, dirs []string) (binaries, error) {
	if b, ok := binariesIn(""); ok {
		return b, nil
	}
	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, pgConfig, "--bindir").Output()
		if dir := strings.TrimSpace(string(out)); err == nil && filepath.IsAbs(dir) {
			if b, ok := binariesIn(dir); ok {
				return b, nil
			}
		}
	}
	for _, pattern := range dirs {
		if b, ok := newestBinaries(pattern); ok {
			return b, nil
		}
	}
	return binaries{}, fmt.Errorf("%w (searched PATH, pg_config --bindir, %s)", ErrNoBinaries, strings.Join(dirs, ", "))
}

// newestBinaries looks in the directories that pattern matches, newest
// major version first (what the pattern's * matched, if it has one).
func newestBinaries(pattern string) (binaries, bool) {
	matches, _ := filepath.Glob(pattern) // only a malformed pattern fails
	before, after, wild := strings.Cut(pattern, "*")
	var best binaries
	var bestVersion []int
	for _, dir := range matches {
		version := []int{0}
		if wild {
			v, ok := parseVersion(strings.TrimSuffix(strings.TrimPrefix(dir, before), after))
			if !ok {
				continue
			}
			version = v
		}
		if bestVersion != nil && slices.Compare(version, bestVersion) <= 0 {
			continue
		}
		if b, ok := binariesIn(dir); ok {
			best, bestVersion = b, version
		}
	}
	return best, bestVersion != nil
}

// binariesIn finds postgres and initdb in dir, or on PATH when dir is "".
func binariesIn(dir string) (binaries, bool) {
	pg, errPG := exec.LookPath(filepath.Join(dir, "postgres"))
	initdb, errInit := exec.LookPath(filepath.Join(dir, "initdb"))
	return binaries{postgres: pg, initdb: initdb}, errPG == nil && errInit == nil
}

// parseVersion parses a major version directory name such as "15" or "9.6"
// into numbers, so that 9.6 < 10 < 15 < 16 compare correctly.
func parseVersion(name string) ([]int, bool) {
	var version []int
	for part := range strings.SplitSeq(name, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			return nil, false
		}
		version = append(version, n)
	}
	return version, true
}

// logTail forwards the server's output to the Logger and keeps its last
// lines, for error messages when the server fails to start or stop.
type logTail struct {
	logger *slog.Logger
	dir    string
	arg    string        // how the server knows dir (childDir.arg)
	done   chan struct{} // closed when the pipe reaches EOF

	mu    sync.Mutex
	lines []string
}

func newLogTail(logger *slog.Logger, dir, arg string) *logTail {
	return &logTail{logger: logger, dir: dir, arg: arg, done: make(chan struct{})}
}

// consume reads r to EOF. It must keep reading whatever arrives: a full
// pipe would block the server.
func (l *logTail) consume(r io.ReadCloser) {
	defer close(l.done)
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		text := string(line)
		for errors.Is(err, bufio.ErrBufferFull) { // drop the rest of an overlong line
			_, err = br.ReadSlice('\n')
		}
		if text != "" {
			l.add(strings.TrimRight(text, "\n"))
		}
		if err != nil {
			return
		}
	}
}

func (l *logTail) add(line string) {
	// On Linux postgres knows its data directory only as /proc/self/fd/3;
	// name the real one, so messages such as "another postmaster is running
	// in data directory ..." make sense to a reader.
	if l.arg != l.dir {
		line = strings.ReplaceAll(line, l.arg, l.dir)
	}
	l.logger.Debug("postgres: " + line)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == keptLogLines {
		l.lines = slices.Delete(l.lines, 0, 1)
	}
	l.lines = append(l.lines, line)
}

// waitDone waits, within limits, for the pipe to be drained.
func (l *logTail) waitDone(ctx context.Context) {
	timer := time.NewTimer(logDrainWait)
	defer timer.Stop()
	select {
	case <-l.done:
	case <-ctx.Done():
	case <-timer.C:
	}
}

// report returns the last lines of the server's output, formatted to be
// appended to an error message.
func (l *logTail) report() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return formatTail(l.lines[max(0, len(l.lines)-errLogLines):])
}

func lastLines(s string, n int) []string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[max(0, len(lines)-n):]
}

func formatTail(lines []string) string {
	if len(lines) == 0 || len(lines) == 1 && lines[0] == "" {
		return "\n(no output)"
	}
	return "\noutput (last lines):\n\t" + strings.Join(lines, "\n\t")
}
