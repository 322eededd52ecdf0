package server

// CacheListening reports whether the credential cache is in use: it hears
// the database's change notifications.
func (s *Server) CacheListening() bool { return s.cache.listening() }

// CacheSize returns the number of cached API keys and JWT users.
func (s *Server) CacheSize() (keys, users int) { return s.cache.size() }

// FlushCache empties the credential cache, so that the next check reads
// the database.
func (s *Server) FlushCache() { s.cache.flush() }
