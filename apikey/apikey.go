// Package apikey makes and checks API keys of the form
//
//	rst_ + 32 random base62 characters + 6-character base62 CRC-32 checksum
//
// in the manner of GitHub's token format: the fixed prefix lets secret
// scanners find leaked keys, and the checksum lets the server refuse a
// mistyped or made-up key without a database lookup. The database keeps only
// an HMAC-SHA-256 digest of a key under a server-side pepper, so a dump of
// the database alone cannot confirm a leaked key.
package apikey

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"hash"
	"hash/crc32"
	"io"
	"sync"
)

const (
	// Prefix starts every key.
	Prefix = "rst_"
	// RandomLen is the number of random base62 characters (about 190 bits).
	RandomLen = 32
	// ChecksumLen is the number of base62 characters of the CRC-32 checksum.
	ChecksumLen = 6
	// Len is the length of a whole key.
	Len = len(Prefix) + RandomLen + ChecksumLen
	// DisplayLen is the length of the displayed prefix of a key.
	DisplayLen = 8
	// DigestLen is the length of a key's digest.
	DigestLen = sha256.Size
)

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// ErrMalformed is returned by Parse for anything that is not a well-formed key.
var ErrMalformed = errors.New("apikey: malformed key")

// Generate returns a new key drawn from random, which must be a
// cryptographic source (crypto/rand.Reader in production).
func Generate(random io.Reader) (string, error) {
	var b [Len]byte
	copy(b[:], Prefix)
	body := b[len(Prefix) : len(Prefix)+RandomLen]
	// Rejection sampling keeps every character uniform: bytes >= 248 (the
	// largest multiple of 62 that fits in a byte) are discarded, not folded.
	var buf [64]byte
	for n := 0; n < RandomLen; {
		if _, err := io.ReadFull(random, buf[:]); err != nil {
			return "", err
		}
		for _, c := range buf {
			if c >= 248 {
				continue
			}
			body[n] = alphabet[c%62]
			if n++; n == RandomLen {
				break
			}
		}
	}
	putChecksum(b[len(Prefix)+RandomLen:], b[:len(Prefix)+RandomLen])
	return string(b[:]), nil
}

// MustGenerate is Generate from crypto/rand, which cannot fail on the
// platforms Go supports.
func MustGenerate() string {
	k, err := Generate(rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// Parse reports whether key is well formed: the prefix, the length, the
// alphabet and the checksum. It does not say whether the key exists.
func Parse(key string) error {
	if len(key) != Len || key[:len(Prefix)] != Prefix {
		return ErrMalformed
	}
	for i := len(Prefix); i < Len; i++ {
		if !isBase62(key[i]) {
			return ErrMalformed
		}
	}
	var want [ChecksumLen]byte
	putChecksum(want[:], []byte(key[:len(Prefix)+RandomLen]))
	if string(want[:]) != key[len(Prefix)+RandomLen:] {
		return ErrMalformed
	}
	return nil
}

// DisplayPrefix returns the first characters of a key, shown in listings so
// that a person can tell keys apart.
func DisplayPrefix(key string) string { return key[:DisplayLen] }

// putChecksum writes the base62 CRC-32 (IEEE) of data into dst, most
// significant digit first, zero-padded.
func putChecksum(dst []byte, data []byte) {
	sum := crc32.ChecksumIEEE(data)
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = alphabet[sum%62]
		sum /= 62
	}
}

func isBase62(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}

// Digester computes the digests under which keys are stored and looked up.
type Digester struct {
	pool sync.Pool // of hash.Hash; an HMAC's key schedule is worth reusing on the hot path
}

// NewDigester returns a Digester keyed with pepper, a server-side secret
// kept outside the database.
func NewDigester(pepper []byte) *Digester {
	pepper = append([]byte(nil), pepper...)
	return &Digester{pool: sync.Pool{New: func() any { return hmac.New(sha256.New, pepper) }}}
}

// Digest returns HMAC-SHA-256(pepper, key).
func (d *Digester) Digest(key string) []byte {
	h := d.pool.Get().(hash.Hash)
	h.Reset()
	io.WriteString(h, key)
	sum := h.Sum(make([]byte, 0, DigestLen))
	d.pool.Put(h)
	return sum
}
