package server

import (
	"github.com/google/uuid"

	"authapi/store"
)

// CacheListening reports whether the credential cache is in use: it hears
// the database's change notifications.
func (s *Server) CacheListening() bool { return s.cache.Enabled() }

// CacheSize returns the number of cached API keys and JWT users.
func (s *Server) CacheSize() (keys, users int) { st := s.cache.Stats(); return st.Keys, st.Users }

// FlushCache empties the credential cache, so that the next check reads
// the database.
func (s *Server) FlushCache() { s.cache.Changed(store.Change{All: true}) }

// ListingCached reports whether the user's key listing is cached.
func (s *Server) ListingCached(user uuid.UUID) bool {
	_, ok, _ := s.cache.List(user, s.cfg.Now())
	return ok
}
