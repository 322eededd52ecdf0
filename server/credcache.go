package server

import (
	"sync"
	"time"

	"github.com/google/uuid"

	"authapi/store"
)

// credCache remembers, per instance, what verified credentials resolved to,
// so that a request with a known API key or a known user's JWT needs no
// database round trip:
//
//   - API key digest -> the key's owner (only active keys; failures are
//     never cached, so a guesser gains nothing and a revoked key is never
//     remembered as valid);
//   - user ID -> that the user exists, and the state of their tokens
//     (store.TokenState: which are ended), for JWTs;
//   - user ID -> the first page of the user's keys (GET
//     /v1/auth/api-keys, encoded), until the listing would change by itself
//     (a key reaching its expiry) or the lifetime ends.
//
// It is correct only while it hears of every change: the instance that
// revokes a key drops it at once, and every instance drops what the
// database announces (store.Changes). While the notification
// connection is down the cache is emptied and bypassed, since changes may
// be missed; entries also expire after a lifetime, as a backstop.
//
// A lookup that misses reads the database and then fills the cache, but an
// invalidation may come in between (the read saw the key before its
// revocation committed, the notification arrived before the fill). Every
// invalidation therefore bumps an epoch, and a fill is dropped when the
// epoch moved since its read began. Credentials and listings have an epoch
// each: a key's creation or use changes a listing, never what a key grants,
// and should not cost the credentials' fills.
//
// A cached listing is served only after store.Changes.Sync: a listing must
// show every change answered before it was asked for, through whichever
// instance, and a notification takes about a millisecond to arrive.
type credCache struct {
	max int           // entries per map; 0 disables the cache
	ttl time.Duration // lifetime of an entry
	now func() time.Time

	mu      sync.RWMutex
	enabled bool   // notifications are being heard
	epoch   uint64 // of keys and users
	lEpoch  uint64 // of listings
	keys    map[[32]byte]*keyEntry
	users   map[uuid.UUID]*userEntry
	lists   map[uuid.UUID]*listEntry
	listLen int // bytes of the cached listings
}

// Bounds of the listing cache: a listing is small (a user has at most the
// active-key cap's keys working, plus revoked ones), but an unusual one
// should not crowd out the rest.
const (
	maxListingBytes  = 64 << 10 // longer listings are not cached
	maxListingsBytes = 32 << 20 // all cached listings together
)

// listEntry is one user's cached key listing.
type listEntry struct {
	body    []byte    // the 200 response's body, encoded
	link    string    // its Link header, if any
	expires time.Time // the end of the entry's lifetime
	until   time.Time // by the server's clock, the first listed key's expiry to come (zero: none)
}

// userEntry is one cached JWT user: that it exists, and its tokens' state.
type userEntry struct {
	tokens  store.TokenState
	expires time.Time
}

// keyEntry is one cached API key. A later check that must run on every use
// of a key (an expiry) or a record of its use (a last-used time, written
// back in batches by key ID) belongs here, next to the owner.
type keyEntry struct {
	owner   store.KeyOwner
	me      []byte // GET /v1/me's response body, encoded once
	expires time.Time

	verified *verifiedHeaders // GET /v1/auth/verify's answer, made once
}

func newCredCache(max int, ttl time.Duration) *credCache {
	return &credCache{
		max: max, ttl: ttl, now: time.Now,
		keys:  make(map[[32]byte]*keyEntry),
		users: make(map[uuid.UUID]*userEntry),
		lists: make(map[uuid.UUID]*listEntry),
	}
}

// key returns the cached entry of the key with digest, if any, and the
// epoch to pass to putKey after a miss. The entry must not be changed.
func (c *credCache) key(digest [32]byte) (e *keyEntry, epoch uint64) {
	if c.max <= 0 {
		return nil, 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e := c.keys[digest]; e != nil && c.enabled && c.now().Before(e.expires) {
		return e, c.epoch
	}
	return nil, c.epoch
}

// putKey caches e, made from a database read begun at epoch.
func (c *credCache) putKey(digest [32]byte, e *keyEntry, epoch uint64) {
	c.fill(&c.epoch, epoch, func() {
		makeRoom(c.keys, c.max)
		e.expires = c.now().Add(c.ttl)
		c.keys[digest] = e
	})
}

// fill runs put with the lock held, unless the cache is off or bypassed,
// or an invalidation came since the database read begun at epoch (of the
// current epoch cur).
func (c *credCache) fill(cur *uint64, epoch uint64, put func()) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enabled && *cur == epoch {
		put()
	}
}

// makeRoom evicts an entry from m if it holds max. Go's map order is random
// enough to choose by: credentials in use come back at the cost of a query.
func makeRoom[K comparable, V any](m map[K]V, max int) {
	if len(m) < max {
		return
	}
	for k := range m {
		delete(m, k)
		return
	}
}

// user returns the cached entry of the user, if any, and the epoch to
// pass to putUser after a miss. The entry must not be changed.
func (c *credCache) user(id uuid.UUID) (e *userEntry, epoch uint64) {
	if c.max <= 0 {
		return nil, 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e := c.users[id]; e != nil && c.enabled && c.now().Before(e.expires) {
		return e, c.epoch
	}
	return nil, c.epoch
}

// putUser caches the user's token state, read from the database at epoch.
func (c *credCache) putUser(id uuid.UUID, tokens store.TokenState, epoch uint64) {
	c.fill(&c.epoch, epoch, func() {
		makeRoom(c.users, c.max)
		c.users[id] = &userEntry{tokens: tokens, expires: c.now().Add(c.ttl)}
	})
}

// list returns the cached listing of user's keys, if any, as it stands at
// now (the server's clock), and the epoch to pass to putList after a miss.
// The entry must not be changed.
func (c *credCache) list(user uuid.UUID, now time.Time) (e *listEntry, epoch uint64) {
	if c.max <= 0 {
		return nil, 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e := c.lists[user]; e != nil && c.enabled && c.now().Before(e.expires) && (e.until.IsZero() || now.Before(e.until)) {
		return e, c.lEpoch
	}
	return nil, c.lEpoch
}

// putList caches body as user's listing, made from a database read begun
// at epoch, for the entries' lifetime, and only while the server's clock
// is before until (zero: no bound): a listed key's expiry changes what the
// listing says.
func (c *credCache) putList(user uuid.UUID, body []byte, link string, until time.Time, epoch uint64) {
	if len(body) > maxListingBytes {
		return
	}
	c.fill(&c.lEpoch, epoch, func() {
		c.dropListLocked(user)
		for len(c.lists) > 0 && (len(c.lists) >= c.max || c.listLen+len(body) > maxListingsBytes) {
			for u := range c.lists {
				c.dropListLocked(u)
				break
			}
		}
		c.lists[user] = &listEntry{body: body, link: link, expires: c.now().Add(c.ttl), until: until}
		c.listLen += len(body)
	})
}

func (c *credCache) dropListLocked(user uuid.UUID) {
	if e := c.lists[user]; e != nil {
		c.listLen -= len(e.body)
		delete(c.lists, user)
	}
}

// Listening implements store.ChangeHandler: whatever the cache holds may be
// stale when notifications stop, and when they resume (some may have been
// missed in between), so both empty it.
func (c *credCache) Listening(ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.enabled = ok
	c.clearLocked()
}

// Changed implements store.ChangeHandler; the server also reports its own
// changes through it, at once.
func (c *credCache) Changed(ch store.Change) {
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
			if e.owner.User.ID == id {
				delete(c.keys, d)
			}
		}
	}
	if ch.KeysOf != uuid.Nil {
		c.dropListLocked(ch.KeysOf)
	}
}

// clearLocked forgets every credential.
func (c *credCache) clearLocked() {
	c.epoch++
	c.lEpoch++
	clear(c.keys)
	clear(c.users)
	clear(c.lists)
	c.listLen = 0
}

// listening reports whether the cache is in use.
func (c *credCache) listening() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.enabled
}

// cacheStats describes the cache's content.
type cacheStats struct{ keys, users, lists int }

func (c *credCache) stats() cacheStats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return cacheStats{keys: len(c.keys), users: len(c.users), lists: len(c.lists)}
}
