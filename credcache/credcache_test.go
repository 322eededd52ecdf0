package credcache

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"authapi/store"
)

func mustOwner(tb testing.TB) *store.KeyOwner {
	tb.Helper()
	return &store.KeyOwner{KeyID: uuid.New(), User: store.User{ID: uuid.New(), Username: "u"}}
}

// TestFill covers when a fill after a miss is kept: only while
// listening, and only when no invalidation came between the read and the
// fill.
func TestFill(t *testing.T) {
	for _, tc := range []struct {
		name    string
		listen  bool
		between func(c *Cache[uuid.UUID], d [32]byte, o *store.KeyOwner)
		want    bool
	}{
		{"listening", true, func(*Cache[uuid.UUID], [32]byte, *store.KeyOwner) {}, true},
		{"not listening", false, func(*Cache[uuid.UUID], [32]byte, *store.KeyOwner) {}, false},
		{"this key revoked meanwhile", true, func(c *Cache[uuid.UUID], d [32]byte, _ *store.KeyOwner) { c.Changed(store.Change{Digest: d[:]}) }, false},
		{"another key revoked meanwhile", true, func(c *Cache[uuid.UUID], _ [32]byte, _ *store.KeyOwner) {
			c.Changed(store.Change{Digest: make([]byte, 32)})
		}, false},
		{"the user deleted meanwhile", true, func(c *Cache[uuid.UUID], _ [32]byte, o *store.KeyOwner) { c.Changed(store.Change{UserID: o.User.ID}) }, false},
		{"everything truncated meanwhile", true, func(c *Cache[uuid.UUID], _ [32]byte, _ *store.KeyOwner) { c.Changed(store.Change{All: true}) }, false},
		{"notifications resumed meanwhile", true, func(c *Cache[uuid.UUID], _ [32]byte, _ *store.KeyOwner) { c.Listening(true) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New[uuid.UUID](10, time.Minute)
			c.Listening(tc.listen)
			d, o := [32]byte{1, 2, 3}, mustOwner(t)
			got, epoch := c.key(d)
			if got != nil {
				t.Fatalf("key(new) = %+v, want a miss", got)
			}
			tc.between(c, d, o)
			c.putKey(d, o, epoch)
			if got, _ := c.key(d); (got != nil) != tc.want {
				t.Fatalf("key after the fill = %+v, want cached %v", got, tc.want)
			}
		})
	}
}

func TestInvalidation(t *testing.T) {
	owner := mustOwner(t)
	other := mustOwner(t)
	d1, d2 := [32]byte{1}, [32]byte{2}
	for _, tc := range []struct {
		name           string
		change         func(c *Cache[uuid.UUID])
		want1, want2   bool
		wantUserCached bool
	}{
		{"nothing", func(*Cache[uuid.UUID]) {}, true, true, true},
		{"revoked here", func(c *Cache[uuid.UUID]) { c.Changed(store.Change{Digest: d1[:], KeysOf: owner.User.ID}) }, false, true, true},
		{"key notified", func(c *Cache[uuid.UUID]) { c.Changed(store.Change{Digest: d1[:]}) }, false, true, true},
		{"user notified", func(c *Cache[uuid.UUID]) { c.Changed(store.Change{UserID: owner.User.ID}) }, false, true, false},
		{"all notified", func(c *Cache[uuid.UUID]) { c.Changed(store.Change{All: true}) }, false, false, false},
		{"notifications lost", func(c *Cache[uuid.UUID]) { c.Listening(false) }, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New[uuid.UUID](10, time.Minute)
			c.Listening(true)
			_, e := c.key(d1)
			c.putKey(d1, owner, e)
			c.putKey(d2, other, e)
			c.PutUser(owner.User.ID, store.TokenState{}, e)
			tc.change(c)
			if got, _ := c.key(d1); (got != nil) != tc.want1 {
				t.Errorf("key(d1) = %+v, want cached %v", got, tc.want1)
			}
			if got, _ := c.key(d2); (got != nil) != tc.want2 {
				t.Errorf("key(d2) = %+v, want cached %v", got, tc.want2)
			}
			if got, _ := c.user(owner.User.ID); (got != nil) != tc.wantUserCached {
				t.Errorf("user(owner) = %v, want cached %v", got, tc.wantUserCached)
			}
		})
	}
}

func TestBoundsAndLifetime(t *testing.T) {
	now := time.Now()
	c := New[uuid.UUID](3, time.Minute)
	c.now = func() time.Time { return now }
	c.Listening(true)
	for i := range 10 {
		_, e := c.key([32]byte{byte(i)})
		c.putKey([32]byte{byte(i)}, mustOwner(t), e)
		_, e = c.user(uuid.New())
		c.PutUser(uuid.New(), store.TokenState{}, e)
	}
	if st := c.Stats(); st.Keys != 3 || st.Users != 3 {
		t.Fatalf("size after 10 fills = %d keys, %d users, want 3 and 3", st.Keys, st.Users)
	}
	_, e := c.key([32]byte{42})
	c.putKey([32]byte{42}, mustOwner(t), e)
	if got, _ := c.key([32]byte{42}); got == nil {
		t.Fatal("the newest key was not cached")
	}
	now = now.Add(time.Minute)
	if got, _ := c.key([32]byte{42}); got != nil {
		t.Fatal("a key was served after its lifetime")
	}
}

func TestDisabled(t *testing.T) {
	c := New[uuid.UUID](0, time.Minute)
	c.Listening(true)
	_, e := c.key([32]byte{1})
	c.putKey([32]byte{1}, mustOwner(t), e)
	if got, _ := c.key([32]byte{1}); got != nil {
		t.Fatalf("a cache of size 0 served %+v", got)
	}
}

// TestListings covers the cached key listings: what drops one, and
// a fill racing an invalidation.
func TestListings(t *testing.T) {
	owner, other := uuid.New(), uuid.New()
	for _, tc := range []struct {
		name      string
		change    func(c *Cache[uuid.UUID])
		wantOwner bool // the owner's listing is still cached
		wantOther bool
	}{
		{"nothing", func(*Cache[uuid.UUID]) {}, true, true},
		{"the owner's keys changed", func(c *Cache[uuid.UUID]) { c.Changed(store.Change{KeysOf: owner}) }, false, true},
		{"a key of the owner's notified", func(c *Cache[uuid.UUID]) { c.Changed(store.Change{Digest: make([]byte, 32), KeysOf: owner}) }, false, true},
		{"the owner deleted", func(c *Cache[uuid.UUID]) { c.Changed(store.Change{UserID: owner}) }, false, true},
		{"a key of unknown owner notified", func(c *Cache[uuid.UUID]) { c.Changed(store.Change{Digest: make([]byte, 32)}) }, true, true},
		{"all notified", func(c *Cache[uuid.UUID]) { c.Changed(store.Change{All: true}) }, false, false},
		{"notifications lost", func(c *Cache[uuid.UUID]) { c.Listening(false) }, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now()
			c := New[uuid.UUID](10, time.Minute)
			c.Listening(true)
			_, e := c.list(owner, now)
			c.putList(owner, []byte("[1]"), "", time.Time{}, e)
			c.putList(other, []byte("[2]"), "", time.Time{}, e)
			tc.change(c)
			if got, _ := c.list(owner, now); (got != nil) != tc.wantOwner {
				t.Errorf("owner's listing = %+v, want cached %v", got, tc.wantOwner)
			}
			if got, _ := c.list(other, now); (got != nil) != tc.wantOther {
				t.Errorf("other's listing = %+v, want cached %v", got, tc.wantOther)
			}
		})
	}

	t.Run("a fill after an invalidation", func(t *testing.T) {
		c := New[uuid.UUID](10, time.Minute)
		c.Listening(true)
		_, e := c.list(owner, time.Now())
		c.Changed(store.Change{KeysOf: owner}) // a key created between the read and the fill
		c.putList(owner, []byte("[]"), "", time.Time{}, e)
		if got, _ := c.list(owner, time.Now()); got != nil {
			t.Fatalf("a listing read before a change was cached after it: %s", got.Body)
		}
	})
}

func TestListingLifetime(t *testing.T) {
	start := time.Now()
	cacheNow := start
	c := New[uuid.UUID](3, time.Minute)
	c.now = func() time.Time { return cacheNow }
	c.Listening(true)
	user := uuid.New()
	put := func(body string, until time.Time) {
		_, e := c.list(user, start)
		c.putList(user, []byte(body), "", until, e)
	}

	// A listed key expiring changes the listing: the entry ends then, by
	// the server's clock (which may not be the cache's).
	serverNow := start.Add(-time.Hour)
	put("[expiring]", serverNow.Add(10*time.Second))
	if got, _ := c.list(user, serverNow.Add(9*time.Second)); got == nil {
		t.Fatal("the listing was not cached before the key's expiry")
	}
	if got, _ := c.list(user, serverNow.Add(10*time.Second)); got != nil {
		t.Fatal("the listing was served at a listed key's expiry")
	}

	put("[]", time.Time{})
	if got, _ := c.list(user, start); got == nil || string(got.Body) != "[]" {
		t.Fatal("the listing was not cached before its lifetime ended")
	}
	cacheNow = start.Add(time.Minute)
	if got, _ := c.list(user, start); got != nil {
		t.Fatal("a listing was served after the entry's lifetime")
	}

	// Bounds: entries, and the size of one listing.
	cacheNow = start
	for range 10 {
		_, e := c.list(uuid.New(), start)
		c.putList(uuid.New(), []byte("[]"), "", time.Time{}, e)
	}
	if st := c.Stats(); st.Lists != 3 || c.listLen != 3*len("[]") {
		t.Fatalf("after 10 fills: %d listings of %d bytes, want 3 of 6", st.Lists, c.listLen)
	}
	put(strings.Repeat(" ", maxListingBytes+1), time.Time{})
	if got, _ := c.list(user, start); got != nil {
		t.Fatalf("a listing of %d bytes was cached", len(got.Body))
	}
}

// TestEpochs checks that a change to a listing alone (a key
// created, renamed or used) does not cost a credential's fill, and that
// one to a credential does cost a listing's.
func TestEpochs(t *testing.T) {
	c := New[uuid.UUID](10, time.Minute)
	c.Listening(true)
	d, o, user := [32]byte{9}, mustOwner(t), uuid.New()
	_, ke := c.key(d)
	_, le := c.list(user, time.Now())
	c.Changed(store.Change{KeysOf: uuid.New()})
	c.putKey(d, o, ke)
	if got, _ := c.key(d); got == nil {
		t.Fatal("a listing's change dropped a key's fill")
	}
	c.putList(user, []byte("[]"), "", time.Time{}, le)
	if got, _ := c.list(user, time.Now()); got != nil {
		t.Fatal("a listing filled across a listing's change")
	}
	_, le = c.list(user, time.Now())
	c.Changed(store.Change{Digest: make([]byte, 32)})
	c.putList(user, []byte("[]"), "", time.Time{}, le)
	if got, _ := c.list(user, time.Now()); got != nil {
		t.Fatal("a listing filled across a key's change of unknown owner")
	}
}

// The tests' shorthands: a miss is nil.

func (c *Cache[K]) key(d [32]byte) (*K, Epoch) {
	v, ok, e := c.Key(d)
	if !ok {
		return nil, e
	}
	return &v, e
}

func (c *Cache[K]) putKey(d [32]byte, o *store.KeyOwner, e Epoch) {
	var v K
	c.PutKey(d, o.User.ID, v, e)
}

func (c *Cache[K]) user(id uuid.UUID) (*store.TokenState, Epoch) {
	v, ok, e := c.User(id)
	if !ok {
		return nil, e
	}
	return &v, e
}

func (c *Cache[K]) list(user uuid.UUID, now time.Time) (*Listing, Epoch) {
	l, ok, e := c.List(user, now)
	if !ok {
		return nil, e
	}
	return &l, e
}

func (c *Cache[K]) putList(user uuid.UUID, body []byte, link string, until time.Time, e Epoch) {
	c.PutList(user, Listing{Body: body, Link: link}, until, e)
}

// BenchmarkKeyHit is a cached key's lookup, from all CPUs at once.
func BenchmarkKeyHit(b *testing.B) {
	c := New[*store.KeyOwner](1000, time.Minute)
	c.Listening(true)
	d := [32]byte{1, 2, 3}
	_, _, epoch := c.Key(d)
	c.PutKey(d, uuid.New(), &store.KeyOwner{}, epoch)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok, _ := c.Key(d); !ok {
				b.Fatal("miss")
			}
		}
	})
}
