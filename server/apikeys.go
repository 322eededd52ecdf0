package server

import (
	"context"
	"crypto/rand"
	"errors"

	"authapi/apikey"
	"authapi/gen"
	"authapi/store"
)

// CreateAPIKey makes a key for the caller and shows it this once.
// (POST /v1/auth/api-keys)
func (s *Server) CreateAPIKey(ctx context.Context, req gen.CreateAPIKeyRequestObject) (gen.CreateAPIKeyResponseObject, error) {
	p, err := principalFrom(ctx)
	if err != nil {
		return nil, err
	}
	raw, err := apikey.Generate(rand.Reader)
	if err != nil {
		return nil, err
	}
	k := &store.APIKey{UserID: p.userID, Name: req.Body.Name, Prefix: apikey.DisplayPrefix(raw), Digest: s.keys.Digest(raw)}
	err = s.store.CreateAPIKey(ctx, k, s.cfg.MaxActiveKeys)
	if errors.Is(err, store.ErrNotFound) { // the user was deleted since the token was checked
		return nil, (&authFailure{scheme: schemeBearer, sent: true, reason: "user gone",
			detail: "The user of this access token no longer exists."}).problem()
	}
	if err != nil {
		return nil, err
	}
	return gen.CreateAPIKey200JSONResponse{Body: gen.CreatedAPIKey{
		ID: k.ID, Name: k.Name, RawKey: raw, Prefix: k.Prefix, IsActive: true, CreatedAt: k.CreatedAt,
	}}, nil
}

// ListAPIKeys lists the caller's keys, newest first.
// (GET /v1/auth/api-keys)
func (s *Server) ListAPIKeys(ctx context.Context, _ gen.ListAPIKeysRequestObject) (gen.ListAPIKeysResponseObject, error) {
	p, err := principalFrom(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := s.store.ListAPIKeys(ctx, p.userID)
	if err != nil {
		return nil, err
	}
	body := make([]gen.APIKey, len(keys))
	for i, k := range keys {
		body[i] = gen.APIKey{ID: k.ID, Name: k.Name, Prefix: k.Prefix, IsActive: k.Active(), CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt}
	}
	return gen.ListAPIKeys200JSONResponse{Body: body}, nil
}

// RevokeAPIKey revokes one of the caller's keys.
// (DELETE /v1/auth/api-keys/{key_id})
func (s *Server) RevokeAPIKey(ctx context.Context, req gen.RevokeAPIKeyRequestObject) (gen.RevokeAPIKeyResponseObject, error) {
	p, err := principalFrom(ctx)
	if err != nil {
		return nil, err
	}
	digest, err := s.store.RevokeAPIKey(ctx, p.userID, req.KeyID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errKeyNotFound
	}
	if err != nil {
		return nil, err
	}
	// This instance refuses the key from the very next request; the others
	// hear of it from the database (credcache.go).
	s.cache.dropKey(digest)
	return gen.RevokeAPIKey204Response{}, nil
}
