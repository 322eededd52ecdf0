package store

import (
	"context"
	"math"
	"time"
)

// BeginLogin admits a login attempt for (username, address) unless that pair
// already has max failures within window, in which case it returns how long
// until the oldest of them leaves the window. An admitted attempt is
// recorded as a failure at once, before the password is checked, so that
// concurrent guesses cannot overrun the budget and a crash mid-login counts
// against the guesser; LoginSucceeded takes it back. max <= 0 admits all and
// records nothing. The database's clock is used, so that several instances
// share one window.
func (s *DB) BeginLogin(ctx context.Context, username, address string, max int, window time.Duration) (retryAfter time.Duration, err error) {
	if max <= 0 {
		return 0, nil
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return 0, wrap(err, "begin login")
	}
	defer tx.Rollback()
	// Serialise attempts on one pair: check-then-insert is otherwise racy.
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1 || ' ' || $2, 7001))`, username, address); err != nil {
		return 0, wrap(err, "begin login")
	}
	// The max-th newest failure in the window decides: when it ages out,
	// fewer than max remain.
	var wait []float64
	err = tx.SelectContext(ctx, &wait,
		`SELECT extract(epoch FROM failed_at + make_interval(secs => $3) - clock_timestamp())
		 FROM login_failures
		 WHERE username = $1 AND address = $2 AND failed_at > clock_timestamp() - make_interval(secs => $3)
		 ORDER BY failed_at DESC OFFSET $4 - 1 LIMIT 1`, username, address, window.Seconds(), max)
	if err != nil {
		return 0, wrap(err, "begin login")
	}
	if len(wait) > 0 {
		return time.Duration(math.Max(wait[0], 0) * float64(time.Second)), nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO login_failures (username, address) VALUES ($1, $2)`, username, address); err != nil {
		return 0, wrap(err, "begin login")
	}
	return 0, wrap(tx.Commit(), "begin login")
}

// LoginSucceeded forgets the failures of (username, address), including the
// attempt BeginLogin recorded.
func (s *DB) LoginSucceeded(ctx context.Context, username, address string) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	_, err := s.db.ExecContext(ctx, `DELETE FROM login_failures WHERE username = $1 AND address = $2`, username, address)
	return wrap(err, "login succeeded")
}

// ForgetLoginFailures deletes failures older than window, which no longer
// count. It returns how many it deleted.
func (s *DB) ForgetLoginFailures(ctx context.Context, window time.Duration) (int64, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	res, err := s.db.ExecContext(ctx,
		`DELETE FROM login_failures WHERE failed_at < clock_timestamp() - make_interval(secs => $1)`, window.Seconds())
	if err != nil {
		return 0, wrap(err, "forget login failures")
	}
	return res.RowsAffected()
}
