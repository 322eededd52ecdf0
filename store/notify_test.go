package store_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"authapi/store"
	"authapi/store/storetest"
)

// changes records what Changes.Run reports.
type changes struct {
	mu        sync.Mutex
	listening []bool // every Listening call
	got       []store.Change
}

func (c *changes) Listening(ok bool) {
	c.mu.Lock()
	c.listening = append(c.listening, ok)
	c.mu.Unlock()
}
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

// listening is a Changes running on a fresh database for a test.
type listening struct {
	db   *store.DB
	sub  *store.Changes
	stop func() // ends Run and waits for it; also at the test's end
}

// mustListen opens a pool of maxConns on a fresh database and runs its
// Changes, reporting to h, until the test ends or stop; it returns once
// Sync answers, that is once changes are heard.
func mustListen(tb testing.TB, maxConns int, h store.ChangeHandler) *listening {
	tb.Helper()
	url := storetest.NewURL(tb)
	db, err := store.Open(ctx, url, store.Options{MaxConns: maxConns, QueryTimeout: 10 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	sub := db.Changes(storetest.DirectURL(url), h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := sub.Sync(ctx); !errors.Is(err, store.ErrNotListening) {
		tb.Fatalf("Sync before Run = %v, want ErrNotListening", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { sub.Run(rctx); close(done) }()
	l := &listening{db: db, sub: sub, stop: func() { cancel(); <-done }}
	tb.Cleanup(l.stop) // before db.Close: cleanups run last first
	for deadline := time.Now().Add(10 * time.Second); sub.Sync(ctx) != nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatal("not listening after 10s")
		}
	}
	return l
}

// TestChangeNotifications checks what every write to keys and users
// announces, through Changes.Run: the server's cache is only as right
// as these are.
func TestChangeNotifications(t *testing.T) {
	rec := &changes{}
	l := mustListen(t, 4, rec)
	db, sub := l.db, l.sub

	u := MustCreateUser(t, db, "noisy")
	k := MustCreateKey(t, db, u.ID, "k")
	keysOf := store.Change{KeysOf: u.ID}
	if got := rec.take(t, sub, 1); !changeEqual(got[0], keysOf) {
		t.Fatalf("a created key announced %+v, want %+v", got, keysOf)
	}

	owners, _, err := db.RecordKeyUses(ctx, map[uuid.UUID]time.Time{k.ID: time.Now()})
	if err != nil || len(owners) != 1 {
		t.Fatal(owners, err)
	}
	if got := rec.take(t, sub, 1); !changeEqual(got[0], keysOf) {
		t.Fatalf("a recorded use announced %+v, want %+v", got, keysOf)
	}

	now := time.Now()
	next := &store.APIKey{UserID: u.ID, Prefix: "rst_efgh", Digest: []byte("0123456789abcdef0123456789abcdef")}
	if _, err := db.RotateAPIKey(ctx, k.ID, next, store.Rotation{Now: func() time.Time { return now }, Grace: time.Hour}); err != nil {
		t.Fatal(err)
	}
	got := rec.take(t, sub, 2)
	if !changeEqual(got[0], keysOf) {
		t.Errorf("a rotation announced %+v first, want %+v", got[0], keysOf)
	}
	if want := (store.Change{Digest: k.Digest, KeysOf: u.ID}); !changeEqual(got[1], want) {
		t.Errorf("a rotation announced %+v for the old key, want %+v", got[1], want)
	}

	digest, err := db.RevokeAPIKey(ctx, u.ID, next.ID, store.Actor{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rec.take(t, sub, 1), (store.Change{Digest: digest, KeysOf: u.ID}); !changeEqual(got[0], want) {
		t.Fatalf("a revocation announced %+v, want %+v", got, want)
	}
	if _, err := db.RevokeAPIKey(ctx, u.ID, next.ID, store.Actor{}); err != nil {
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
// many callers each create a key for a user of their own and then sync,
// over and over, and each must find every creation it committed before
// its call reported. A Sync that joined the marker already on its way,
// rather than waiting for the next one, would return when a marker sent
// before the caller's commit came back, with that commit not yet heard.
func TestSyncSeesEveryEarlierCommit(t *testing.T) {
	const callers, rounds = 16, 30
	heard := &countingHandler{n: map[uuid.UUID]int{}}
	l := mustListen(t, 20, heard)
	db, sub := l.db, l.sub
	users := make([]uuid.UUID, callers)
	for i := range users {
		users[i] = MustCreateUser(t, db, fmt.Sprintf("busy%d", i)).ID
	}

	var wg sync.WaitGroup
	for _, user := range users {
		wg.Go(func() {
			for created := 1; created <= rounds; created++ {
				k := &store.APIKey{UserID: user, Name: "k", Prefix: "rst_abcd", Digest: make([]byte, 32)}
				rand.Read(k.Digest)
				if err := db.CreateAPIKey(ctx, k, time.Now(), 0, store.Actor{}); err != nil {
					t.Errorf("CreateAPIKey = %v", err)
					return
				}
				if err := sub.Sync(ctx); err != nil {
					t.Errorf("Sync = %v", err)
					return
				}
				if got := heard.of(user); got < created {
					t.Errorf("Sync returned with %d of user %v's creations heard of, %d committed before the call", got, user, created)
					return
				}
			}
		})
	}
	wg.Wait()
}

// countingHandler counts the changes to each user's listing.
type countingHandler struct {
	mu sync.Mutex
	n  map[uuid.UUID]int
}

func (c *countingHandler) Listening(bool) {}
func (c *countingHandler) Changed(ch store.Change) {
	c.mu.Lock()
	c.n[ch.KeysOf]++
	c.mu.Unlock()
}

func (c *countingHandler) of(user uuid.UUID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[user]
}

// TestChangesRunStops checks that when Run returns, the handler is told
// nothing is heard any longer, and Sync says so: a cache must not be
// trusted with nobody listening.
func TestChangesRunStops(t *testing.T) {
	rec := &changes{}
	l := mustListen(t, 2, rec)
	l.stop()
	rec.mu.Lock()
	got := append([]bool(nil), rec.listening...)
	rec.mu.Unlock()
	if len(got) != 2 || !got[0] || got[1] {
		t.Fatalf("Listening calls = %v, want [true false]", got)
	}
	if err := l.sub.Sync(ctx); !errors.Is(err, store.ErrNotListening) {
		t.Fatalf("Sync after Run returned = %v, want ErrNotListening", err)
	}
}

// TestSyncFailsWhenItCannotSendItsMarker: with notifications heard but the
// marker not sendable (here the pool is closed; in production, a stalled
// or exhausted one), every caller gets an error within the round's bound,
// so that it reads the database instead, and none waits a second round.
func TestSyncFailsWhenItCannotSendItsMarker(t *testing.T) {
	l := mustListen(t, 2, &changes{})
	l.db.Close()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			begin := time.Now()
			err := l.sub.Sync(ctx)
			if took := time.Since(begin); err == nil || errors.Is(err, store.ErrNotListening) || took > 2*time.Second {
				t.Errorf("Sync with the pool closed = %v after %v, want the marker's error within 2s", err, took)
			}
		})
	}
	wg.Wait()
}
