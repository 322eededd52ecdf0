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
//   - user ID -> that the user exists (for JWTs).
//
// It is correct only while it hears of every change: the instance that
// revokes a key drops it at once, and every instance drops what the
// database announces (store.ListenForChanges). While the notification
// connection is down the cache is emptied and bypassed, since changes may
// be missed; entries also expire after a lifetime, as a backstop.
//
// A lookup that misses reads the database and then fills the cache, but an
// invalidation may come in between (the read saw the key before its
// revocation committed, the notification arrived before the fill). Every
// invalidation therefore bumps an epoch, and a fill is dropped when the
// epoch moved since its read began.
type credCache struct {
	max int           // entries per map; 0 disables the cache
	ttl time.Duration // lifetime of an entry
	now func() time.Time

	mu      sync.RWMutex
	enabled bool // notifications are being heard
	epoch   uint64
	keys    map[[32]byte]*keyEntry
	users   map[uuid.UUID]time.Time // user -> when the entry expires
}

// keyEntry is one cached API key. A later check that must run on every use
// of a key (an expiry) or a record of its use (a last-used time, written
// back in batches by key ID) belongs here, next to the owner.
type keyEntry struct {
	owner   store.KeyOwner
	me      []byte // GET /v1/me's response body, encoded once
	expires time.Time
}

func newCredCache(max int, ttl time.Duration) *credCache {
	return &credCache{
		max: max, ttl: ttl, now: time.Now,
		keys:  make(map[[32]byte]*keyEntry),
		users: make(map[uuid.UUID]time.Time),
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
	c.fill(epoch, func() {
		makeRoom(c.keys, c.max)
		e.expires = c.now().Add(c.ttl)
		c.keys[digest] = e
	})
}

// fill runs put with the lock held, unless the cache is off or bypassed,
// or an invalidation came since the database read begun at epoch.
func (c *credCache) fill(epoch uint64, put func()) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enabled && c.epoch == epoch {
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

// userExists reports whether the user is known to exist, and the epoch to
// pass to putUser after a miss.
func (c *credCache) userExists(id uuid.UUID) (known bool, epoch uint64) {
	if c.max <= 0 {
		return false, 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	exp, ok := c.users[id]
	return ok && c.enabled && c.now().Before(exp), c.epoch
}

// putUser caches that a database read begun at epoch found the user.
func (c *credCache) putUser(id uuid.UUID, epoch uint64) {
	c.fill(epoch, func() {
		makeRoom(c.users, c.max)
		c.users[id] = c.now().Add(c.ttl)
	})
}

// dropKey forgets the key with digest.
func (c *credCache) dropKey(digest []byte) {
	if c.max <= 0 || len(digest) != 32 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	delete(c.keys, [32]byte(digest))
}

// dropUser forgets the user and every key of theirs.
func (c *credCache) dropUser(id uuid.UUID) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	delete(c.users, id)
	for d, e := range c.keys {
		if e.owner.User.ID == id {
			delete(c.keys, d)
		}
	}
}

// Listening implements store.ChangeHandler: whatever the cache holds may be
// stale when notifications stop, and when they resume (some may have been
// missed in between), so both empty it.
func (c *credCache) Listening(ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.enabled = ok
	clear(c.keys)
	clear(c.users)
}

// Changed implements store.ChangeHandler.
func (c *credCache) Changed(ch store.Change) {
	switch {
	case ch.Digest != nil:
		c.dropKey(ch.Digest)
	case ch.UserID != uuid.Nil:
		c.dropUser(ch.UserID)
	default:
		c.flush()
	}
}

// flush forgets everything.
func (c *credCache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	clear(c.keys)
	clear(c.users)
}

// listening reports whether the cache is in use.
func (c *credCache) listening() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.enabled
}

// size returns the number of cached keys and users.
func (c *credCache) size() (keys, users int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.keys), len(c.users)
}
