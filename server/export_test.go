package server

// CacheListening reports whether the credential cache is in use: it hears
// the database's change notifications.
func (s *Server) CacheListening() bool {
	s.cache.mu.RLock()
	defer s.cache.mu.RUnlock()
	return s.cache.enabled
}

// CacheSize returns the number of cached API keys and JWT users.
func (s *Server) CacheSize() (keys, users int) { return s.cache.size() }
