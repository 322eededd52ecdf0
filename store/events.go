package store

import (
	"context"
	"database/sql"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
)

// EventType is what a security event records.
type EventType string

// The security events, as the API names them.
const (
	EventLoginSucceeded  EventType = "login_succeeded"
	EventLoginFailed     EventType = "login_failed"
	EventLoginThrottled  EventType = "login_throttled"
	EventPasswordChanged EventType = "password_changed"
	EventLoggedOut       EventType = "logged_out"
	EventProfileUpdated  EventType = "profile_updated"
	EventKeyCreated      EventType = "api_key_created"
	EventKeyRotated      EventType = "api_key_rotated"
	EventKeyRevoked      EventType = "api_key_revoked"
)

// Actor is who made a change, as its security event records it: the
// client's address and user agent.
type Actor struct {
	Address   string
	UserAgent string
}

// maxUserAgent bounds a recorded user agent, in characters.
const maxUserAgent = 200

// clean is a's fields as they can be stored and shown: the user agent
// valid UTF-8 without control characters, cut to maxUserAgent characters
// (a client chooses it, and a change must never fail for it).
func (a Actor) clean() Actor {
	ua := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(a.UserAgent, "\uFFFD"))
	if utf8.RuneCountInString(ua) > maxUserAgent {
		ua = string([]rune(ua)[:maxUserAgent])
	}
	// The address as the API shows it, an IP; anything else (it comes
	// from a header, through trusted proxies) is no address.
	if ip, err := netip.ParseAddr(a.Address); err == nil {
		a.Address = ip.WithZone("").String()
	} else {
		a.Address = ""
	}
	a.UserAgent = ua
	return a
}

// Event is one security event of a user.
type Event struct {
	ID         uuid.UUID  `db:"id"`
	UserID     uuid.UUID  `db:"user_id"`
	Type       EventType  `db:"type"`
	OccurredAt time.Time  `db:"occurred_at"`
	Client     string     `db:"client_address"`
	UserAgent  string     `db:"user_agent"`
	KeyID      *uuid.UUID `db:"key_id"`
	KeyPrefix  *string    `db:"key_prefix"`
}

// execer is a transaction or the pool.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// record writes the event of a change, in the change's transaction (or as
// a statement of its own, for what is not a change of state: a refused
// login). key may be nil.
func record(ctx context.Context, ex execer, user uuid.UUID, t EventType, by Actor, key *APIKey) error {
	by = by.clean()
	var keyID *uuid.UUID
	var prefix *string
	if key != nil {
		keyID, prefix = &key.ID, &key.Prefix
	}
	_, err := ex.ExecContext(ctx, `INSERT INTO security_events (user_id, type, client_address, user_agent, key_id, key_prefix)
		VALUES ($1, $2, $3, $4, $5, $6)`, user, string(t), by.Address, by.UserAgent, keyID, prefix)
	return err
}

// RecordEvent writes an event that records no change of state: a failed or
// throttled login of an existing user. It returns ErrNotFound when the
// user is gone.
func (s *DB) RecordEvent(ctx context.Context, user uuid.UUID, t EventType, by Actor) (err error) {
	defer classify(&err, "record event")
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	err = record(ctx, s.db, user, t, by, nil)
	if isForeignKeyViolation(err) {
		return ErrNotFound
	}
	return err
}

// RecordEventByUsername is RecordEvent for the user registered as
// username (without regard to case), in one statement; for an unknown
// username it writes nothing, in about the same time, and returns
// ErrNotFound.
func (s *DB) RecordEventByUsername(ctx context.Context, username string, t EventType, by Actor) (err error) {
	defer classify(&err, "record event")
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	by = by.clean()
	var n int
	err = s.db.GetContext(ctx, &n, `WITH e AS (
		INSERT INTO security_events (user_id, type, client_address, user_agent)
		SELECT id, $2, $3, $4 FROM users WHERE lower(username) = lower($1)
		RETURNING 1)
		SELECT count(*) FROM e, (SELECT pg_current_xact_id()) AS x`, username, string(t), by.Address, by.UserAgent)
	if err == nil && n == 0 {
		return ErrNotFound
	}
	return err
}

// ListEvents returns a page of the user's events, newest first, with one
// more than asked for when more remain.
func (s *DB) ListEvents(ctx context.Context, user uuid.UUID, page Page) (_ []Event, err error) {
	defer classify(&err, "list events")
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	const columns = `id, user_id, type, occurred_at, client_address, user_agent, key_id, key_prefix`
	events := []Event{}
	if page.After == nil {
		err = s.db.SelectContext(ctx, &events, `SELECT `+columns+` FROM security_events WHERE user_id = $1
			ORDER BY occurred_at DESC, id DESC LIMIT $2`, user, page.Limit+1)
	} else {
		err = s.db.SelectContext(ctx, &events, `SELECT `+columns+` FROM security_events
			WHERE user_id = $1 AND (occurred_at, id) < ($3, $4)
			ORDER BY occurred_at DESC, id DESC LIMIT $2`, user, page.Limit+1, page.After.CreatedAt, page.After.ID)
	}
	return events, err
}

// DeleteOldEvents deletes events older than retention, a batch at a time,
// and returns how many it deleted.
func (s *DB) DeleteOldEvents(ctx context.Context, retention time.Duration) (int64, error) {
	return s.inBatches(ctx, "delete old events", `DELETE FROM security_events WHERE id IN (
		SELECT id FROM security_events WHERE occurred_at < clock_timestamp() - make_interval(secs => $1)
		LIMIT $2 FOR UPDATE SKIP LOCKED)`, retention.Seconds())
}

// inBatches runs a deletion of at most batch rows (its last parameter)
// until it deletes fewer, so that no statement holds many locks or runs
// long, and returns the rows deleted.
func (s *DB) inBatches(ctx context.Context, op, query string, args ...any) (total int64, err error) {
	defer classify(&err, op)
	for {
		n, err := s.deleteBatch(ctx, query, args...)
		total += n
		if err != nil || n < deleteBatch {
			return total, err
		}
	}
}

// deleteBatch bounds the rows one statement of inBatches deletes.
const deleteBatch = 1000

func (s *DB) deleteBatch(ctx context.Context, query string, args ...any) (int64, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	res, err := s.db.ExecContext(ctx, query, append(args, deleteBatch)...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// inTx runs f in a transaction, bounded by the statement timeout, and
// commits it when f returns nil.
func (s *DB) inTx(ctx context.Context, f func(ctx context.Context, tx *sqlx.Tx) error) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := f(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}

// isForeignKeyViolation reports whether err is PostgreSQL's refusal of a
// row whose parent is gone (a deleted user's).
func isForeignKeyViolation(err error) bool {
	return pq.As(err, pqerror.ForeignKeyViolation) != nil
}
