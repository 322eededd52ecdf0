// Package keyuse records when API keys are used, off the request path: a
// use costs a map lookup, and Write stores what changed, at most once a
// minute per key.
package keyuse

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Store writes keys' last use; *store.DB is one.
type Store interface {
	// RecordKeyUses writes each key's use and returns the owners of the
	// keys it changed, and on an error the uses it did not write.
	RecordKeyUses(ctx context.Context, uses map[uuid.UUID]time.Time) (owners []uuid.UUID, unwritten map[uuid.UUID]time.Time, err error)
}

// Writer batches the uses of keys and writes them through a Store.
type Writer struct {
	store   Store
	now     func() time.Time
	written func(owner uuid.UUID)

	mu      sync.Mutex
	pending map[uuid.UUID]time.Time // the minute of a use not written yet
	latest  map[uuid.UUID]time.Time // the latest minute queued for each key
}

// New returns a Writer to st. now is its clock (nil: time.Now); written,
// if not nil, is called with the owner of every key whose use Write stored.
func New(st Store, now func() time.Time, written func(owner uuid.UUID)) *Writer {
	if now == nil {
		now = time.Now
	}
	return &Writer{
		store: st, now: now, written: written,
		pending: make(map[uuid.UUID]time.Time), latest: make(map[uuid.UUID]time.Time),
	}
}

// Record notes a use of key id at at.
func (w *Writer) Record(id uuid.UUID, at time.Time) {
	minute := at.UTC().Truncate(time.Minute)
	w.mu.Lock()
	defer w.mu.Unlock()
	if last, ok := w.latest[id]; ok && !minute.After(last) {
		return // this minute is already queued or written
	}
	w.latest[id] = minute
	w.pending[id] = minute
}

// Write stores the uses recorded since the last call. Uses it could not
// store are kept for the next call, so that a database outage loses none.
func (w *Writer) Write(ctx context.Context) error {
	uses := w.take(w.now())
	owners, unwritten, err := w.store.RecordKeyUses(ctx, uses)
	if w.written != nil {
		for _, u := range owners {
			w.written(u)
		}
	}
	if err != nil {
		w.putBack(unwritten)
	}
	return err
}

// take hands over the uses to write, and forgets keys not used for a
// while, so that the map stays as small as the set of keys in use.
func (w *Writer) take(now time.Time) map[uuid.UUID]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.pending
	w.pending = make(map[uuid.UUID]time.Time)
	cutoff := now.UTC().Truncate(time.Minute).Add(-2 * time.Minute)
	for id, m := range w.latest {
		if m.Before(cutoff) {
			delete(w.latest, id)
		}
	}
	return out
}

// putBack returns uses a failed write could not store, unless newer ones
// came in meanwhile.
func (w *Writer) putBack(uses map[uuid.UUID]time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, m := range uses {
		if p, ok := w.pending[id]; !ok || p.Before(m) {
			w.pending[id] = m
		}
	}
}
