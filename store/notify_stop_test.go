package store_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"authapi/store"
	"authapi/store/storetest"
)

// listenings records what Listening reports.
type listenings struct {
	mu  sync.Mutex
	got []bool
}

func (l *listenings) Listening(ok bool)    { l.mu.Lock(); l.got = append(l.got, ok); l.mu.Unlock() }
func (l *listenings) Changed(store.Change) {}

// TestChangesRunStops checks that when Run returns, the handler is told
// nothing is heard any longer, and Sync says so: a cache must not be
// trusted with nobody listening.
func TestChangesRunStops(t *testing.T) {
	url := storetest.NewURL(t)
	db, err := store.Open(ctx, url, store.Options{MaxConns: 2, QueryTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := &listenings{}
	sub := db.Changes(storetest.DirectURL(url), h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { sub.Run(rctx); close(done) }()
	for deadline := time.Now().Add(10 * time.Second); sub.Sync(ctx) != nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			stop()
			t.Fatal("not listening after 10s")
		}
	}
	stop()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return 10s after its context ended")
	}
	h.mu.Lock()
	got := append([]bool(nil), h.got...)
	h.mu.Unlock()
	if len(got) != 2 || !got[0] || got[1] {
		t.Fatalf("Listening calls = %v, want [true false]", got)
	}
	if err := sub.Sync(ctx); !errors.Is(err, store.ErrNotListening) {
		t.Fatalf("Sync after Run returned = %v, want ErrNotListening", err)
	}
}
