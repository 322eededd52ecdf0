package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// APIKey is a stored API key. The raw key is never stored, only its digest.
type APIKey struct {
	ID        uuid.UUID  `db:"id"`
	UserID    uuid.UUID  `db:"user_id"`
	Name      string     `db:"name"`
	Prefix    string     `db:"prefix"`
	Digest    []byte     `db:"digest"`
	CreatedAt time.Time  `db:"created_at"`
	RevokedAt *time.Time `db:"revoked_at"`
}

// Active reports whether the key has not been revoked.
func (k *APIKey) Active() bool { return k.RevokedAt == nil }

// CreateAPIKey inserts k for k.UserID and sets its ID and CreatedAt. When
// maxActive > 0 and the user already has that many active keys, it returns
// a *ConflictError. It returns ErrNotFound when the user does not exist.
func (s *DB) CreateAPIKey(ctx context.Context, k *APIKey, maxActive int) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return wrap(err, "create api key")
	}
	defer tx.Rollback()
	// Locking the user's row serialises concurrent creations for one user,
	// so the cap holds exactly, and proves the user still exists. The count
	// must be a statement of its own: under READ COMMITTED each statement
	// sees what was committed before it began, and one that waited for the
	// lock began too early.
	var one int
	if err := tx.GetContext(ctx, &one, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, k.UserID); err != nil {
		return wrap(err, "create api key")
	}
	var active int
	if maxActive > 0 {
		err = tx.GetContext(ctx, &active, `SELECT count(*) FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL`, k.UserID)
		if err != nil {
			return wrap(err, "create api key")
		}
	}
	if maxActive > 0 && active >= maxActive {
		return &ConflictError{Reason: fmt.Sprintf("you already have %d active API keys, the most allowed; revoke one first", active)}
	}
	err = tx.QueryRowxContext(ctx,
		`INSERT INTO api_keys (user_id, name, prefix, digest) VALUES ($1, $2, $3, $4)
		 RETURNING id, created_at`, k.UserID, k.Name, k.Prefix, k.Digest).Scan(&k.ID, &k.CreatedAt)
	if err != nil {
		return wrap(err, "create api key")
	}
	return wrap(tx.Commit(), "create api key")
}

// ListAPIKeys returns the user's keys, newest first, revoked ones included.
func (s *DB) ListAPIKeys(ctx context.Context, userID uuid.UUID) ([]APIKey, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	// Scanned by hand: sqlx's reflection was a tenth of a listing's CPU.
	rows, err := s.readID(ctx, "authapi_list_keys", listKeysSQL, userID)
	if err != nil {
		return nil, wrap(err, "list api keys")
	}
	defer rows.Close()
	keys := []APIKey{}
	for rows.Next() {
		var k APIKey
		if err := rows.Scan(&k.ID, &k.UserID, &k.Name, &k.Prefix, &k.Digest, &k.CreatedAt, &k.RevokedAt); err != nil {
			return nil, wrap(err, "list api keys")
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "list api keys")
	}
	return keys, nil
}

// RevokeAPIKey revokes the user's key keyID and returns its digest.
// Revoking a revoked key succeeds and keeps the first revocation time. It
// returns ErrNotFound when the key does not exist or is another user's.
func (s *DB) RevokeAPIKey(ctx context.Context, userID, keyID uuid.UUID) (digest []byte, err error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	err = s.db.GetContext(ctx, &digest,
		`UPDATE api_keys SET revoked_at = coalesce(revoked_at, clock_timestamp())
		 WHERE id = $1 AND user_id = $2 RETURNING digest`, keyID, userID)
	if err != nil {
		return nil, wrap(err, "revoke api key")
	}
	return digest, nil
}

// KeyOwner is what an active API key authenticates as: the key and its
// owner. It is what the server caches per key digest, so that a later field
// the server must check on every use (an expiry, say) belongs here.
type KeyOwner struct {
	KeyID uuid.UUID
	User  User
}

// APIKeyOwner returns the active key with digest and its owner (without
// the password hash), or ErrNotFound when no active key has it.
func (s *DB) APIKeyOwner(ctx context.Context, digest []byte) (*KeyOwner, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var o KeyOwner
	err := scanOne(s.readDigest(ctx, "authapi_key_owner", keyOwnerSQL, digest))(
		&o.KeyID, &o.User.ID, &o.User.Username, &o.User.Email, &o.User.FullName, &o.User.CreatedAt)
	if err != nil {
		return nil, wrap(err, "api key owner")
	}
	return &o, nil
}
