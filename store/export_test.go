package store

import "context"

// Exec runs a statement on the pool, for tests that need to reach behind
// the store's back.
func (s *DB) Exec(ctx context.Context, query string) error {
	_, err := s.db.ExecContext(ctx, query)
	return err
}

// PreparedNames lists the statements prepared on one of the pool's
// connections (all of them, with MaxConns 1).
func (s *DB) PreparedNames(ctx context.Context) ([]string, error) {
	var names []string
	err := s.db.SelectContext(ctx, &names, `SELECT name FROM pg_prepared_statements ORDER BY name`)
	return names, err
}

// UsedPrepared lists the prepared statements of PreparedNames that have
// run at least once.
func (s *DB) UsedPrepared(ctx context.Context) ([]string, error) {
	var names []string
	err := s.db.SelectContext(ctx, &names, `SELECT name FROM pg_prepared_statements WHERE generic_plans + custom_plans > 0 ORDER BY name`)
	return names, err
}

// ServerUnavailable is serverUnavailable, for a table of errors.
var ServerUnavailable = serverUnavailable

// Classify is what an exported method's deferred classify makes of err.
func Classify(err error, op string) error {
	classify(&err, op)
	return err
}
