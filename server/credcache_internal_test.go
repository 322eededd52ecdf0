package server

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"authapi/store"
)

func mustOwner(tb testing.TB) *store.KeyOwner {
	tb.Helper()
	return &store.KeyOwner{KeyID: uuid.New(), User: store.User{ID: uuid.New(), Username: "u"}}
}

// TestCredCacheFill covers when a fill after a miss is kept: only while
// listening, and only when no invalidation came between the read and the
// fill.
func TestCredCacheFill(t *testing.T) {
	for _, tc := range []struct {
		name    string
		listen  bool
		between func(c *credCache, d [32]byte, o *store.KeyOwner)
		want    bool
	}{
		{"listening", true, func(*credCache, [32]byte, *store.KeyOwner) {}, true},
		{"not listening", false, func(*credCache, [32]byte, *store.KeyOwner) {}, false},
		{"this key revoked meanwhile", true, func(c *credCache, d [32]byte, _ *store.KeyOwner) { c.dropKey(d[:]) }, false},
		{"another key revoked meanwhile", true, func(c *credCache, _ [32]byte, _ *store.KeyOwner) { c.dropKey(make([]byte, 32)) }, false},
		{"the user deleted meanwhile", true, func(c *credCache, _ [32]byte, o *store.KeyOwner) { c.dropUser(o.User.ID) }, false},
		{"everything truncated meanwhile", true, func(c *credCache, _ [32]byte, _ *store.KeyOwner) { c.Changed(store.Change{All: true}) }, false},
		{"notifications resumed meanwhile", true, func(c *credCache, _ [32]byte, _ *store.KeyOwner) { c.Listening(true) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCredCache(10, time.Minute)
			c.Listening(tc.listen)
			d, o := [32]byte{1, 2, 3}, mustOwner(t)
			got, epoch := c.key(d)
			if got != nil {
				t.Fatalf("key(new) = %+v, want a miss", got)
			}
			tc.between(c, d, o)
			c.putKey(d, &keyEntry{owner: *o}, epoch)
			if got, _ := c.key(d); (got != nil) != tc.want {
				t.Fatalf("key after the fill = %+v, want cached %v", got, tc.want)
			}
		})
	}
}

func TestCredCacheInvalidation(t *testing.T) {
	owner := mustOwner(t)
	other := mustOwner(t)
	d1, d2 := [32]byte{1}, [32]byte{2}
	for _, tc := range []struct {
		name           string
		change         func(c *credCache)
		want1, want2   bool
		wantUserCached bool
	}{
		{"nothing", func(*credCache) {}, true, true, true},
		{"revoked here", func(c *credCache) { c.dropKey(d1[:]) }, false, true, true},
		{"key notified", func(c *credCache) { c.Changed(store.Change{Digest: d1[:]}) }, false, true, true},
		{"user notified", func(c *credCache) { c.Changed(store.Change{UserID: owner.User.ID}) }, false, true, false},
		{"all notified", func(c *credCache) { c.Changed(store.Change{All: true}) }, false, false, false},
		{"notifications lost", func(c *credCache) { c.Listening(false) }, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCredCache(10, time.Minute)
			c.Listening(true)
			_, e := c.key(d1)
			c.putKey(d1, &keyEntry{owner: *owner}, e)
			c.putKey(d2, &keyEntry{owner: *other}, e)
			c.putUser(owner.User.ID, e)
			tc.change(c)
			if got, _ := c.key(d1); (got != nil) != tc.want1 {
				t.Errorf("key(d1) = %+v, want cached %v", got, tc.want1)
			}
			if got, _ := c.key(d2); (got != nil) != tc.want2 {
				t.Errorf("key(d2) = %+v, want cached %v", got, tc.want2)
			}
			if got, _ := c.userExists(owner.User.ID); got != tc.wantUserCached {
				t.Errorf("userExists(owner) = %v, want %v", got, tc.wantUserCached)
			}
		})
	}
}

func TestCredCacheBoundsAndLifetime(t *testing.T) {
	now := time.Now()
	c := newCredCache(3, time.Minute)
	c.now = func() time.Time { return now }
	c.Listening(true)
	for i := range 10 {
		_, e := c.key([32]byte{byte(i)})
		c.putKey([32]byte{byte(i)}, &keyEntry{owner: *mustOwner(t)}, e)
		_, e = c.userExists(uuid.New())
		c.putUser(uuid.New(), e)
	}
	if k, u := c.size(); k != 3 || u != 3 {
		t.Fatalf("size after 10 fills = %d keys, %d users, want 3 and 3", k, u)
	}
	_, e := c.key([32]byte{42})
	c.putKey([32]byte{42}, &keyEntry{owner: *mustOwner(t)}, e)
	if got, _ := c.key([32]byte{42}); got == nil {
		t.Fatal("the newest key was not cached")
	}
	now = now.Add(time.Minute)
	if got, _ := c.key([32]byte{42}); got != nil {
		t.Fatal("a key was served after its lifetime")
	}
}

func TestCredCacheDisabled(t *testing.T) {
	c := newCredCache(0, time.Minute)
	c.Listening(true)
	_, e := c.key([32]byte{1})
	c.putKey([32]byte{1}, &keyEntry{owner: *mustOwner(t)}, e)
	if got, _ := c.key([32]byte{1}); got != nil {
		t.Fatalf("a cache of size 0 served %+v", got)
	}
}
