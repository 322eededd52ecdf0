package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"strings"
	"sync/atomic"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
)

// Following a primary that moves (Patroni and the like), through a URL that
// names every server with target_session_attrs=read-write:
//
//   - failing to open a connection because no server takes writes now
//     (each unreachable, starting, stopping, out of resources or read-only)
//     is errNoServer, and so ErrUnavailable;
//   - once any connection answers 25006 (its server turned read-only under
//     it), every connection opened before is dropped when next taken from
//     or returned to the pool.

// errNoServer marks a failure to open a connection because no server
// named by the URL could take it at the time.
var errNoServer = errors.New("store: no database server can take the connection now")

// lib/pq's errors for a server that is up but fails target_session_attrs
// (read-write or primary): plain errors, without a SQLSTATE.
var notWritableMessages = []string{"session is read-only", "server is in hot standby mode"}

// failoverConnector opens connections through its Connector and watches
// them for a read-only server.
type failoverConnector struct {
	driver.Connector
	// generation counts the times a connection found its server
	// read-only; connections opened before the latest are stale.
	generation atomic.Uint64
}

func (c *failoverConnector) Connect(ctx context.Context) (driver.Conn, error) {
	gen := c.generation.Load()
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		if serverUnavailable(err) {
			return nil, &noServerError{err}
		}
		return nil, err
	}
	return &failoverConn{Conn: conn, c: c, generation: gen}, nil
}

// noServerError is errNoServer, with what each server answered on one
// line (lib/pq puts each host's on a line of its own), for the logs.
type noServerError struct{ err error }

func (e *noServerError) Error() string {
	return errNoServer.Error() + ": " + oneLine.Replace(e.err.Error())
}

var oneLine = strings.NewReplacer(":\n", ": ", "\n", "; ")

func (e *noServerError) Unwrap() []error { return []error{errNoServer, e.err} }

// serverUnavailable reports whether err, from opening a connection, means
// that no server could take it for now: for every server tried (lib/pq
// joins the errors of several), it was unreachable, starting, stopping,
// out of resources or not writable. An error that says the settings are
// wrong (authentication, an unknown database) on any server is not.
func serverUnavailable(err error) bool {
	if errs, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range errs.Unwrap() {
			if !serverUnavailable(e) {
				return false
			}
		}
		return len(errs.Unwrap()) > 0
	}
	if pqErr := pq.As(err); pqErr != nil {
		return unavailableCode(pqErr.Code)
	}
	if unreachable(err) {
		return true
	}
	if inner := errors.Unwrap(err); inner != nil {
		return serverUnavailable(inner)
	}
	for _, m := range notWritableMessages {
		if err.Error() == m {
			return true
		}
	}
	return false
}

// failoverConn is a connection of a failoverConnector.
type failoverConn struct {
	driver.Conn
	c          *failoverConnector
	generation uint64
}

// check notes that err says the server no longer takes writes.
func (fc *failoverConn) check(err error) {
	if pq.As(err, pqerror.ReadOnlySQLTransaction) != nil {
		fc.c.generation.CompareAndSwap(fc.generation, fc.generation+1)
	}
}

func (fc *failoverConn) stale() bool { return fc.c.generation.Load() != fc.generation }

// IsValid is asked as the connection returns to the pool.
func (fc *failoverConn) IsValid() bool {
	if fc.stale() {
		return false
	}
	v, ok := fc.Conn.(driver.Validator)
	return !ok || v.IsValid()
}

// ResetSession is called as the connection is taken from the pool again:
// ErrBadConn makes database/sql drop it and try another.
func (fc *failoverConn) ResetSession(ctx context.Context) error {
	if fc.stale() {
		return driver.ErrBadConn
	}
	if r, ok := fc.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (fc *failoverConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	ex, ok := fc.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	res, err := ex.ExecContext(ctx, query, args)
	fc.check(err)
	return res, err
}

func (fc *failoverConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := fc.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	rows, err := q.QueryContext(ctx, query, args)
	if err != nil {
		fc.check(err)
		return nil, err
	}
	// A write's error (INSERT ... RETURNING) arrives with its rows.
	return &failoverRows{Rows: rows, fc: fc}, nil
}

func (fc *failoverConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if b, ok := fc.Conn.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	//lint:ignore SA1019 the fallback database/sql itself would take
	return fc.Conn.Begin()
}

func (fc *failoverConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if p, ok := fc.Conn.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	return fc.Conn.Prepare(query)
}

func (fc *failoverConn) Ping(ctx context.Context) error {
	if p, ok := fc.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// CheckNamedValue keeps lib/pq's conversions of arguments (arrays, binary
// parameters).
func (fc *failoverConn) CheckNamedValue(nv *driver.NamedValue) error {
	if c, ok := fc.Conn.(driver.NamedValueChecker); ok {
		return c.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// failoverRows passes the errors of its rows to check.
type failoverRows struct {
	driver.Rows
	fc *failoverConn
}

func (r *failoverRows) Next(dest []driver.Value) error {
	err := r.Rows.Next(dest)
	if err != nil && err != io.EOF {
		r.fc.check(err)
	}
	return err
}
