// Package store persists users, API keys and login failures in PostgreSQL
// through sqlx and lib/pq.
//
// Methods return errors that wrap one of the sentinels below, so that the
// HTTP layer can map them to statuses in one place: ErrNotFound,
// ErrConflict (as a *ConflictError naming the fields), ErrKeyLimit,
// ErrChanged, ErrInvalidText and ErrUnavailable (or an *account.Error for
// a value the account rules refuse). The words a client reads are the
// HTTP layer's.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"authapi/account"
	"authapi/migrations"
)

var (
	// ErrNotFound means the row does not exist (or is not the caller's).
	ErrNotFound = errors.New("store: not found")
	// ErrConflict means a uniqueness rule refused the write (as a
	// *ConflictError naming the fields).
	ErrConflict = errors.New("store: conflict")
	// ErrKeyLimit means the user has as many active API keys as allowed.
	ErrKeyLimit = errors.New("store: active API key limit reached")
	// ErrChanged means the row changed since it was read: a
	// compare-and-swap lost to a concurrent write.
	ErrChanged = errors.New("store: changed meanwhile")
	// ErrInvalidText means PostgreSQL cannot store some text (a NUL
	// character, invalid UTF-8). Validation should have caught it first.
	ErrInvalidText = errors.New("store: text cannot be stored")
	// ErrUnavailable means the database could not be reached in time.
	ErrUnavailable = errors.New("store: database unavailable")
)

// ConflictError says which fields conflict with an existing row.
type ConflictError struct {
	Fields []string // e.g. "username", "email"
}

func (e *ConflictError) Error() string {
	return "store: conflict on " + strings.Join(e.Fields, ", ")
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// Options tune the connection pool.
type Options struct {
	// MaxConns bounds open connections; idle ones are kept up to the same
	// number, since opening a PostgreSQL connection costs milliseconds.
	MaxConns int
	// QueryTimeout bounds every statement, including the wait for a pooled
	// connection, so that a database outage fails requests fast.
	QueryTimeout time.Duration
	// Prepare prepares the reads of authenticated requests once per
	// connection (prepared.go).
	Prepare bool
}

// DefaultOptions suit one instance on a small machine.
var DefaultOptions = Options{MaxConns: 20, QueryTimeout: 5 * time.Second}

// DB is the store.
type DB struct {
	db       *sqlx.DB
	cfg      pq.Config
	timeout  time.Duration
	prepare  bool // the reads of prepared.go are prepared on each connection
	maxConns int
}

// Open connects to the database at url (a lib/pq URL or key=value string)
// and checks that it answers. It does not migrate.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultOptions.MaxConns
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = DefaultOptions.QueryTimeout
	}
	cfg, err := connConfig(url)
	if err != nil {
		return nil, err
	}
	connector, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	// Every read and write on a connection is bounded, a margin past the
	// statement timeout (lib/pq reads without a deadline, and a context
	// only sends a cancel request): a server that stops answering fails
	// the statement, while a live one's answer to the cancel comes first.
	connector.Dialer(deadlineDialer{timeout: opts.QueryTimeout + stallMargin})
	var conns driver.Connector = connector
	if opts.Prepare {
		conns = preparingConnector{connector}
	}
	db := sqlx.NewDb(sql.OpenDB(&failoverConnector{Connector: conns}), "postgres")
	db.SetMaxOpenConns(opts.MaxConns)
	db.SetMaxIdleConns(opts.MaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &DB{db: db, cfg: cfg, timeout: opts.QueryTimeout, prepare: opts.Prepare, maxConns: opts.MaxConns}
	if err := s.Ping(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// connConfig parses url into lib/pq's configuration, with parameters sent
// in the same round trip as the statement (binary_parameters), which a
// transaction-pooling PgBouncer needs (docs/deployment.md); []byte
// parameters go in binary, as the bytea columns take them.
func connConfig(url string) (pq.Config, error) {
	cfg, err := parseURL(url)
	if err != nil {
		return pq.Config{}, fmt.Errorf("store: open: %w", err)
	}
	cfg.BinaryParameters = true
	return cfg, nil
}

// CheckURL reports what is wrong with a database URL that lib/pq would
// misread or refuse.
func CheckURL(url string) error {
	_, err := parseURL(url)
	return err
}

// parseURL parses url as lib/pq does, but refuses a port per host in a
// URL naming several (postgres://db1:5432,db2:5433/authapi, libpq's form
// for a highly available cluster): lib/pq takes "db1:5432" for a host
// name, and every connection would fail on a name that does not resolve.
func parseURL(url string) (pq.Config, error) {
	cfg, err := pq.NewConfig(url)
	if err != nil {
		return pq.Config{}, err
	}
	hosts := []string{cfg.Host}
	for _, m := range cfg.Multi {
		hosts = append(hosts, m.Host)
	}
	for _, h := range hosts {
		if _, port, err := net.SplitHostPort(h); err == nil && port != "" {
			return pq.Config{}, fmt.Errorf("the host %q names a port, which lib/pq does not read in a URL: "+
				"give one port for all hosts (postgres://db1,db2/authapi?port=5432) or one per host in the same order (?port=5432,5433)", h)
		}
	}
	return cfg, nil
}

// Close closes the pool.
func (s *DB) Close() error { return s.db.Close() }

// Ping checks that the database answers within the query timeout.
func (s *DB) Ping(ctx context.Context) (err error) {
	defer classify(&err, "ping")
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.db.PingContext(ctx)
}

// Migrate applies every pending migration, on connections of its own
// without the statement timeout. Concurrent callers are serialised by a
// row in goose_lock under a 30 s lease that a heartbeat renews, not by an
// advisory lock, which a transaction pooler breaks (docs/deployment.md).
func (s *DB) Migrate(ctx context.Context) (err error) {
	defer classify(&err, "migrate")
	connector, err := pq.NewConnectorConfig(s.cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	// Waiters look again every second, for up to 5 minutes.
	locker, err := lock.NewPostgresTableLocker(lock.WithTableLockTimeout(time.Second, 300))
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, goose.WithLocker(locker))
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return err
	}
	if s.prepare {
		// Idle connections may predate the tables, and so lack the
		// prepared reads: let new ones take their place.
		s.db.SetMaxIdleConns(0)
		s.db.SetMaxIdleConns(s.maxConns)
	}
	return nil
}

// Stats returns the pool's statistics.
func (s *DB) Stats() sql.DBStats { return s.db.Stats() }

// withTimeout bounds one statement.
func (s *DB) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// classify, deferred by each exported method, names the operation op in a
// non-nil *errp and classifies it under one of the sentinels.
func classify(errp *error, op string) {
	err := *errp
	pqErr := pq.As(err)
	switch {
	case err == nil:
		return
	case errors.Is(err, sql.ErrNoRows):
		err = ErrNotFound
	case errors.Is(err, errNoServer):
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	case pqErr != nil:
		switch {
		case pqErr.Code == pqerror.CharacterNotInRepertoire, pqErr.Code == pqerror.UntranslatableCharacter:
			err = fmt.Errorf("%w: %w", ErrInvalidText, err)
		case pqErr.Code == pqerror.CheckViolation: // a row the rules refuse
			err = &account.Error{Field: checkFields[pqErr.Constraint], Message: "is not in a form that can be stored"}
		case unavailableCode(pqErr.Code):
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	case unreachable(err):
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	*errp = fmt.Errorf("store: %s: %w", op, err)
}

// checkFields names the API field each CHECK constraint guards, for the
// refusals that get past the account rules (a row stored before a rule was
// added, updated now).
var checkFields = map[string]string{
	"users_username_check": "username", "users_email_check": "email", "users_email_shape": "email",
	"users_full_name_check": "full_name", "users_full_name_not_blank": "full_name",
	"api_keys_name_check": "name", "api_keys_scopes_check": "scopes", "api_keys_scopes_distinct": "scopes",
}

// unavailableCode reports whether a SQLSTATE means that the server cannot
// do the work now, but may soon: the request should be retried.
func unavailableCode(code pqerror.Code) bool {
	switch {
	case code.Class() == pqerror.ClassConnectionException,
		code.Class() == pqerror.ClassInsufficientResources,
		code == pqerror.AdminShutdown, code == pqerror.CrashShutdown, code == pqerror.CannotConnectNow,
		code == pqerror.QueryCanceled,          // by our timeout
		code == pqerror.TRDeadlockDetected,     // this side was chosen to give way
		code == pqerror.ReadOnlySQLTransaction: // a write reached a server that no longer takes them
		return true
	}
	return false
}

// unreachable reports whether err means the server could not be talked to.
func unreachable(err error) bool {
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ENOENT) || // unix socket gone
		errors.As(err, &netErr)
}

// stallMargin is how much longer than the statement timeout a single read
// or write on a database connection may block before the connection is
// given up as stalled.
const stallMargin = 500 * time.Millisecond

// deadlineDialer dials connections whose every read and write must finish
// within timeout.
type deadlineDialer struct {
	d       net.Dialer
	timeout time.Duration
}

func (d deadlineDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

func (d deadlineDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

func (d deadlineDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	// The dial itself is bounded too: connect(2) to a frozen server's
	// unix socket blocks once its backlog is full.
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	c, err := d.d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return &deadlineConn{Conn: c, timeout: d.timeout}, nil
}

// deadlineConn sets a fresh deadline before each read and write. An idle
// pooled connection is neither read nor written, so it never times out.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *deadlineConn) Read(b []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *deadlineConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}
