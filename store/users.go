package store

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"authapi/account"
)

// User is an account.
type User struct {
	ID           uuid.UUID `db:"id"`
	Username     string    `db:"username"` // as registered
	Email        string    `db:"email"`    // as registered
	FullName     string    `db:"full_name"`
	PasswordHash string    `db:"password_hash"` // argon2id PHC string
	CreatedAt    time.Time `db:"created_at"`
}

// CreateUser inserts u and sets its ID and CreatedAt. It returns an
// *account.Error when u breaks an account rule, and a *ConflictError naming
// "username" and/or "email" when either is taken, without regard to case.
func (s *DB) CreateUser(ctx context.Context, u *User) error {
	if err := checkUser(u); err != nil {
		return err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	err := s.db.QueryRowxContext(ctx,
		`INSERT INTO users (username, email, full_name, password_hash)
		 VALUES ($1, $2, $3, $4) RETURNING id, created_at`,
		u.Username, u.Email, u.FullName, u.PasswordHash).Scan(&u.ID, &u.CreatedAt)
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "23505" {
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
	return wrap(err, "create user")
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
func (s *DB) TakenFields(ctx context.Context, username, email string) ([]string, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var taken struct {
		Username bool `db:"username"`
		Email    bool `db:"email"`
	}
	err := s.db.GetContext(ctx, &taken,
		`SELECT coalesce(bool_or(lower(username) = lower($1)), false) AS username,
		        coalesce(bool_or(lower(email) = lower($2)), false) AS email
		 FROM users WHERE lower(username) = lower($1) OR lower(email) = lower($2)`,
		username, email)
	if err != nil {
		return nil, wrap(err, "taken fields")
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
func (s *DB) UserByUsername(ctx context.Context, username string) (*User, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var u User
	err := s.db.GetContext(ctx, &u,
		`SELECT id, username, email, full_name, password_hash, created_at
		 FROM users WHERE lower(username) = lower($1)`, username)
	if err != nil {
		return nil, wrap(err, "user by username")
	}
	return &u, nil
}

// UserExists reports whether the user with id exists.
func (s *DB) UserExists(ctx context.Context, id uuid.UUID) (bool, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var ok bool
	err := scanOne(s.readID(ctx, "authapi_user_exists", userExistsSQL, id))(&ok)
	return ok, wrap(err, "user exists")
}

// SetPasswordHash replaces the user's password hash, e.g. to upgrade its
// parameters after a successful login. It returns ErrNotFound for an
// unknown id.
func (s *DB) SetPasswordHash(ctx context.Context, id uuid.UUID, hash string) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	res, err := s.db.ExecContext(ctx, `UPDATE users SET password_hash = $2 WHERE id = $1`, id, hash)
	if err != nil {
		return wrap(err, "set password hash")
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return wrap(ErrNotFound, "set password hash")
	}
	return nil
}
