package store

import "context"

// Exec runs a statement on the pool, for tests that need to reach behind
// the store's back.
func (s *DB) Exec(ctx context.Context, query string) error {
	_, err := s.db.ExecContext(ctx, query)
	return err
}

// PreparedOn reports whether the reads use prepared statements.
func (s *DB) PreparedOn() bool { return s.prepared.on.Load() }
