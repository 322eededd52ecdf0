package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"authapi/account"
)

// APIKey is a stored API key. The raw key is never stored, only its digest.
type APIKey struct {
	ID         uuid.UUID      `db:"id"`
	UserID     uuid.UUID      `db:"user_id"`
	Name       string         `db:"name"`
	Prefix     string         `db:"prefix"`
	Digest     []byte         `db:"digest"`
	Scopes     pq.StringArray `db:"scopes"`
	CreatedAt  time.Time      `db:"created_at"`
	RevokedAt  *time.Time     `db:"revoked_at"`
	ExpiresAt  *time.Time     `db:"expires_at"`
	LastUsedAt *time.Time     `db:"last_used_at"`
	// LifetimeSeconds is the lifetime the key was created with, which a
	// rotation renews (nil: the key never expires).
	LifetimeSeconds *int64 `db:"lifetime_seconds"`
}

// ActiveAt reports whether the key works at now: not revoked, not expired.
func (k *APIKey) ActiveAt(now time.Time) bool {
	return k.RevokedAt == nil && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt))
}

// keyColumns are the columns APIKey scans, in order.
const keyColumns = `id, user_id, name, prefix, digest, scopes, created_at, revoked_at, expires_at, last_used_at, lifetime_seconds`

// CreateAPIKey inserts k for k.UserID, sets its ID and CreatedAt, and
// records the event by made, in one transaction. When
// maxActive > 0 and the user already has that many keys working at now
// (neither revoked nor expired), it returns ErrKeyLimit. It returns
// ErrNotFound when the user does not exist.
func (s *DB) CreateAPIKey(ctx context.Context, k *APIKey, now time.Time, maxActive int, by Actor) (err error) {
	defer classify(&err, "create api key")
	return s.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		// Locking the user's row serialises concurrent creations for one
		// user, so the cap holds exactly, and proves the user still exists.
		// The count must be a statement of its own: under READ COMMITTED
		// each statement sees what was committed before it began, and one
		// that waited for the lock began too early.
		var one int
		if err := tx.GetContext(ctx, &one, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, k.UserID); err != nil {
			return err
		}
		if maxActive > 0 {
			var active int
			if err := tx.GetContext(ctx, &active, `SELECT count(*) FROM api_keys
				WHERE user_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)`, k.UserID, *floorMicro(&now)); err != nil {
				return err
			}
			if active >= maxActive {
				return ErrKeyLimit
			}
		}
		if err := insertKey(ctx, tx, k); err != nil {
			return err
		}
		return record(ctx, tx, k.UserID, EventKeyCreated, by, k)
	})
}

func insertKey(ctx context.Context, tx *sqlx.Tx, k *APIKey) error {
	if len(k.Scopes) == 0 {
		k.Scopes = AllScopes
	}
	if err := account.CheckKeyName(k.Name); err != nil {
		return err
	}
	if err := account.CheckScopes(k.Scopes); err != nil {
		return err
	}
	k.ExpiresAt = floorMicro(k.ExpiresAt)
	return tx.QueryRowxContext(ctx,
		`INSERT INTO api_keys (user_id, name, prefix, digest, scopes, expires_at, lifetime_seconds) VALUES ($1, $2, $3, $4, $5, $6, $7)
		 RETURNING id, created_at`, k.UserID, k.Name, k.Prefix, k.Digest, k.Scopes, k.ExpiresAt, k.LifetimeSeconds).Scan(&k.ID, &k.CreatedAt)
}

// floorMicro truncates t to PostgreSQL's precision. PostgreSQL would
// round, and rounding up could let a key work a moment past its end.
func floorMicro(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	f := t.Truncate(time.Microsecond)
	return &f
}

// AllScopes are every scope a key can have, a new key's default.
var AllScopes = pq.StringArray{"me:read", "me:write"}

// Rotation says how RotateAPIKey replaces a key.
type Rotation struct {
	// Now is the clock. It is read once the user's row is locked, so that
	// of concurrent rotations of one key each sees the end the one before
	// gave it: with no grace, exactly one succeeds.
	Now func() time.Time
	// Grace is how long the old key keeps working (never past its own
	// expiry, and never extending an end a rotation already set).
	Grace time.Duration
	// MaxActive caps the user's active keys, the old one not counted
	// (0: no cap).
	MaxActive int
	// Lifetime, when not nil, computes the new key's expiry from the old
	// key at now.
	Lifetime func(old *APIKey, now time.Time) *time.Time
	// By is who rotates, for the security event.
	By Actor
}

// RotateAPIKey replaces the user's key oldID, which must work at r.Now(),
// by next (for next.UserID), which inherits the old key's name, scopes and
// lifetime, and ends the old key after r.Grace. It returns the old key as
// it now stands, ErrNotFound when no such working key is the user's, and
// ErrKeyLimit when the cap is reached.
func (s *DB) RotateAPIKey(ctx context.Context, oldID uuid.UUID, next *APIKey, r Rotation) (_ *APIKey, err error) {
	defer classify(&err, "rotate api key")
	var old APIKey
	err = s.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		var one int
		if err := tx.GetContext(ctx, &one, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, next.UserID); err != nil {
			return err
		}
		now := r.Now()
		graceEnd := now.Add(r.Grace)
		if err := tx.GetContext(ctx, &old, `SELECT `+keyColumns+` FROM api_keys
			WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3)
			FOR UPDATE`, oldID, next.UserID, *floorMicro(&now)); err != nil {
			return err
		}
		if r.MaxActive > 0 {
			var active int
			if err := tx.GetContext(ctx, &active, `SELECT count(*) FROM api_keys
				WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3)`,
				next.UserID, oldID, *floorMicro(&now)); err != nil {
				return err
			}
			if active >= r.MaxActive {
				return ErrKeyLimit
			}
		}
		next.Name, next.Scopes, next.LifetimeSeconds = old.Name, old.Scopes, old.LifetimeSeconds
		if r.Lifetime != nil {
			next.ExpiresAt = r.Lifetime(&old, now)
		}
		if err := insertKey(ctx, tx, next); err != nil {
			return err
		}
		// Never extend: a second rotation within the grace period keeps
		// the sooner end.
		if err := tx.GetContext(ctx, &old.ExpiresAt, `UPDATE api_keys SET expires_at = least(coalesce(expires_at, $2), $2)
			WHERE id = $1 RETURNING expires_at`, oldID, *floorMicro(&graceEnd)); err != nil {
			return err
		}
		return record(ctx, tx, next.UserID, EventKeyRotated, r.By, &old)
	})
	if err != nil {
		return nil, err
	}
	return &old, nil
}

// RecordKeyUses sets last_used_at of each key to its time, truncated to the
// minute, unless the row already says that minute or later: several
// instances reporting one use write the row once. It returns the owners of
// the keys it changed. The keys are written in statements of at most
// keyUseBatch, each under the statement timeout; on an error it returns the
// owners of those written before, and the uses it did not write.
func (s *DB) RecordKeyUses(ctx context.Context, uses map[uuid.UUID]time.Time) (owners []uuid.UUID, unwritten map[uuid.UUID]time.Time, err error) {
	defer classify(&err, "record key uses")
	ids := make([]uuid.UUID, 0, len(uses))
	for id := range uses {
		ids = append(ids, id)
	}
	for start := 0; start < len(ids); start += keyUseBatch {
		batch := ids[start:min(start+keyUseBatch, len(ids))]
		changed, err := s.recordKeyUses(ctx, batch, uses)
		if err != nil {
			unwritten = make(map[uuid.UUID]time.Time, len(ids)-start)
			for _, id := range ids[start:] {
				unwritten[id] = uses[id]
			}
			return owners, unwritten, err
		}
		owners = append(owners, changed...)
	}
	return owners, nil, nil
}

// keyUseBatch bounds the keys one statement of RecordKeyUses updates, so
// that a large backlog is written within the statement timeout
// (BENCHMARKS.md, "Growth").
const keyUseBatch = 1000

// recordKeyUses writes the uses of the keys ids in one statement.
func (s *DB) recordKeyUses(ctx context.Context, ids []uuid.UUID, uses map[uuid.UUID]time.Time) (owners []uuid.UUID, err error) {
	idText := make([]string, len(ids))
	times := make([]string, len(ids))
	for i, id := range ids {
		idText[i] = id.String()
		times[i] = uses[id].UTC().Truncate(time.Minute).Format(time.RFC3339)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	err = s.db.SelectContext(ctx, &owners, `UPDATE api_keys k SET last_used_at = u.at
		FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at)
		WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)
		RETURNING k.user_id`,
		pq.Array(idText), pq.Array(times))
	return owners, err
}

// Position is where a page of a listing newest first starts: after the
// item created at CreatedAt with ID (ties of time are ordered by ID).
type Position struct {
	CreatedAt time.Time
	ID        uuid.UUID
}

// Page asks for at most Limit items after After (nil: from the newest).
type Page struct {
	Limit int
	After *Position
}

// ListAPIKeys returns a page of the user's keys, newest first, revoked
// ones included, with one key more than asked for when more remain.
func (s *DB) ListAPIKeys(ctx context.Context, userID uuid.UUID, page Page) (_ []APIKey, err error) {
	defer classify(&err, "list api keys")
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var rows *sql.Rows
	if page.After == nil {
		rows, err = s.readPage(ctx, "authapi_list_keys_page", listKeysSQL, userID, page.Limit+1)
	} else {
		rows, err = s.db.QueryContext(ctx, listKeysAfterSQL, userID, page.Limit+1, page.After.CreatedAt, page.After.ID)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	keys := []APIKey{}
	for rows.Next() {
		// Scanned by hand, not by sqlx, for speed (BENCHMARKS.md).
		var k APIKey
		if err := rows.Scan(&k.ID, &k.UserID, &k.Name, &k.Prefix, &k.Digest, &k.Scopes, &k.CreatedAt, &k.RevokedAt,
			&k.ExpiresAt, &k.LastUsedAt, &k.LifetimeSeconds); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return keys, nil
}

// DeleteRetiredKeys deletes the keys revoked, or expired, more than
// retention ago (by the database's clock), a batch at a time, and returns
// how many it deleted. Several instances may run it at once.
func (s *DB) DeleteRetiredKeys(ctx context.Context, retention time.Duration) (int64, error) {
	return s.inBatches(ctx, "delete retired keys", `DELETE FROM api_keys WHERE id IN (
		SELECT id FROM api_keys
		WHERE revoked_at < clock_timestamp() - make_interval(secs => $1)
		   OR expires_at < clock_timestamp() - make_interval(secs => $1)
		LIMIT $2 FOR UPDATE SKIP LOCKED)`, retention.Seconds())
}

// RevokeAPIKey revokes the user's key keyID, records the event, and
// returns the key's digest. Revoking a revoked key succeeds, keeps the
// first revocation time and records nothing. It returns ErrNotFound when
// the key does not exist or is another user's.
func (s *DB) RevokeAPIKey(ctx context.Context, userID, keyID uuid.UUID, by Actor) (digest []byte, err error) {
	defer classify(&err, "revoke api key")
	err = s.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		var k APIKey
		if err := tx.GetContext(ctx, &k, `SELECT `+keyColumns+` FROM api_keys WHERE id = $1 AND user_id = $2 FOR UPDATE`,
			keyID, userID); err != nil {
			return err
		}
		digest = k.Digest
		if k.RevokedAt != nil {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE api_keys SET revoked_at = clock_timestamp() WHERE id = $1`, keyID); err != nil {
			return err
		}
		return record(ctx, tx, userID, EventKeyRevoked, by, &k)
	})
	return digest, err
}

// KeyOwner is what an unrevoked API key authenticates as: the key, its
// limits and its owner (without the password hash). It is what the server
// caches per key digest, and checks on every use (the expiry, the scopes).
type KeyOwner struct {
	KeyID     uuid.UUID
	User      User
	Scopes    pq.StringArray
	ExpiresAt *time.Time
}

// APIKeyOwner returns the unrevoked key with digest and its owner, expired
// or not (the caller judges expiry with its own clock, so that it can say
// "expired" rather than "unknown"), or ErrNotFound.
func (s *DB) APIKeyOwner(ctx context.Context, digest []byte) (_ *KeyOwner, err error) {
	defer classify(&err, "api key owner")
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var o KeyOwner
	err = scanOne(s.readDigest(ctx, "authapi_key_owner", keyOwnerSQL, digest))(
		&o.KeyID, &o.User.ID, &o.User.Username, &o.User.Email, &o.User.FullName, &o.User.CreatedAt, &o.Scopes, &o.ExpiresAt)
	if err != nil {
		return nil, err
	}
	return &o, nil
}
