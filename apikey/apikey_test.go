package apikey_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"regexp"
	"strings"
	"testing"

	"authapi/apikey"
)

// keyPattern is the documented shape of a key.
var keyPattern = regexp.MustCompile(`^rst_[A-Za-z0-9]{38}$`)

func TestGenerateShapeAndChecksum(t *testing.T) {
	seen := make(map[string]bool)
	for i := 0; i < 1000; i++ {
		k := apikey.MustGenerate()
		if !keyPattern.MatchString(k) {
			t.Fatalf("Generate() = %q, want a match for %v", k, keyPattern)
		}
		if err := apikey.Parse(k); err != nil {
			t.Fatalf("Parse(Generate()) = %v, want nil", err)
		}
		if seen[k] {
			t.Fatalf("Generate() repeated %q", k)
		}
		seen[k] = true
		if got := apikey.DisplayPrefix(k); got != k[:8] || !strings.HasPrefix(got, "rst_") {
			t.Fatalf("DisplayPrefix(%q) = %q", k, got)
		}
	}
}

func TestGenerateIsUniform(t *testing.T) {
	// Every one of the 62 characters must turn up, about equally often,
	// across many keys: a biased mapping (c % 62 without rejection) or a
	// truncated alphabet shows up here.
	counts := make(map[rune]int)
	const keys = 4000
	for i := 0; i < keys; i++ {
		k := apikey.MustGenerate()
		for _, c := range k[4 : 4+apikey.RandomLen] {
			counts[c]++
		}
	}
	if len(counts) != 62 {
		t.Fatalf("saw %d distinct characters, want 62", len(counts))
	}
	mean := float64(keys*apikey.RandomLen) / 62
	for c, n := range counts {
		if d := float64(n) / mean; d < 0.85 || d > 1.15 {
			t.Errorf("character %q appears %d times, %.2f of the mean", c, n, d)
		}
	}
}

func TestGenerateFailsWithItsSource(t *testing.T) {
	if _, err := apikey.Generate(bytes.NewReader(nil)); err == nil {
		t.Fatal("Generate(empty reader) = nil error, want the reader's error")
	}
}

func TestParseRefuses(t *testing.T) {
	good := apikey.MustGenerate()
	for _, tc := range []struct {
		name, key string
	}{
		{"empty", ""},
		{"prefix only", "rst_"},
		{"wrong prefix", "rsk_" + good[4:]},
		{"upper-case prefix", "RST_" + good[4:]},
		{"short", good[:len(good)-1]},
		{"long", good + "0"},
		{"non-base62", good[:10] + "-" + good[11:]},
		{"non-ASCII", good[:10] + "é" + good[12:]},
		{"JWT", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.x"},
		{"NUL", good[:10] + "\x00" + good[11:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := apikey.Parse(tc.key); !errors.Is(err, apikey.ErrMalformed) {
				t.Fatalf("Parse(%q) = %v, want ErrMalformed", tc.key, err)
			}
		})
	}
}

func TestChecksumCatchesEverySingleCharacterChange(t *testing.T) {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	for n := 0; n < 20; n++ {
		k := apikey.MustGenerate()
		for i := 4; i < len(k); i++ {
			for _, c := range alphabet {
				if byte(c) == k[i] {
					continue
				}
				mutated := k[:i] + string(c) + k[i+1:]
				if err := apikey.Parse(mutated); err == nil {
					t.Fatalf("Parse(%q) accepted a key with character %d changed from %q", mutated, i, k[i])
				}
			}
		}
	}
}

func TestChecksumCatchesSwaps(t *testing.T) {
	k := apikey.MustGenerate()
	for i := 4; i+1 < len(k); i++ {
		if k[i] == k[i+1] {
			continue
		}
		swapped := k[:i] + string(k[i+1]) + string(k[i]) + k[i+2:]
		if err := apikey.Parse(swapped); err == nil {
			t.Fatalf("Parse(%q) accepted characters %d and %d swapped", swapped, i, i+1)
		}
	}
}

func TestDigestIsHMACUnderPepper(t *testing.T) {
	k := apikey.MustGenerate()
	pepper := make([]byte, 32)
	rand.Read(pepper)
	d := apikey.NewDigester(pepper)

	mac := hmac.New(sha256.New, pepper)
	mac.Write([]byte(k))
	want := mac.Sum(nil)
	for i := 0; i < 3; i++ { // again, through the pooled hash
		if got := d.Digest(k); !bytes.Equal(got, want) {
			t.Fatalf("Digest(%q) = %x, want %x", k, got, want)
		}
	}
	plain := sha256.Sum256([]byte(k))
	if bytes.Equal(d.Digest(k), plain[:]) {
		t.Fatal("Digest is a plain SHA-256: the pepper is not used")
	}
	if other := apikey.NewDigester([]byte("another pepper of 32 bytes......")); bytes.Equal(other.Digest(k), want) {
		t.Fatal("two peppers give the same digest")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(apikey.MustGenerate())
	f.Add("rst_")
	f.Add("rst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, key string) {
		err := apikey.Parse(key)
		if err == nil && !keyPattern.MatchString(key) {
			t.Fatalf("Parse(%q) = nil for a key outside the documented pattern", key)
		}
	})
}
