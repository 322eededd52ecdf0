package store

import (
	"context"
	"database/sql/driver"
	"errors"

	"github.com/lib/pq"
)

// A highly available PostgreSQL (Patroni and the like) moves the primary
// from one server to another. authapi follows it through a URL that names
// every server with target_session_attrs=read-write: lib/pq then opens
// connections only to the one that takes writes. While no server takes
// writes (between the old primary's end and the new one's promotion),
// opening a connection fails, often with lib/pq's own error for a server
// that is up but read-only rather than with a network error: that is the
// database being unavailable, not a bug.

// errNoServer marks a failure to open a connection because no server
// named by the URL could take it at the time.
var errNoServer = errors.New("store: no database server can take the connection now")

// lib/pq's errors for a server that is up but fails target_session_attrs
// (read-write or primary): plain errors, without a SQLSTATE.
var notWritableMessages = []string{"session is read-only", "server is in hot standby mode"}

// failoverConnector opens connections through its Connector.
type failoverConnector struct {
	driver.Connector
}

func (c *failoverConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil && serverUnavailable(err) {
		return nil, errors.Join(errNoServer, err)
	}
	return conn, err
}

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
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
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
