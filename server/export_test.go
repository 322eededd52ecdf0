package server

import (
	"github.com/google/uuid"

	"authapi/store"
)

// CacheListening reports whether the credential cache is in use: it hears
// the database's change notifications.
func (s *Server) CacheListening() bool { return s.cache.listening() }

// CacheSize returns the number of cached API keys and JWT users.
func (s *Server) CacheSize() (keys, users int) { st := s.cache.stats(); return st.keys, st.users }

// FlushCache empties the credential cache, so that the next check reads
// the database.
func (s *Server) FlushCache() { s.cache.Changed(store.Change{All: true}) }

// ListingCached reports whether the user's key listing is cached.
func (s *Server) ListingCached(user uuid.UUID) bool {
	e, _ := s.cache.list(user, s.now())
	return e != nil
}

// FlushLogSummaries writes the summary of the requests the log left out,
// as the background work does every interval.
func (s *Server) FlushLogSummaries() { s.logs.flush(s.log) }
