package server

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
)

// keyUses remembers when keys were used, so that last_used_at is written
// off the request path and at most once a minute per key: a use costs a map
// lookup, and a background flush writes what changed.
type keyUses struct {
	mu      sync.Mutex
	pending map[uuid.UUID]time.Time // the minute of a use not written yet
	latest  map[uuid.UUID]time.Time // the latest minute queued for each key
}

func newKeyUses() *keyUses {
	return &keyUses{pending: make(map[uuid.UUID]time.Time), latest: make(map[uuid.UUID]time.Time)}
}

// record notes a use of key id at at.
func (u *keyUses) record(id uuid.UUID, at time.Time) {
	minute := at.UTC().Truncate(time.Minute)
	u.mu.Lock()
	defer u.mu.Unlock()
	if last, ok := u.latest[id]; ok && !minute.After(last) {
		return // this minute is already queued or written
	}
	u.latest[id] = minute
	u.pending[id] = minute
}

// take hands over the uses to write, and forgets keys not used for a
// while, so that the map stays as small as the set of keys in use.
func (u *keyUses) take(now time.Time) map[uuid.UUID]time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := u.pending
	u.pending = make(map[uuid.UUID]time.Time)
	cutoff := now.UTC().Truncate(time.Minute).Add(-2 * time.Minute)
	for id, m := range u.latest {
		if m.Before(cutoff) {
			delete(u.latest, id)
		}
	}
	return out
}

// putBack returns uses a failed write could not store, unless newer ones
// came in meanwhile, so that a database outage loses none.
func (u *keyUses) putBack(uses map[uuid.UUID]time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for id, m := range uses {
		if p, ok := u.pending[id]; !ok || p.Before(m) {
			u.pending[id] = m
		}
	}
}

// WriteKeyUses writes the key uses recorded since the last call.
func (s *Server) WriteKeyUses(ctx context.Context) error {
	uses := s.uses.take(s.now())
	owners, unwritten, err := s.store.RecordKeyUses(ctx, uses)
	// The listings show the uses: this instance's at once, the others'
	// when they hear of it.
	for _, u := range owners {
		s.keysChanged(u, nil)
	}
	if err != nil {
		s.uses.putBack(unwritten)
	}
	return err
}
