// Package limit bounds what one client (an address, a user) may do, in
// memory and before any other work: token buckets per key, and a gate that
// lets one request per key at a time do expensive work. Memory is bounded
// whatever the number of keys.
package limit

import (
	"context"
	"hash/maphash"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// shards spread the keys over locks, so that unrelated clients do not
// contend.
const shards = 16

// Buckets is a token bucket per key: n tokens per period, and bursts of up
// to n. The zero value and a nil *Buckets admit everything.
type Buckets struct {
	limit   rate.Limit
	burst   int
	maxKeys int // per shard
	seed    maphash.Seed
	shard   [shards]keyShard
}

// keyShard is the buckets of the keys that hash to it.
type keyShard struct {
	mu sync.Mutex
	m  map[string]*bucket
}

// bucket is one key's tokens, and how many of them Hold has set aside.
type bucket struct {
	tokens *rate.Limiter
	held   int
}

// DefaultMaxKeys bounds the keys a Buckets remembers.
const DefaultMaxKeys = 100_000

// New returns buckets of n tokens per period for at most maxKeys keys
// (0: DefaultMaxKeys). n <= 0 returns nil, which admits everything.
func New(n int, per time.Duration, maxKeys int) *Buckets {
	if n <= 0 || per <= 0 {
		return nil
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	b := &Buckets{limit: rate.Limit(float64(n) / per.Seconds()), burst: n, maxKeys: max(maxKeys/shards, 1), seed: maphash.MakeSeed()}
	for i := range b.shard {
		b.shard[i].m = make(map[string]*bucket)
	}
	return b
}

// Allow takes a token of key's bucket at now. When there is none it takes
// nothing and says how long until there is one.
func (b *Buckets) Allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	if b == nil {
		return true, 0
	}
	s, k := b.lock(key, now)
	defer s.mu.Unlock()
	if t := k.tokens.TokensAt(now) - float64(k.held); t < 1 {
		return false, b.wait(t)
	}
	k.tokens.AllowN(now, 1)
	return true, 0
}

// Empty reports whether key's bucket has no token at now that is not
// held, and how long until it has one, without taking any.
func (b *Buckets) Empty(key string, now time.Time) (empty bool, retryAfter time.Duration) {
	if b == nil {
		return false, 0
	}
	s := &b.shard[b.index(key)]
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.m[key]
	if k == nil {
		return false, 0
	}
	if t := k.tokens.TokensAt(now) - float64(k.held); t < 1 {
		return true, b.wait(t)
	}
	return false, 0
}

// Take takes a token of key's bucket at now if there is one: it counts an
// event (a failure) that Empty then weighs.
func (b *Buckets) Take(key string, now time.Time) {
	if b != nil {
		s, k := b.lock(key, now)
		k.tokens.AllowN(now, 1)
		s.mu.Unlock()
	}
}

// Hold sets a token of key's bucket aside for work whose outcome decides
// whether it is spent (a credential looked up: spent if it fails), so that
// concurrent work cannot spend more tokens than there are. When none is
// free it holds nothing and says how long until one is. done, called once
// the outcome is known (at), spends the token or gives it back.
func (b *Buckets) Hold(key string, now time.Time) (done func(spend bool, at time.Time), ok bool, retryAfter time.Duration) {
	if b == nil {
		return func(bool, time.Time) {}, true, 0
	}
	s, k := b.lock(key, now)
	defer s.mu.Unlock()
	if t := k.tokens.TokensAt(now) - float64(k.held); t < 1 {
		return nil, false, b.wait(t)
	}
	k.held++
	return func(spend bool, at time.Time) {
		s.mu.Lock()
		defer s.mu.Unlock()
		k.held--
		if spend {
			k.tokens.AllowN(at, 1)
		}
	}, true, 0
}

// wait is how long until a bucket with t free tokens has one.
func (b *Buckets) wait(t float64) time.Duration {
	return time.Duration((1 - t) / float64(b.limit) * float64(time.Second))
}

func (b *Buckets) index(key string) int {
	return int(maphash.String(b.seed, key) % shards)
}

// lock locks key's shard and returns it with key's bucket, making room for
// it if the shard is full: first by forgetting full buckets that hold
// nothing (such a bucket is the same as a new one, so nothing is lost),
// then, if too many are in use, an eighth of the idle ones at random, so
// that the sweep is paid once per many new keys.
func (b *Buckets) lock(key string, now time.Time) (*keyShard, *bucket) {
	s := &b.shard[b.index(key)]
	s.mu.Lock()
	if k := s.m[key]; k != nil {
		return s, k
	}
	if len(s.m) >= b.maxKeys {
		for name, k := range s.m {
			if k.held == 0 && k.tokens.TokensAt(now) >= float64(b.burst) {
				delete(s.m, name)
			}
		}
		for name, k := range s.m {
			if len(s.m) <= b.maxKeys-max(b.maxKeys/8, 1) {
				break
			}
			if k.held == 0 {
				delete(s.m, name)
			}
		}
	}
	k := &bucket{tokens: rate.NewLimiter(b.limit, b.burst)}
	s.m[key] = k
	return s, k
}

// Len returns how many keys are remembered.
func (b *Buckets) Len() int {
	if b == nil {
		return 0
	}
	n := 0
	for i := range b.shard {
		b.shard[i].mu.Lock()
		n += len(b.shard[i].m)
		b.shard[i].mu.Unlock()
	}
	return n
}

// Gate lets Size holders per key in at a time (one when Size is 0); the
// others wait their turn. Waiting holds nothing but the waiter itself, so
// work done inside (a database transaction, a password hash) cannot be
// crowded by one key.
type Gate struct {
	Size int
	mu   sync.Mutex
	m    map[string]*turn
}

type turn struct {
	ch   chan struct{} // holds a token per holder
	refs int           // holders and waiters
}

// Enter waits until key's turn is free or ctx ends, and returns the
// function that leaves it.
func (g *Gate) Enter(ctx context.Context, key string) (leave func(), err error) {
	g.mu.Lock()
	if g.m == nil {
		g.m = make(map[string]*turn)
	}
	t := g.m[key]
	if t == nil {
		t = &turn{ch: make(chan struct{}, max(g.Size, 1))}
		g.m[key] = t
	}
	t.refs++
	g.mu.Unlock()
	done := func() {
		g.mu.Lock()
		if t.refs--; t.refs == 0 {
			delete(g.m, key)
		}
		g.mu.Unlock()
	}
	select {
	case t.ch <- struct{}{}:
		return func() { <-t.ch; done() }, nil
	case <-ctx.Done():
		done()
		return nil, ctx.Err()
	}
}

// Len returns how many keys have a holder or a waiter.
func (g *Gate) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.m)
}
