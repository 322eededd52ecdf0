// Package credcache remembers, per instance, what verified credentials
// resolved to: API keys by digest, JWT users' token state, and users' first
// page of keys. It is kept correct by hearing every change (it is a
// store.ChangeHandler); while it does not hear them, it is empty and
// bypassed. docs/design.md explains the protocol.
package credcache

import (
	"sync"
	"time"

	"github.com/google/uuid"

	"authapi/store"
)

// Epoch is the cache's count of invalidations when a database read began;
// a fill made from that read is dropped if the count moved since.
type Epoch uint64

// Cache holds API keys (only active ones; refusals are never cached), as
// whatever K the caller makes of one, JWT users' token state, and users'
// encoded key listings. Every entry ends after a lifetime as a backstop.
// Keys and users share an epoch, listings have their own: a change to a
// listing alone does not cost a credential's fill.
type Cache[K any] struct {
	max int           // entries per map; 0 disables the cache
	ttl time.Duration // lifetime of an entry
	now func() time.Time

	mu      sync.RWMutex
	enabled bool  // notifications are being heard
	epoch   Epoch // of keys and users
	lEpoch  Epoch // of listings
	keys    map[[32]byte]*keyEntry[K]
	users   map[uuid.UUID]*userEntry
	lists   map[uuid.UUID]*listEntry
	listLen int // bytes of the cached listings
}

var _ store.ChangeHandler = (*Cache[struct{}])(nil)

// Bounds of the listing cache: an unusual listing should not crowd out the
// rest.
const (
	maxListingBytes  = 64 << 10 // longer listings are not cached
	maxListingsBytes = 32 << 20 // all cached listings together
)

// Listing is one user's cached first page of keys.
type Listing struct {
	Body []byte // the 200 response's body, encoded
	Link string // its Link header, if any
}

type listEntry struct {
	Listing
	expires time.Time // the end of the entry's lifetime
	until   time.Time // by the server's clock, the first listed key's expiry to come (zero: none)
}

type userEntry struct {
	tokens  store.TokenState
	expires time.Time
}

type keyEntry[K any] struct {
	user    uuid.UUID // the key's owner
	v       K
	expires time.Time
}

// New returns a cache of at most max entries of each kind (0: a cache that
// holds nothing), each for ttl. It is bypassed until Listening(true).
func New[K any](max int, ttl time.Duration) *Cache[K] {
	return &Cache[K]{
		max: max, ttl: ttl, now: time.Now,
		keys:  make(map[[32]byte]*keyEntry[K]),
		users: make(map[uuid.UUID]*userEntry),
		lists: make(map[uuid.UUID]*listEntry),
	}
}

// Key returns what was cached for the key with digest, if anything, and
// the epoch to pass to PutKey after a miss.
func (c *Cache[K]) Key(digest [32]byte) (v K, ok bool, epoch Epoch) {
	if c.max <= 0 {
		return v, false, 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e := c.keys[digest]; e != nil && c.enabled && c.now().Before(e.expires) {
		return e.v, true, c.epoch
	}
	return v, false, c.epoch
}

// PutKey caches v for the key with digest, owned by user, as made from a
// database read begun at epoch.
func (c *Cache[K]) PutKey(digest [32]byte, user uuid.UUID, v K, epoch Epoch) {
	c.fill(&c.epoch, epoch, func() {
		makeRoom(c.keys, c.max)
		c.keys[digest] = &keyEntry[K]{user: user, v: v, expires: c.now().Add(c.ttl)}
	})
}

// fill runs put with the lock held, unless the cache is off or bypassed,
// or the current epoch cur moved since epoch.
func (c *Cache[K]) fill(cur *Epoch, epoch Epoch, put func()) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enabled && *cur == epoch {
		put()
	}
}

// makeRoom evicts an arbitrary entry from m if it holds max.
func makeRoom[K comparable, V any](m map[K]V, max int) {
	if len(m) < max {
		return
	}
	for k := range m {
		delete(m, k)
		return
	}
}

// User returns the cached token state of the user, if any, and the epoch
// to pass to PutUser after a miss.
func (c *Cache[K]) User(id uuid.UUID) (tokens store.TokenState, ok bool, epoch Epoch) {
	if c.max <= 0 {
		return tokens, false, 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e := c.users[id]; e != nil && c.enabled && c.now().Before(e.expires) {
		return e.tokens, true, c.epoch
	}
	return tokens, false, c.epoch
}

// PutUser caches the user's token state, read from the database at epoch.
func (c *Cache[K]) PutUser(id uuid.UUID, tokens store.TokenState, epoch Epoch) {
	c.fill(&c.epoch, epoch, func() {
		makeRoom(c.users, c.max)
		c.users[id] = &userEntry{tokens: tokens, expires: c.now().Add(c.ttl)}
	})
}

// List returns the cached listing of user's keys, if any, as it stands at
// now (the server's clock), and the epoch to pass to PutList after a miss.
// The caller must not change the listing.
func (c *Cache[K]) List(user uuid.UUID, now time.Time) (l Listing, ok bool, epoch Epoch) {
	if c.max <= 0 {
		return l, false, 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e := c.lists[user]; e != nil && c.enabled && c.now().Before(e.expires) && (e.until.IsZero() || now.Before(e.until)) {
		return e.Listing, true, c.lEpoch
	}
	return l, false, c.lEpoch
}

// PutList caches l as user's listing, made from a database read begun at
// epoch, while the server's clock is before until (zero: no bound).
// Listings longer than 64 KiB are not cached.
func (c *Cache[K]) PutList(user uuid.UUID, l Listing, until time.Time, epoch Epoch) {
	if len(l.Body) > maxListingBytes {
		return
	}
	c.fill(&c.lEpoch, epoch, func() {
		c.dropListLocked(user)
		for len(c.lists) > 0 && (len(c.lists) >= c.max || c.listLen+len(l.Body) > maxListingsBytes) {
			for u := range c.lists {
				c.dropListLocked(u)
				break
			}
		}
		c.lists[user] = &listEntry{Listing: l, expires: c.now().Add(c.ttl), until: until}
		c.listLen += len(l.Body)
	})
}

func (c *Cache[K]) dropListLocked(user uuid.UUID) {
	if e := c.lists[user]; e != nil {
		c.listLen -= len(e.Body)
		delete(c.lists, user)
	}
}

// Listening implements store.ChangeHandler. Both a stop and a resumption
// of notifications empty the cache: changes may have been missed.
func (c *Cache[K]) Listening(ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.enabled = ok
	c.clearLocked()
}

// Changed implements store.ChangeHandler; the server also reports its own
// changes through it, at once.
func (c *Cache[K]) Changed(ch store.Change) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch.All || ch.Digest != nil || ch.UserID != uuid.Nil {
		c.epoch++
	}
	c.lEpoch++
	if ch.All {
		c.clearLocked()
	}
	if len(ch.Digest) == 32 {
		delete(c.keys, [32]byte(ch.Digest))
	}
	if id := ch.UserID; id != uuid.Nil {
		delete(c.users, id)
		c.dropListLocked(id)
		for d, e := range c.keys {
			if e.user == id {
				delete(c.keys, d)
			}
		}
	}
	if ch.KeysOf != uuid.Nil {
		c.dropListLocked(ch.KeysOf)
	}
}

func (c *Cache[K]) clearLocked() {
	c.epoch++
	c.lEpoch++
	clear(c.keys)
	clear(c.users)
	clear(c.lists)
	c.listLen = 0
}

// Enabled reports whether the cache is in use: notifications are heard.
func (c *Cache[K]) Enabled() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.enabled
}

// Stats counts the cache's entries.
type Stats struct{ Keys, Users, Lists int }

// Stats describes the cache's content.
func (c *Cache[K]) Stats() Stats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return Stats{Keys: len(c.keys), Users: len(c.users), Lists: len(c.lists)}
}
