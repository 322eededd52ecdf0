package store_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"authapi/store"
	"authapi/store/storetest"
)

// changes records what Changes.Run reports.
type changes struct {
	mu        sync.Mutex
	listening bool
	got       []store.Change
}

func (c *changes) Listening(ok bool) { c.mu.Lock(); c.listening = ok; c.mu.Unlock() }
func (c *changes) Changed(ch store.Change) {
	c.mu.Lock()
	c.got = append(c.got, ch)
	c.mu.Unlock()
}

// take returns the changes reported so far, once every change committed
// before it was called has been (Changes.Sync), sorted so that the ones
// naming a digest come last.
func (c *changes) take(tb testing.TB, sub *store.Changes, n int) []store.Change {
	tb.Helper()
	if err := sub.Sync(ctx); err != nil {
		tb.Fatalf("Sync = %v", err)
	}
	c.mu.Lock()
	got := c.got
	c.got = nil
	c.mu.Unlock()
	slices.SortStableFunc(got, func(a, b store.Change) int { return len(a.Digest) - len(b.Digest) })
	if len(got) != n {
		tb.Fatalf("got %d changes %+v, want %d", len(got), got, n)
	}
	return got
}

// TestChangeNotifications checks what every write to keys and users
// announces, through Changes.Run: the server's cache is only as right
// as these are.
func TestChangeNotifications(t *testing.T) {
	url := storetest.NewURL(t)
	db, err := store.Open(ctx, url, store.Options{MaxConns: 4, QueryTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rec := &changes{}
	sub := db.Changes(storetest.DirectURL(url), rec, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := sub.Sync(ctx); !errors.Is(err, store.ErrNotListening) {
		t.Fatalf("Sync before Run = %v, want ErrNotListening", err)
	}
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { sub.Run(lctx); close(done) }()
	defer func() { stop(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		rec.mu.Lock()
		ok := rec.listening
		rec.mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not listening after 10s")
		}
	}

	u := MustCreateUser(t, db, "noisy")
	k := MustCreateKey(t, db, u.ID, "k")
	keysOf := store.Change{KeysOf: u.ID}
	if got := rec.take(t, sub, 1); !changeEqual(got[0], keysOf) {
		t.Fatalf("a created key announced %+v, want %+v", got, keysOf)
	}

	owners, err := db.RecordKeyUses(ctx, map[uuid.UUID]time.Time{k.ID: time.Now()})
	if err != nil || len(owners) != 1 {
		t.Fatal(owners, err)
	}
	if got := rec.take(t, sub, 1); !changeEqual(got[0], keysOf) {
		t.Fatalf("a recorded use announced %+v, want %+v", got, keysOf)
	}

	now := time.Now()
	next := &store.APIKey{UserID: u.ID, Prefix: "rst_efgh", Digest: []byte("0123456789abcdef0123456789abcdef")}
	if _, err := db.RotateAPIKey(ctx, k.ID, now, now.Add(time.Hour), next, 0, nil); err != nil {
		t.Fatal(err)
	}
	got := rec.take(t, sub, 2)
	if !changeEqual(got[0], keysOf) {
		t.Errorf("a rotation announced %+v first, want %+v", got[0], keysOf)
	}
	if want := (store.Change{Digest: k.Digest, KeysOf: u.ID}); !changeEqual(got[1], want) {
		t.Errorf("a rotation announced %+v for the old key, want %+v", got[1], want)
	}

	digest, err := db.RevokeAPIKey(ctx, u.ID, next.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rec.take(t, sub, 1), (store.Change{Digest: digest, KeysOf: u.ID}); !changeEqual(got[0], want) {
		t.Fatalf("a revocation announced %+v, want %+v", got, want)
	}
	if _, err := db.RevokeAPIKey(ctx, u.ID, next.ID); err != nil {
		t.Fatal(err)
	}
	rec.take(t, sub, 0) // revoking a revoked key changes nothing

	// An operator's SQL is announced too.
	for _, tc := range []struct {
		sql  string
		want []store.Change
	}{
		{`UPDATE api_keys SET name = 'renamed' WHERE id = '` + k.ID.String() + `'`, []store.Change{{KeysOf: u.ID}}},
		{`DELETE FROM api_keys WHERE id = '` + k.ID.String() + `'`, []store.Change{{Digest: k.Digest, KeysOf: u.ID}}},
		{`DELETE FROM users WHERE id = '` + u.ID.String() + `'`, []store.Change{{UserID: u.ID}, {Digest: next.Digest, KeysOf: u.ID}}},
		{`TRUNCATE api_keys CASCADE`, []store.Change{{All: true}}},
	} {
		if err := db.Exec(ctx, tc.sql); err != nil {
			t.Fatal(err)
		}
		got := rec.take(t, sub, len(tc.want))
		for i := range got {
			if !changeEqual(got[i], tc.want[i]) {
				t.Errorf("%s announced %+v, want %+v", tc.sql, got, tc.want)
			}
		}
	}
}

func changeEqual(a, b store.Change) bool {
	return a.All == b.All && string(a.Digest) == string(b.Digest) && a.UserID == b.UserID && a.KeysOf == b.KeysOf
}

// TestSyncSeesEveryEarlierCommit checks Sync's promise under concurrency:
// while keys are created one after another, many callers sync over and
// over, and each finds every creation committed before its call reported.
func TestSyncSeesEveryEarlierCommit(t *testing.T) {
	url := storetest.NewURL(t)
	db, err := store.Open(ctx, url, store.Options{MaxConns: 8, QueryTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u := MustCreateUser(t, db, "busy")
	heard := &countingHandler{user: u.ID}
	sub := db.Changes(storetest.DirectURL(url), heard, slog.New(slog.NewTextHandler(io.Discard, nil)))
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { sub.Run(lctx); close(done) }()
	defer func() { stop(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); sub.Sync(ctx) != nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not listening after 10s")
		}
	}

	const creations, callers = 200, 16
	var committed atomic.Int64
	var syncs atomic.Int64
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for range creations {
			MustCreateKey(t, db, u.ID, "k")
			committed.Add(1)
		}
	}()
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for {
				select {
				case <-writerDone:
					return
				default:
				}
				before := committed.Load()
				if err := sub.Sync(ctx); err != nil {
					t.Errorf("Sync = %v", err)
					return
				}
				syncs.Add(1)
				if got := heard.n.Load(); got < before {
					t.Errorf("Sync returned with %d creations heard of, %d committed before the call", got, before)
					return
				}
			}
		})
	}
	wg.Wait()
	if syncs.Load() < callers {
		t.Fatalf("only %d syncs ran", syncs.Load())
	}
	t.Logf("%d syncs by %d callers during %d creations", syncs.Load(), callers, creations)
}

// countingHandler counts the changes to one user's listing.
type countingHandler struct {
	user uuid.UUID
	n    atomic.Int64
}

func (c *countingHandler) Listening(bool) {}
func (c *countingHandler) Changed(ch store.Change) {
	if ch.KeysOf == c.user {
		c.n.Add(1)
	}
}
