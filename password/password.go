// Package password hashes and verifies passwords with argon2id, in the PHC
// string format, on a bounded pool of workers.
//
// argon2id is memory-hard on purpose (19 MiB a hash with OWASP's minimum
// parameters), so an unbounded burst of logins would exhaust memory. Every
// hash therefore runs on one of a fixed number of slots (one per CPU by
// default); callers wait in a bounded queue for at most a set time and get
// ErrBusy when it is full, which the server turns into 503 with Retry-After.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8  // lanes
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// OWASP are the minimum parameters OWASP's Password Storage Cheat Sheet
// recommends for argon2id: m=19 MiB, t=2, p=1.
var OWASP = Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Pool bounds the hashing work.
type Pool struct {
	// Workers is how many hashes may run at once; 0 means one per CPU.
	Workers int
	// Queue is how many callers may wait for a worker; beyond it they get
	// ErrBusy at once. Waiting callers hold no argon2 memory.
	Queue int
	// MaxWait is how long a caller waits for a worker before ErrBusy.
	MaxWait time.Duration
}

// DefaultPool is one worker per CPU and a queue deep enough for a burst of a
// few hundred logins to drain within MaxWait.
var DefaultPool = Pool{Queue: 1024, MaxWait: 10 * time.Second}

var (
	// ErrBusy means the hashing pool is saturated; retry later.
	ErrBusy = errors.New("password: too many hashes in progress")
	// ErrInvalidHash means a stored hash is not an argon2id PHC string.
	ErrInvalidHash = errors.New("password: invalid argon2id hash")
	// ErrLength means a new password is shorter than MinLength or longer
	// than MaxLength.
	ErrLength = fmt.Errorf("password: must be %d to %d characters", MinLength, MaxLength)
)

// The lengths of a password, in Unicode code points: every character
// counts, and none is ever cut off.
const (
	MinLength = 8
	MaxLength = 128
)

// CheckLength returns ErrLength unless password has MinLength to MaxLength
// code points.
func CheckLength(password string) error {
	if n := utf8.RuneCountInString(password); n < MinLength || n > MaxLength {
		return ErrLength
	}
	return nil
}

// Hasher hashes and verifies passwords.
type Hasher struct {
	params  Params
	workers chan struct{} // a token per running hash
	admit   chan struct{} // a token per running or waiting caller
	maxWait time.Duration
	dummy   string // a hash of nothing in particular, for unknown users
}

// NewHasher returns a Hasher with the given cost parameters and pool. It
// computes one hash at once, to have a dummy to verify against.
func NewHasher(p Params, pool Pool) (*Hasher, error) {
	if p.Memory < 8*uint32(p.Threads) || p.Time < 1 || p.Threads < 1 || p.SaltLen < 8 || p.KeyLen < 16 {
		return nil, fmt.Errorf("password: unusable argon2id parameters %+v", p)
	}
	if pool.Workers <= 0 {
		pool.Workers = runtime.GOMAXPROCS(0)
	}
	if pool.Queue < 0 {
		pool.Queue = 0
	}
	if pool.MaxWait <= 0 {
		pool.MaxWait = DefaultPool.MaxWait
	}
	h := &Hasher{
		params:  p,
		workers: make(chan struct{}, pool.Workers),
		admit:   make(chan struct{}, pool.Workers+pool.Queue),
		maxWait: pool.MaxWait,
	}
	dummy, err := h.encode("dummy password, never matches a real one")
	if err != nil {
		return nil, err
	}
	h.dummy = dummy
	return h, nil
}

// Hash returns the PHC string of password with a fresh salt. It returns
// ErrLength for a password no account may have (whatever the HTTP layer
// let through), ErrBusy when the pool is saturated, or ctx's error.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if err := CheckLength(password); err != nil {
		return "", err
	}
	release, err := h.acquire(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return h.encode(password)
}

// Verify reports whether password matches encoded, a PHC string made by
// Hash (with these or other parameters). It returns ErrBusy when the pool is
// saturated, ErrInvalidHash for a malformed encoded, or ctx's error.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (bool, error) {
	p, salt, key, err := decode(encoded)
	if err != nil {
		return false, err
	}
	release, err := h.acquire(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// VerifyDummy does the work of a failed Verify against a hash with the
// current parameters, so that a login for an unknown user takes as long as
// one with a wrong password. It returns only pool and ctx errors.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) error {
	_, err := h.Verify(ctx, password, h.dummy)
	return err
}

// NeedsRehash reports whether encoded was made with parameters other than
// the current ones, so that a successful login can upgrade it.
func (h *Hasher) NeedsRehash(encoded string) bool {
	p, salt, key, err := decode(encoded)
	if err != nil {
		return true
	}
	return p.Memory != h.params.Memory || p.Time != h.params.Time || p.Threads != h.params.Threads ||
		uint32(len(salt)) != h.params.SaltLen || uint32(len(key)) != h.params.KeyLen
}

// Running returns how many hashes are being computed now.
func (h *Hasher) Running() int { return len(h.workers) }

// Queued returns how many callers wait for a worker now.
func (h *Hasher) Queued() int { return max(len(h.admit)-len(h.workers), 0) }

// acquire waits for a worker, bounded by the queue, MaxWait and ctx.
func (h *Hasher) acquire(ctx context.Context) (release func(), err error) {
	select {
	case h.admit <- struct{}{}:
	default:
		return nil, ErrBusy
	}
	select {
	case h.workers <- struct{}{}:
		return func() { <-h.workers; <-h.admit }, nil
	default:
	}
	timer := time.NewTimer(h.maxWait)
	defer timer.Stop()
	select {
	case h.workers <- struct{}{}:
		return func() { <-h.workers; <-h.admit }, nil
	case <-timer.C:
		err = ErrBusy
	case <-ctx.Done():
		err = ctx.Err()
	}
	<-h.admit
	return nil, err
}

var b64 = base64.RawStdEncoding

func (h *Hasher) encode(password string) (string, error) {
	salt := make([]byte, h.params.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, h.params.Time, h.params.Memory, h.params.Threads, h.params.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, h.params.Memory, h.params.Time, h.params.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Bounds on parameters read back from a stored hash, so that a corrupt row
// cannot make one verification allocate gigabytes.
const (
	maxMemory  = 1 << 20 // KiB: 1 GiB
	maxTime    = 100
	maxKeyLen  = 1024
	maxSaltLen = 1024
)

func decode(encoded string) (p Params, salt, key []byte, err error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, ErrInvalidHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, ErrInvalidHash
	}
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil || n != 3 {
		return p, nil, nil, ErrInvalidHash
	}
	if salt, err = b64.DecodeString(parts[4]); err != nil {
		return p, nil, nil, ErrInvalidHash
	}
	if key, err = b64.DecodeString(parts[5]); err != nil {
		return p, nil, nil, ErrInvalidHash
	}
	if p.Time < 1 || p.Time > maxTime || p.Threads < 1 || p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory ||
		len(key) < 16 || len(key) > maxKeyLen || len(salt) < 8 || len(salt) > maxSaltLen {
		return p, nil, nil, ErrInvalidHash
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	return p, salt, key, nil
}
