package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"authapi/apikey"
	"authapi/credcache"
	"authapi/gen"
	"authapi/store"
)

// maxGrace bounds a rotation's grace period (the spec says so too).
const maxGrace = 7 * 24 * time.Hour

// CreateAPIKey makes a key for the caller and shows it this once.
// (POST /v1/auth/api-keys)
func (s *Server) CreateAPIKey(ctx context.Context, req gen.CreateAPIKeyRequestObject) (gen.CreateAPIKeyResponseObject, error) {
	p, err := s.keyWriter(ctx)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	expires, err := s.expiry(now, req.Body.ExpiresAt)
	if err != nil {
		return nil, err
	}
	var scopes []string
	if req.Body.Scopes != nil {
		for _, sc := range *req.Body.Scopes {
			scopes = append(scopes, string(sc))
		}
	}
	k, raw, err := s.newKey(p.userID)
	if err != nil {
		return nil, err
	}
	k.Name, k.Scopes, k.ExpiresAt = req.Body.Name, scopes, expires
	if expires != nil {
		// Whole seconds, rounded up: the lifetime a rotation renews.
		secs := int64((expires.Sub(now) + time.Second - 1) / time.Second)
		k.LifetimeSeconds = &secs
	}
	err = s.cfg.Store.CreateAPIKey(ctx, k, now, s.cfg.MaxActiveKeys, actor(ctx))
	if errors.Is(err, store.ErrNotFound) { // the user was deleted since the token was checked
		return nil, userGone().problem()
	}
	if err != nil {
		return nil, err
	}
	s.keysChanged(p.userID, nil)
	return gen.CreateAPIKey200JSONResponse{Body: createdBody(k, raw)}, nil
}

// keyWriter returns the principal of a request that changes its user's
// keys, after counting it against Config.KeyWritesPerUser.
func (s *Server) keyWriter(ctx context.Context) (*principal, error) {
	p, err := principalFrom(ctx)
	if err != nil {
		return nil, err
	}
	if ok, wait := s.limits.keyWrites.Allow(p.userID.String(), time.Now()); !ok {
		info := infoFrom(ctx)
		info.event, info.reason = eventKeyWritesThrottled, "too many key changes for this user"
		return nil, refuseKeyChanges.after(wait)
	}
	return p, nil
}

// expiry checks a requested expiry against the lifetime bound, or applies
// the default lifetime when there is none.
func (s *Server) expiry(now time.Time, requested *time.Time) (*time.Time, error) {
	switch {
	case requested == nil && s.cfg.KeyDefaultLifetime > 0:
		t := now.Add(s.cfg.KeyDefaultLifetime)
		return &t, nil
	case requested == nil:
		return nil, nil
	case !requested.After(now):
		return nil, validationProblem([]gen.FieldError{{Field: "expires_at", Message: "must be in the future"}})
	case s.cfg.KeyMaxLifetime > 0 && requested.After(now.Add(s.cfg.KeyMaxLifetime)):
		return nil, validationProblem([]gen.FieldError{{Field: "expires_at",
			Message: "must be at most " + days(s.cfg.KeyMaxLifetime) + " ahead"}})
	}
	// PostgreSQL keeps microseconds; flooring here, not rounding there,
	// keeps the stored expiry and the lifetime derived from it exact.
	t := requested.UTC().Truncate(time.Microsecond)
	return &t, nil
}

// days words a lifetime for a person.
func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		if n := int(d / (24 * time.Hour)); n != 1 {
			return fmt.Sprintf("%d days", n)
		}
		return "1 day"
	}
	return d.String()
}

// newKey draws a key for user: the stored part and the raw key.
func (s *Server) newKey(user uuid.UUID) (*store.APIKey, string, error) {
	raw, err := apikey.Generate(rand.Reader)
	if err != nil {
		return nil, "", err
	}
	return &store.APIKey{UserID: user, Prefix: apikey.DisplayPrefix(raw), Digest: s.cfg.Keys.Digest(raw)}, raw, nil
}

func createdBody(k *store.APIKey, raw string) gen.CreatedAPIKey {
	return gen.CreatedAPIKey{
		ID: k.ID, Name: k.Name, RawKey: raw, Prefix: k.Prefix, IsActive: true, CreatedAt: k.CreatedAt,
		ExpiresAt: k.ExpiresAt, Scopes: scopesBody(k.Scopes),
	}
}

func scopesBody(scopes []string) []gen.Scope {
	out := make([]gen.Scope, len(scopes))
	for i, sc := range scopes {
		out[i] = gen.Scope(sc)
	}
	return out
}

// userGone is the refusal of a token whose user no longer exists.
func userGone() *authFailure {
	return &authFailure{scheme: schemeBearer, sent: true, reason: "user gone",
		detail: "The user of this access token no longer exists."}
}

// ListAPIKeys lists a page of the caller's keys, newest first.
// (GET /v1/auth/api-keys)
func (s *Server) ListAPIKeys(ctx context.Context, req gen.ListAPIKeysRequestObject) (gen.ListAPIKeysResponseObject, error) {
	p, err := principalFrom(ctx)
	if err != nil {
		return nil, err
	}
	pg, err := page(req.Params.Limit, req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	// The first page of the default size is served from the cache when it
	// can be: it changes only through writes every instance hears of
	// (package credcache), or by a key reaching its expiry, when the entry
	// ends. A change made through another instance may still be on its
	// way: hear all that committed before this request first.
	cacheable := pg.After == nil && pg.Limit == defaultPageSize
	var epoch credcache.Epoch
	if cacheable {
		var ok bool
		if _, ok, epoch = s.cache.List(p.userID, s.cfg.Now()); ok && s.heardAll(ctx) {
			var l credcache.Listing
			if l, ok, epoch = s.cache.List(p.userID, s.cfg.Now()); ok {
				s.metrics.listCached.Inc()
				return listing(l), nil
			}
		}
	}
	s.metrics.listRead.Inc()
	keys, err := s.cfg.Store.ListAPIKeys(ctx, p.userID, pg)
	if err != nil {
		return nil, err
	}
	keys, link := onePage(keys, pg, "/v1/auth/api-keys", func(k store.APIKey) (time.Time, uuid.UUID) { return k.CreatedAt, k.ID })
	now := s.cfg.Now()
	var changes time.Time // the first expiry still to come
	body := make([]gen.APIKey, len(keys))
	for i, k := range keys {
		active := k.ActiveAt(now)
		if active && k.ExpiresAt != nil && (changes.IsZero() || k.ExpiresAt.Before(changes)) {
			changes = *k.ExpiresAt
		}
		body[i] = gen.APIKey{
			ID: k.ID, Name: k.Name, Prefix: k.Prefix, IsActive: active, CreatedAt: k.CreatedAt,
			RevokedAt: k.RevokedAt, ExpiresAt: k.ExpiresAt, LastUsedAt: k.LastUsedAt, Scopes: scopesBody(k.Scopes),
		}
	}
	// Encoded as gen.ListAPIKeys200JSONResponse would.
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(body); err != nil {
		return nil, err
	}
	// A copy of the length it needs: the cache counts lengths.
	encoded := bytes.Clone(buf.Bytes())
	if cacheable {
		s.cache.PutList(p.userID, credcache.Listing{Body: encoded, Link: link}, changes, epoch)
	}
	return listing{Body: encoded, Link: link}, nil
}

// keysChanged is called after a committed change to user's keys: this
// instance forgets what the change made stale at once (with no grace, a
// revoked or rotated key must fail on the very next request); the others
// hear of it from the database.
func (s *Server) keysChanged(user uuid.UUID, digest []byte) {
	s.cache.Changed(store.Change{Digest: digest, KeysOf: user})
}

// RevokeAPIKey revokes one of the caller's keys.
// (DELETE /v1/auth/api-keys/{key_id})
func (s *Server) RevokeAPIKey(ctx context.Context, req gen.RevokeAPIKeyRequestObject) (gen.RevokeAPIKeyResponseObject, error) {
	p, err := s.keyWriter(ctx)
	if err != nil {
		return nil, err
	}
	digest, err := s.cfg.Store.RevokeAPIKey(ctx, p.userID, req.KeyID, actor(ctx))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errKeyNotFound
	}
	if err != nil {
		return nil, err
	}
	s.keysChanged(p.userID, digest)
	return gen.RevokeAPIKey204Response{}, nil
}

// RotateAPIKey replaces one of the caller's working keys with a new one of
// the same name, scopes and lifetime; the old one works until the grace
// period ends.
// (POST /v1/auth/api-keys/{key_id}/rotate)
func (s *Server) RotateAPIKey(ctx context.Context, req gen.RotateAPIKeyRequestObject) (gen.RotateAPIKeyResponseObject, error) {
	p, err := s.keyWriter(ctx)
	if err != nil {
		return nil, err
	}
	var grace time.Duration
	if req.Body != nil && req.Body.GraceSeconds != nil {
		grace = time.Duration(*req.Body.GraceSeconds) * time.Second
	}
	if grace < 0 || grace > maxGrace { // the spec's bounds, checked already
		return nil, validationProblem([]gen.FieldError{{Field: "grace_seconds", Message: "is out of range"}})
	}
	next, raw, err := s.newKey(p.userID)
	if err != nil {
		return nil, err
	}
	old, err := s.cfg.Store.RotateAPIKey(ctx, req.KeyID, next, store.Rotation{
		Now: s.cfg.Now, Grace: grace, MaxActive: s.cfg.MaxActiveKeys, By: actor(ctx),
		// The new key lives as long as the old one was created to live,
		// counted from now, within the lifetime bound: rotation renews a key.
		Lifetime: func(old *store.APIKey, now time.Time) *time.Time {
			if old.LifetimeSeconds == nil {
				return nil
			}
			d := time.Duration(*old.LifetimeSeconds) * time.Second
			if max := s.cfg.KeyMaxLifetime; max > 0 && d > max {
				d = max
			}
			end := now.Add(d)
			return &end
		},
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, errKeyNotFound
	}
	if err != nil {
		return nil, err
	}
	// The old key's end moved, and there is a new key.
	s.keysChanged(p.userID, old.Digest)
	return gen.RotateAPIKey200JSONResponse{Body: createdBody(next, raw)}, nil
}
