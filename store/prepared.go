package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"strconv"

	"github.com/google/uuid"
	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
)

// The reads of authenticated requests are PREPAREd in SQL under fixed
// names when a connection opens, and run as EXECUTE on the unnamed-statement
// path, their arguments written in as literals (hex, a canonical UUID, an
// integer: nothing to escape). A connection without them (opened before the
// first migration, or a pooler's server connection) answers 26000, and the
// read runs unprepared. Why not database/sql's prepared statements:
// BENCHMARKS.md ("Where a GET /v1/me spends its CPU", item 7).

const (
	keyOwnerSQL = `SELECT k.id, u.id, u.username, u.email, u.full_name, u.created_at, k.scopes, k.expires_at
		 FROM api_keys k JOIN users u ON u.id = k.user_id
		 WHERE k.digest = $1 AND k.revoked_at IS NULL`
	// A user's token state: no row when the user is gone.
	userTokensSQL = `SELECT u.token_generation,
		   coalesce(array_agg(e.jti) FILTER (WHERE e.jti IS NOT NULL), '{}')
		 FROM users u LEFT JOIN ended_tokens e ON e.user_id = u.id AND e.expires_at > clock_timestamp()
		 WHERE u.id = $1 GROUP BY u.id`
	listKeysSQL = `SELECT ` + keyColumns + `
		 FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2`
	// The pages after the first, which are not prepared.
	listKeysAfterSQL = `SELECT ` + keyColumns + `
		 FROM api_keys WHERE user_id = $1 AND (created_at, id) < ($3, $4)
		 ORDER BY created_at DESC, id DESC LIMIT $2`
)

// preparedReads are PREPAREd on every connection that opens.
var preparedReads = []string{
	`PREPARE authapi_key_owner(bytea) AS ` + keyOwnerSQL,
	`PREPARE authapi_user_tokens(uuid) AS ` + userTokensSQL,
	`PREPARE authapi_list_keys_page(uuid, integer) AS ` + listKeysSQL,
}

// preparingConnector prepares the reads on each connection it opens.
type preparingConnector struct{ driver.Connector }

func (c preparingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ex, ok := conn.(driver.ExecerContext)
	if !ok {
		return conn, nil
	}
	for _, stmt := range preparedReads {
		_, err := ex.ExecContext(ctx, stmt, nil)
		// No table yet (before the first migration), or prepared already
		// (a pooler's server connection): go on.
		if err != nil && pq.As(err, pqerror.UndefinedTable, pqerror.DuplicatePstatement) == nil {
			conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

// readDigest runs a read by digest, prepared when that is on.
func (s *DB) readDigest(ctx context.Context, name, query string, digest []byte) (*sql.Rows, error) {
	if s.prepare {
		return s.execute(ctx, `EXECUTE `+name+`('\x`+hex.EncodeToString(digest)+`'::bytea)`, query, digest)
	}
	return s.db.QueryContext(ctx, query, digest)
}

// readID runs a read by UUID, prepared when that is on.
func (s *DB) readID(ctx context.Context, name, query string, id uuid.UUID) (*sql.Rows, error) {
	if s.prepare {
		return s.execute(ctx, `EXECUTE `+name+`('`+id.String()+`'::uuid)`, query, id)
	}
	return s.db.QueryContext(ctx, query, id)
}

// readPage runs a read of a page by UUID and a row limit, prepared when
// that is on.
func (s *DB) readPage(ctx context.Context, name, query string, id uuid.UUID, limit int) (*sql.Rows, error) {
	if s.prepare {
		return s.execute(ctx, `EXECUTE `+name+`('`+id.String()+`'::uuid, `+strconv.Itoa(limit)+`)`, query, id, limit)
	}
	return s.db.QueryContext(ctx, query, id, limit)
}

// execute runs the EXECUTE, or the query itself where the connection has
// no such statement.
func (s *DB) execute(ctx context.Context, execute, query string, args ...any) (*sql.Rows, error) {
	rows, err := s.db.QueryContext(ctx, execute)
	if pq.As(err, pqerror.InvalidSQLStatementName) != nil {
		return s.db.QueryContext(ctx, query, args...)
	}
	return rows, err
}

// scanOne scans the only row of rows into dest, or returns sql.ErrNoRows.
func scanOne(rows *sql.Rows, err error) func(dest ...any) error {
	return func(dest ...any) error {
		if err != nil {
			return err
		}
		defer rows.Close()
		if !rows.Next() {
			if err := rows.Err(); err != nil {
				return err
			}
			return sql.ErrNoRows
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		return rows.Close()
	}
}
