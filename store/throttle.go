package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
)

// LoginLimits are the budgets of failed logins within Window; 0 turns one
// off.
type LoginLimits struct {
	PerPair    int // per (username, address)
	PerAddress int // per address, over all usernames
	Window     time.Duration
}

// Refusal is a throttle's verdict: the zero value admits.
type Refusal struct {
	// RetryAfter is how long until an attempt would be admitted; 0 admits.
	RetryAfter time.Duration
	// ByAddress says that the address's budget over all usernames ran out,
	// rather than the (username, address) pair's.
	ByAddress bool
	// Contended says that another attempt from the address held its lock
	// longer than lockWait (on another instance: each instance lets one
	// attempt per address at a time reach the database).
	Contended bool
}

// lockWait bounds the wait for an address's throttle lock, far below the
// statement timeout, so that a flood from one address cannot hold pooled
// connections waiting for it.
const lockWait = 500 * time.Millisecond

// lockAddress takes the transaction's advisory lock on address in
// namespace, waiting at most lockWait. It reports false when the wait ran
// out.
func lockAddress(ctx context.Context, tx *sqlx.Tx, namespace int, address string) (bool, error) {
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, lockWait.Milliseconds())); err != nil {
		return false, err
	}
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, $2))`, address, namespace)
	if pq.As(err, pqerror.LockNotAvailable) != nil {
		return false, nil
	}
	return err == nil, err
}

// BeginLogin admits a login attempt for (username, address) unless the pair
// already has lim.PerPair failures within the window, or the address has
// lim.PerAddress over all usernames; then it says how long until the oldest
// that matter leave the window. An admitted attempt is recorded as a
// failure at once, before the password is checked, so that concurrent
// guesses cannot overrun a budget and a crash mid-login counts against the
// guesser; LoginSucceeded takes it back. With both limits off it admits all
// and records nothing. The database's clock is used, so that several
// instances share one window.
func (s *DB) BeginLogin(ctx context.Context, username, address string, lim LoginLimits) (_ Refusal, err error) {
	defer classify(&err, "begin login")
	if lim.PerPair <= 0 && lim.PerAddress <= 0 {
		return Refusal{}, nil
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return Refusal{}, err
	}
	defer tx.Rollback()
	// Serialise attempts from one address, which covers its pairs too:
	// check-then-insert is otherwise racy.
	if locked, err := lockAddress(ctx, tx, 7001, address); err != nil || !locked {
		return Refusal{RetryAfter: time.Second, Contended: true}, err
	}
	var r Refusal
	if lim.PerPair > 0 {
		wait, err := budgetWait(ctx, tx,
			`SELECT extract(epoch FROM failed_at + make_interval(secs => $1) - clock_timestamp())
			 FROM login_failures
			 WHERE username = $3 AND address = $4 AND failed_at > clock_timestamp() - make_interval(secs => $1)
			 ORDER BY failed_at DESC OFFSET $2 - 1 LIMIT 1`, lim.Window, lim.PerPair, username, address)
		if err != nil {
			return Refusal{}, err
		}
		r.RetryAfter = wait
	}
	if lim.PerAddress > 0 {
		wait, err := budgetWait(ctx, tx,
			`SELECT extract(epoch FROM failed_at + make_interval(secs => $1) - clock_timestamp())
			 FROM login_failures
			 WHERE address = $3 AND failed_at > clock_timestamp() - make_interval(secs => $1)
			 ORDER BY failed_at DESC OFFSET $2 - 1 LIMIT 1`, lim.Window, lim.PerAddress, address)
		if err != nil {
			return Refusal{}, err
		}
		// Both budgets must have room again: the longer wait decides.
		if wait > r.RetryAfter {
			r = Refusal{RetryAfter: wait, ByAddress: true}
		}
	}
	if r.RetryAfter > 0 {
		return r, nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO login_failures (username, address) VALUES ($1, $2)`, username, address); err != nil {
		return Refusal{}, err
	}
	return Refusal{}, tx.Commit()
}

// budgetWait runs query, which selects how many seconds remain until the
// budget-th newest event in the window ($1) leaves it, skipping budget-1
// rows ($2). No row means the budget has room: 0. A refusal is at least a
// nanosecond, so that it never reads as admitted.
func budgetWait(ctx context.Context, tx *sqlx.Tx, query string, window time.Duration, budget int, args ...any) (time.Duration, error) {
	var wait []float64
	if err := tx.SelectContext(ctx, &wait, query, append([]any{window.Seconds(), budget}, args...)...); err != nil {
		return 0, err
	}
	if len(wait) == 0 {
		return 0, nil
	}
	return max(time.Duration(wait[0]*float64(time.Second)), time.Nanosecond), nil
}

// LoginSucceeded forgets the failures of (username, address), including the
// attempt BeginLogin recorded, and records the login of user.
func (s *DB) LoginSucceeded(ctx context.Context, username, address string, user uuid.UUID, by Actor) (err error) {
	defer classify(&err, "login succeeded")
	return s.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM login_failures WHERE username = $1 AND address = $2`, username, address); err != nil {
			return err
		}
		if err := record(ctx, tx, user, EventLoginSucceeded, by, nil); err != nil {
			if isForeignKeyViolation(err) { // deleted since its password was checked
				return sql.ErrNoRows
			}
			return err
		}
		return nil
	})
}

// ClearLoginFailures forgets the failures of (username, address), including
// the attempt BeginLogin recorded: a password check that succeeded.
func (s *DB) ClearLoginFailures(ctx context.Context, username, address string) (err error) {
	defer classify(&err, "clear login failures")
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	_, err = s.db.ExecContext(ctx, `DELETE FROM login_failures WHERE username = $1 AND address = $2`, username, address)
	return err
}

// ForgetLoginFailures deletes failures older than window, which no longer
// count. It returns how many it deleted.
func (s *DB) ForgetLoginFailures(ctx context.Context, window time.Duration) (_ int64, err error) {
	defer classify(&err, "forget login failures")
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	res, err := s.db.ExecContext(ctx,
		`DELETE FROM login_failures WHERE failed_at < clock_timestamp() - make_interval(secs => $1)`, window.Seconds())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// BeginRegistration admits a registration attempt from address unless it
// already made max within window; then it returns how long until the
// oldest of them leaves the window. An admitted attempt is recorded whatever
// its outcome, so that probing which usernames and emails are taken is
// bounded too. max <= 0 admits all and records nothing.
func (s *DB) BeginRegistration(ctx context.Context, address string, max int, window time.Duration) (retryAfter time.Duration, err error) {
	defer classify(&err, "begin registration")
	if max <= 0 {
		return 0, nil
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if locked, err := lockAddress(ctx, tx, 7003, address); err != nil || !locked {
		return time.Second, err
	}
	wait, err := budgetWait(ctx, tx,
		`SELECT extract(epoch FROM attempted_at + make_interval(secs => $1) - clock_timestamp())
		 FROM registration_attempts
		 WHERE address = $3 AND attempted_at > clock_timestamp() - make_interval(secs => $1)
		 ORDER BY attempted_at DESC OFFSET $2 - 1 LIMIT 1`, window, max, address)
	if err != nil || wait > 0 {
		return wait, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO registration_attempts (address) VALUES ($1)`, address); err != nil {
		return 0, err
	}
	return 0, tx.Commit()
}

// ForgetRegistrationAttempts deletes attempts older than window. It returns
// how many it deleted.
func (s *DB) ForgetRegistrationAttempts(ctx context.Context, window time.Duration) (_ int64, err error) {
	defer classify(&err, "forget registration attempts")
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	res, err := s.db.ExecContext(ctx,
		`DELETE FROM registration_attempts WHERE attempted_at < clock_timestamp() - make_interval(secs => $1)`, window.Seconds())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
