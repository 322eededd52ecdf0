package keyuse_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"authapi/keyuse"
)

// fakeStore records what it is asked to write, and fails while down.
type fakeStore struct {
	down    bool
	written map[uuid.UUID]time.Time
}

func (f *fakeStore) RecordKeyUses(_ context.Context, uses map[uuid.UUID]time.Time) ([]uuid.UUID, map[uuid.UUID]time.Time, error) {
	if f.down {
		return nil, uses, errors.New("down")
	}
	var owners []uuid.UUID
	for id, at := range uses {
		f.written[id] = at
		owners = append(owners, id) // each key its own owner, for the test
	}
	return owners, nil, nil
}

func TestWriter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	st := &fakeStore{written: map[uuid.UUID]time.Time{}}
	var told []uuid.UUID
	w := keyuse.New(st, func() time.Time { return now }, func(owner uuid.UUID) { told = append(told, owner) })
	ctx := context.Background()
	key := uuid.New()

	// Uses within a minute are written once, at the minute.
	w.Record(key, now)
	w.Record(key, now.Add(10*time.Second))
	if err := w.Write(ctx); err != nil {
		t.Fatalf("Write = %v", err)
	}
	if got, want := st.written[key], now.Truncate(time.Minute); !got.Equal(want) || len(told) != 1 {
		t.Fatalf("written %v (owners told %d), want %v (1)", got, len(told), want)
	}

	// A failed write keeps the use for the next one.
	st.down = true
	w.Record(key, now.Add(time.Minute))
	if err := w.Write(ctx); err == nil {
		t.Fatal("Write to a store that is down = nil, want an error")
	}
	st.down = false
	if err := w.Write(ctx); err != nil {
		t.Fatalf("Write = %v", err)
	}
	if got, want := st.written[key], now.Add(time.Minute).Truncate(time.Minute); !got.Equal(want) {
		t.Fatalf("after the outage, written %v, want %v", got, want)
	}
}
