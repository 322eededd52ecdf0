package password_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"authapi/password"
)

// cheap keeps tests fast; the parameters are still argon2id's.
var cheap = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func mustHasher(tb testing.TB, p password.Params, pool password.Pool) *password.Hasher {
	tb.Helper()
	h, err := password.NewHasher(p, pool)
	if err != nil {
		tb.Fatalf("NewHasher(%+v) = %v", p, err)
	}
	return h
}

func TestHashFormat(t *testing.T) {
	h := mustHasher(t, password.OWASP, password.DefaultPool)
	enc, err := h.Hash(context.Background(), "secureP@ss123")
	if err != nil {
		t.Fatal(err)
	}
	phc := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !phc.MatchString(enc) {
		t.Fatalf("Hash() = %q, want an argon2id PHC string with OWASP parameters", enc)
	}
	again, err := h.Hash(context.Background(), "secureP@ss123")
	if err != nil {
		t.Fatal(err)
	}
	if again == enc {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
}

func TestVerify(t *testing.T) {
	h := mustHasher(t, cheap, password.DefaultPool)
	long := strings.Repeat("a", 127)
	multibyte := strings.Repeat("密", 127)
	for _, tc := range []struct {
		name, stored, tried string
		want                bool
	}{
		{"same", "secureP@ss123", "secureP@ss123", true},
		{"wrong", "secureP@ss123", "secureP@ss124", false},
		{"case matters", "secureP@ss123", "SECUREP@SS123", false},
		{"empty tried", "secureP@ss123", "", false},
		{"differ in the 128th character", long + "x", long + "y", false},
		{"128 multibyte characters", multibyte + "码", multibyte + "码", true},
		{"multibyte, differ at the end", multibyte + "码", multibyte + "马", false},
		{"prefix is not enough", "secureP@ss123", "secureP@ss12", false},
		{"NUL is a character", "abc\x00defgh", "abc\x00defgi", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := h.Hash(context.Background(), tc.stored)
			if err != nil {
				t.Fatal(err)
			}
			got, err := h.Verify(context.Background(), tc.tried, enc)
			if err != nil || got != tc.want {
				t.Fatalf("Verify(%q, Hash(%q)) = %v, %v, want %v", tc.tried, tc.stored, got, err, tc.want)
			}
		})
	}
}

func TestVerifyRefusesMalformedHashes(t *testing.T) {
	h := mustHasher(t, cheap, password.DefaultPool)
	good, _ := h.Hash(context.Background(), "secureP@ss123")
	for _, enc := range []string{
		"",
		"plaintext",
		"$2a$10$abcdefghijklmnopqrstuuJZ5p6wOZIVjDT1b9B2lZp0bVi8vBrmO", // bcrypt
		strings.Replace(good, "argon2id", "argon2i", 1),
		strings.Replace(good, "v=19", "v=16", 1),
		strings.Replace(good, "m=64", "m=9999999999", 1),
		strings.Replace(good, "t=1", "t=0", 1),
		good[:len(good)-10],
		good + "$extra",
	} {
		if _, err := h.Verify(context.Background(), "secureP@ss123", enc); !errors.Is(err, password.ErrInvalidHash) {
			t.Errorf("Verify(_, %q) = %v, want ErrInvalidHash", enc, err)
		}
	}
}

func TestVerifyUsesTheStoredParameters(t *testing.T) {
	old := mustHasher(t, cheap, password.DefaultPool)
	enc, _ := old.Hash(context.Background(), "secureP@ss123")
	stronger := cheap
	stronger.Time = 2
	cur := mustHasher(t, stronger, password.DefaultPool)
	if ok, err := cur.Verify(context.Background(), "secureP@ss123", enc); !ok || err != nil {
		t.Fatalf("Verify with newer parameters = %v, %v, want true", ok, err)
	}
	if !cur.NeedsRehash(enc) {
		t.Fatal("NeedsRehash(old hash) = false, want true")
	}
	fresh, _ := cur.Hash(context.Background(), "another password")
	if cur.NeedsRehash(fresh) {
		t.Fatal("NeedsRehash(current hash) = true, want false")
	}
}

func TestVerifyDummy(t *testing.T) {
	h := mustHasher(t, cheap, password.DefaultPool)
	if err := h.VerifyDummy(context.Background(), "anything"); err != nil {
		t.Fatalf("VerifyDummy = %v", err)
	}
}

func TestPoolIsBounded(t *testing.T) {
	h := mustHasher(t, cheap, password.Pool{Workers: 1, Queue: 1, MaxWait: 50 * time.Millisecond})
	ctx := context.Background()
	release, err := h.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// One caller may wait; it gives up after MaxWait.
	start := time.Now()
	if _, err := h.Hash(ctx, "secureP@ss123"); !errors.Is(err, password.ErrBusy) {
		t.Fatalf("Hash with the only worker busy = %v, want ErrBusy after MaxWait", err)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("Hash gave up after %v, want about MaxWait", d)
	}

	// With the queue full too, the next caller is refused at once.
	waiting := make(chan error, 1)
	go func() { _, err := h.Hash(ctx, "password x"); waiting <- err }()
	time.Sleep(10 * time.Millisecond) // let it take the queue's place
	start = time.Now()
	if _, err := h.Hash(ctx, "password y"); !errors.Is(err, password.ErrBusy) || time.Since(start) > 20*time.Millisecond {
		t.Fatalf("Hash with a full queue = %v after %v, want ErrBusy at once", err, time.Since(start))
	}
	<-waiting

	// A cancelled caller leaves the queue with ctx's error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h.Hash(cctx, "password z"); !errors.Is(err, context.Canceled) && !errors.Is(err, password.ErrBusy) {
		t.Fatalf("Hash(cancelled ctx) = %v, want context.Canceled", err)
	}

	// Once the worker is free, hashing works again.
	release()
	if _, err := h.Hash(ctx, "secureP@ss123"); err != nil {
		t.Fatalf("Hash after release = %v", err)
	}
}

func TestNewHasherRefusesWeakParameters(t *testing.T) {
	for _, p := range []password.Params{
		{Memory: 64, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 0, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 8},
	} {
		if _, err := password.NewHasher(p, password.DefaultPool); err == nil {
			t.Errorf("NewHasher(%+v) = nil error, want refusal", p)
		}
	}
}

func BenchmarkHashOWASP(b *testing.B) {
	h := mustHasher(b, password.OWASP, password.DefaultPool)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.Hash(context.Background(), "secureP@ss123"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestCheckLength: a new password has 8 to 128 code points, whatever the
// HTTP layer let through; Hash refuses the others before any work.
func TestCheckLength(t *testing.T) {
	h := mustHasher(t, cheap, password.DefaultPool)
	for _, tc := range []struct {
		name, password string
		ok             bool
	}{
		{"7", "1234567", false},
		{"8", "12345678", true},
		{"8 astral characters", strings.Repeat("😀", 8), true},
		{"7 astral characters (28 bytes)", strings.Repeat("😀", 7), false},
		{"128 multibyte", strings.Repeat("码", 128), true},
		{"129", strings.Repeat("a", 129), false},
		{"empty", "", false},
	} {
		err := password.CheckLength(tc.password)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, password.ErrLength) {
			t.Errorf("CheckLength(%s) = %v, want ok %v", tc.name, err, tc.ok)
		}
		if _, err := h.Hash(context.Background(), tc.password); (err == nil) != tc.ok {
			t.Errorf("Hash(%s) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
