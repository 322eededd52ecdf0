package password

import "context"

// Acquire holds a worker slot, so tests can saturate the pool without
// depending on how long a hash takes.
func (h *Hasher) Acquire(ctx context.Context) (func(), error) { return h.acquire(ctx) }
