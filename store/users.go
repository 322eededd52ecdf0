package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"

	"authapi/account"
)

// User is an account.
type User struct {
	ID           uuid.UUID `db:"id"`
	Username     string    `db:"username"` // as registered
	Email        string    `db:"email"`    // as registered
	FullName     string    `db:"full_name"`
	PasswordHash string    `db:"password_hash"` // argon2id PHC string
	// TokenGeneration goes up each time every token of the user is ended;
	// a token carries the generation it was issued at.
	TokenGeneration int       `db:"token_generation"`
	CreatedAt       time.Time `db:"created_at"`
}

// CreateUser inserts u and sets its ID and CreatedAt. It returns an
// *account.Error when u breaks an account rule, and a *ConflictError naming
// "username" and/or "email" when either is taken, without regard to case.
func (s *DB) CreateUser(ctx context.Context, u *User) (err error) {
	defer classify(&err, "create user")
	if err := checkUser(u); err != nil {
		return err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	err = s.db.QueryRowxContext(ctx,
		`INSERT INTO users (username, email, full_name, password_hash)
		 VALUES ($1, $2, $3, $4) RETURNING id, created_at`,
		u.Username, u.Email, u.FullName, u.PasswordHash).Scan(&u.ID, &u.CreatedAt)
	if pqErr := pq.As(err, pqerror.UniqueViolation); pqErr != nil {
		fields, ferr := s.TakenFields(ctx, u.Username, u.Email)
		if ferr != nil || len(fields) == 0 {
			// The other row went away in between; the constraint still says which.
			fields = []string{map[string]string{"users_email_key": "email"}[pqErr.Constraint]}
			if fields[0] == "" {
				fields[0] = "username"
			}
		}
		return &ConflictError{Fields: fields}
	}
	return err
}

// checkUser applies the account rules to what CreateUser would store.
func checkUser(u *User) error {
	for _, err := range []error{account.CheckUsername(u.Username), account.CheckEmail(u.Email), account.CheckFullName(u.FullName)} {
		if err != nil {
			return err
		}
	}
	return nil
}

// TakenFields returns which of username and email are already registered,
// without regard to case: "username", "email", both or neither.
func (s *DB) TakenFields(ctx context.Context, username, email string) (_ []string, err error) {
	defer classify(&err, "taken fields")
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var taken struct {
		Username bool `db:"username"`
		Email    bool `db:"email"`
	}
	err = s.db.GetContext(ctx, &taken,
		`SELECT coalesce(bool_or(lower(username) = lower($1)), false) AS username,
		        coalesce(bool_or(lower(email) = lower($2)), false) AS email
		 FROM users WHERE lower(username) = lower($1) OR lower(email) = lower($2)`,
		username, email)
	if err != nil {
		return nil, err
	}
	var fields []string
	if taken.Username {
		fields = append(fields, "username")
	}
	if taken.Email {
		fields = append(fields, "email")
	}
	return fields, nil
}

// UserByUsername returns the user registered as username, without regard to
// case, or ErrNotFound.
func (s *DB) UserByUsername(ctx context.Context, username string) (_ *User, err error) {
	defer classify(&err, "user by username")
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var u User
	if err := s.db.GetContext(ctx, &u, `SELECT `+userColumns+` FROM users WHERE lower(username) = lower($1)`, username); err != nil {
		return nil, err
	}
	return &u, nil
}

// TokenState is what decides whether a user's access token still works:
// the user's token generation (tokens of an older one were ended all at
// once), and the IDs (jti) of the tokens ended one by one that have not
// expired yet.
type TokenState struct {
	Generation int
	Ended      []string
}

// UserTokens returns the token state of the user with id, or ErrNotFound
// when the user is gone.
func (s *DB) UserTokens(ctx context.Context, id uuid.UUID) (_ *TokenState, err error) {
	defer classify(&err, "user tokens")
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var st TokenState
	var ended pq.StringArray
	if err := scanOne(s.readID(ctx, "authapi_user_tokens", userTokensSQL, id))(&st.Generation, &ended); err != nil {
		return nil, err
	}
	st.Ended = ended
	return &st, nil
}

// UserByID returns the user with id, or ErrNotFound.
func (s *DB) UserByID(ctx context.Context, id uuid.UUID) (_ *User, err error) {
	defer classify(&err, "user by id")
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var u User
	if err := s.db.GetContext(ctx, &u, `SELECT `+userColumns+` FROM users WHERE id = $1`, id); err != nil {
		return nil, err
	}
	return &u, nil
}

// userColumns are the columns User scans.
const userColumns = `id, username, email, full_name, password_hash, token_generation, created_at`

// UpdateUser changes the email and/or full name of the user with id (a nil
// one stays), records the event, and returns the user as updated. It
// returns an *account.Error when a value breaks an account rule, a
// *ConflictError naming "email" when another user has it, without regard
// to case, and ErrNotFound when the user is gone.
func (s *DB) UpdateUser(ctx context.Context, id uuid.UUID, email, fullName *string, by Actor) (_ *User, err error) {
	defer classify(&err, "update user")
	if email != nil {
		if err := account.CheckEmail(*email); err != nil {
			return nil, err
		}
	}
	if fullName != nil {
		if err := account.CheckFullName(*fullName); err != nil {
			return nil, err
		}
	}
	var u User
	err = s.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &u, `UPDATE users SET email = coalesce($2, email), full_name = coalesce($3, full_name)
			WHERE id = $1 RETURNING `+userColumns, id, email, fullName); err != nil {
			return err
		}
		return record(ctx, tx, id, EventProfileUpdated, by, nil)
	})
	if pq.As(err, pqerror.UniqueViolation) != nil {
		return nil, &ConflictError{Fields: []string{"email"}}
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// ChangePassword replaces the password hash of the user with id, if it is
// still oldHash, ends every token issued so far (the token generation
// goes up), and records the event. It returns ErrChanged when the hash
// changed meanwhile (a concurrent change: the current password is no
// longer the one checked), and ErrNotFound when the user is gone.
func (s *DB) ChangePassword(ctx context.Context, id uuid.UUID, oldHash, newHash string, by Actor) (err error) {
	defer classify(&err, "change password")
	return s.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = $3, token_generation = token_generation + 1
			WHERE id = $1 AND password_hash = $2`, id, oldHash, newHash)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var one int
			if err := tx.GetContext(ctx, &one, `SELECT 1 FROM users WHERE id = $1`, id); err != nil {
				return err
			}
			return ErrChanged
		}
		return record(ctx, tx, id, EventPasswordChanged, by, nil)
	})
}

// EndToken ends the user's access token jti, which would expire at
// expires, and records the sign-out. Ending an ended token succeeds.
func (s *DB) EndToken(ctx context.Context, id uuid.UUID, jti string, expires time.Time, by Actor) (err error) {
	defer classify(&err, "end token")
	return s.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO ended_tokens (jti, user_id, expires_at) VALUES ($1, $2, $3)
			ON CONFLICT (jti) DO NOTHING`, jti, id, expires); err != nil {
			if isForeignKeyViolation(err) {
				return sql.ErrNoRows
			}
			return err
		}
		return record(ctx, tx, id, EventLoggedOut, by, nil)
	})
}

// EndAllTokens ends every access token of the user issued so far (the
// token generation goes up) and records the sign-out. It returns
// ErrNotFound when the user is gone.
func (s *DB) EndAllTokens(ctx context.Context, id uuid.UUID, by Actor) (err error) {
	defer classify(&err, "end all tokens")
	return s.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET token_generation = token_generation + 1 WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return sql.ErrNoRows
		}
		return record(ctx, tx, id, EventLoggedOut, by, nil)
	})
}

// DeleteUser deletes the user with id, and with it every key, ended token
// and event of theirs. It returns ErrNotFound when there is no such user.
func (s *DB) DeleteUser(ctx context.Context, id uuid.UUID) (err error) {
	defer classify(&err, "delete user")
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	res, err := s.db.ExecContext(ctx, `DELETE FROM users WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// CommitNothing commits a transaction that changes nothing but is
// written and flushed like a recorded event, so that a login for an
// unknown username takes as long as a failed one, which records its event.
func (s *DB) CommitNothing(ctx context.Context) (err error) {
	defer classify(&err, "commit nothing")
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	// A transaction with an ID writes a commit record and waits for it to
	// be flushed, as an insert's does.
	_, err = s.db.ExecContext(ctx, `SELECT pg_current_xact_id()`)
	return err
}

// ForgetEndedTokens deletes the ended tokens past their expiry, which no
// check needs any more, and returns how many it deleted.
func (s *DB) ForgetEndedTokens(ctx context.Context) (int64, error) {
	return s.inBatches(ctx, "forget ended tokens", `DELETE FROM ended_tokens WHERE jti IN (
		SELECT jti FROM ended_tokens WHERE expires_at < clock_timestamp() LIMIT $1 FOR UPDATE SKIP LOCKED)`)
}

// SetPasswordHash replaces the user's password hash, e.g. to upgrade its
// parameters after a successful login. It returns ErrNotFound for an
// unknown id.
func (s *DB) SetPasswordHash(ctx context.Context, id uuid.UUID, hash string) (err error) {
	defer classify(&err, "set password hash")
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	res, err := s.db.ExecContext(ctx, `UPDATE users SET password_hash = $2 WHERE id = $1`, id, hash)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}
