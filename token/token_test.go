package token_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"authapi/token"
	"authapi/token/tokentest"
)

var (
	secret  = []byte("0123456789abcdef0123456789abcdef")
	older   = []byte("fedcba9876543210fedcba9876543210")
	epoch   = time.Date(2026, 2, 16, 10, 30, 0, 0, time.UTC)
	subject = "a1b2c3d4-5678-9abc-def0-123456789abc"
)

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

func mustService(tb testing.TB, c *clock, mod func(*token.Config)) *token.Service {
	tb.Helper()
	cfg := token.Config{Secret: secret, Issuer: "authapi", Audience: "authapi", TTL: time.Hour, Leeway: 5 * time.Second, Now: c.Now}
	if mod != nil {
		mod(&cfg)
	}
	s, err := token.New(cfg)
	if err != nil {
		tb.Fatalf("New = %v", err)
	}
	return s
}

func goodClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"sub": subject, "iss": "authapi", "aud": "authapi", "jti": "x",
		"iat": epoch.Unix(), "nbf": epoch.Unix(), "exp": epoch.Add(time.Hour).Unix(),
	}
}

func goodHeader() map[string]any { return map[string]any{"typ": "at+jwt", "kid": token.KeyID(secret)} }

func TestIssueCarriesTheClaims(t *testing.T) {
	c := &clock{epoch}
	s := mustService(t, c, nil)
	raw, err := s.Issue(subject, 7)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("Issue() = %q, want three parts", raw)
	}
	var header, claims map[string]any
	for i, dst := range []*map[string]any{&header, &claims} {
		b, _ := base64.RawURLEncoding.DecodeString(parts[i])
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	if header["alg"] != "HS256" || header["typ"] != "at+jwt" || header["kid"] != token.KeyID(secret) {
		t.Errorf("header = %v", header)
	}
	for _, k := range []string{"sub", "iat", "nbf", "exp", "iss", "aud", "jti", "auth_time", "gen"} {
		if _, ok := claims[k]; !ok {
			t.Errorf("claim %q missing from %v", k, claims)
		}
	}
	if claims["exp"].(float64)-claims["iat"].(float64) != 3600 {
		t.Errorf("exp - iat = %v, want 3600", claims["exp"].(float64)-claims["iat"].(float64))
	}
	other, err := s.Issue(subject, 0)
	if err != nil {
		t.Fatal(err)
	}
	if other == raw {
		t.Error("two tokens are identical: jti is not unique")
	}
	got, err := s.Verify(raw)
	if err != nil || got.Subject != subject || got.Generation != 7 || !got.AuthTime.Equal(epoch) || !got.IssuedAt.Equal(epoch) ||
		!got.Expires.Equal(epoch.Add(time.Hour)) || got.ID != claims["jti"] {
		t.Fatalf("Verify(Issue(%q, 7)) = %+v, %v; want its claims back", subject, got, err)
	}
	// The verification cache answers the same.
	if again, err := s.Verify(raw); err != nil || *again != *got {
		t.Fatalf("Verify again = %+v, %v; want %+v", again, err, got)
	}
}

func TestVerifyTime(t *testing.T) {
	for _, tc := range []struct {
		name    string
		at      time.Duration // after issuing
		wantErr error
	}{
		{"fresh", 0, nil},
		{"a second before exp", time.Hour - time.Second, nil},
		{"at exp", time.Hour, token.ErrExpired},
		{"after exp: no leeway", time.Hour + time.Second, token.ErrExpired},
		{"clock 3s behind the issuer (leeway)", -3 * time.Second, nil},
		{"clock 10s behind the issuer", -10 * time.Second, token.ErrInvalid},
	} {
		// With a cache, the token was verified (and remembered) when
		// issued: a later use must be judged the same.
		for _, cache := range []int{0, 10} {
			t.Run(fmt.Sprintf("%s, cache %d", tc.name, cache), func(t *testing.T) {
				c := &clock{epoch}
				s := mustService(t, c, func(cfg *token.Config) { cfg.CacheSize = cache })
				raw, _ := s.Issue(subject, 0)
				if _, err := s.Verify(raw); err != nil {
					t.Fatalf("Verify when issued = %v", err)
				}
				c.t = epoch.Add(tc.at)
				for range 2 {
					if _, err := s.Verify(raw); !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
						t.Fatalf("Verify at %v = %v, want %v", tc.at, err, tc.wantErr)
					}
				}
			})
		}
	}
}

func TestVerifyRefusesForgeries(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	without := func(k string) jwt.MapClaims { c := goodClaims(); delete(c, k); return c }
	with := func(k string, v any) jwt.MapClaims { c := goodClaims(); c[k] = v; return c }
	hdr := func(k string, v any) map[string]any { h := goodHeader(); h[k] = v; return h }

	for _, tc := range []struct {
		name string
		raw  func() string
	}{
		{"alg none", func() string {
			return tokentest.Forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, goodClaims(), goodHeader())
		}},
		{"HS384 with the right secret", func() string { return tokentest.Forge(t, jwt.SigningMethodHS384, secret, goodClaims(), goodHeader()) }},
		{"HS512 with the right secret", func() string { return tokentest.Forge(t, jwt.SigningMethodHS512, secret, goodClaims(), goodHeader()) }},
		{"RS256", func() string { return tokentest.Forge(t, jwt.SigningMethodRS256, rsaKey, goodClaims(), goodHeader()) }},
		{"wrong secret", func() string {
			return tokentest.Forge(t, jwt.SigningMethodHS256, []byte("another secret that is 32 bytes!"), goodClaims(), goodHeader())
		}},
		{"no exp", func() string { return tokentest.Forge(t, jwt.SigningMethodHS256, secret, without("exp"), goodHeader()) }},
		{"no nbf", func() string { return tokentest.Forge(t, jwt.SigningMethodHS256, secret, without("nbf"), goodHeader()) }},
		{"no iat", func() string { return tokentest.Forge(t, jwt.SigningMethodHS256, secret, without("iat"), goodHeader()) }},
		{"no sub", func() string { return tokentest.Forge(t, jwt.SigningMethodHS256, secret, without("sub"), goodHeader()) }},
		{"no jti", func() string { return tokentest.Forge(t, jwt.SigningMethodHS256, secret, without("jti"), goodHeader()) }},
		{"no iss", func() string { return tokentest.Forge(t, jwt.SigningMethodHS256, secret, without("iss"), goodHeader()) }},
		{"wrong iss", func() string {
			return tokentest.Forge(t, jwt.SigningMethodHS256, secret, with("iss", "evil"), goodHeader())
		}},
		{"no aud", func() string { return tokentest.Forge(t, jwt.SigningMethodHS256, secret, without("aud"), goodHeader()) }},
		{"wrong aud", func() string {
			return tokentest.Forge(t, jwt.SigningMethodHS256, secret, with("aud", "other"), goodHeader())
		}},
		{"nbf in the future", func() string {
			return tokentest.Forge(t, jwt.SigningMethodHS256, secret, with("nbf", epoch.Add(time.Minute).Unix()), goodHeader())
		}},
		{"iat in the future", func() string {
			return tokentest.Forge(t, jwt.SigningMethodHS256, secret, with("iat", epoch.Add(time.Minute).Unix()), goodHeader())
		}},
		{"expired", func() string {
			return tokentest.Forge(t, jwt.SigningMethodHS256, secret, with("exp", epoch.Add(-time.Second).Unix()), goodHeader())
		}},
		{"typ JWT", func() string {
			return tokentest.Forge(t, jwt.SigningMethodHS256, secret, goodClaims(), hdr("typ", "JWT"))
		}},
		{"no typ", func() string {
			return tokentest.Forge(t, jwt.SigningMethodHS256, secret, goodClaims(), hdr("typ", nil))
		}},
		{"no kid", func() string {
			return tokentest.Forge(t, jwt.SigningMethodHS256, secret, goodClaims(), hdr("kid", nil))
		}},
		{"crit header", func() string {
			return tokentest.Forge(t, jwt.SigningMethodHS256, secret, goodClaims(), hdr("crit", []string{"exp"}))
		}},
		{"empty crit header", func() string {
			return tokentest.Forge(t, jwt.SigningMethodHS256, secret, goodClaims(), hdr("crit", []string{}))
		}},
		{"unknown kid", func() string {
			return tokentest.Forge(t, jwt.SigningMethodHS256, secret, goodClaims(), hdr("kid", "0000000000000000"))
		}},
		{"empty", func() string { return "" }},
		{"garbage", func() string { return "not.a.jwt" }},
		{"an API key", func() string { return "rst_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p60IoT2U" }},
		{"huge", func() string { return strings.Repeat("a", 5000) + ".b.c" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustService(t, &clock{epoch}, nil)
			if c, err := s.Verify(tc.raw()); err == nil {
				t.Fatalf("Verify = %+v, nil; want an error", c)
			}
		})
	}
	// The control: the same forge with nothing wrong passes, so the cases
	// above fail for the reason they name.
	s := mustService(t, &clock{epoch}, nil)
	if _, err := s.Verify(tokentest.Forge(t, jwt.SigningMethodHS256, secret, goodClaims(), goodHeader())); err != nil {
		t.Fatalf("Verify(well-formed forge) = %v, want nil", err)
	}
}

func TestRotation(t *testing.T) {
	c := &clock{epoch}
	before := mustService(t, c, func(cfg *token.Config) { cfg.Secret = older })
	oldToken, err := before.Issue(subject, 0)
	if err != nil {
		t.Fatal(err)
	}

	after := mustService(t, c, func(cfg *token.Config) { cfg.Previous = [][]byte{older} })
	if got, err := after.Verify(oldToken); err != nil || got.Subject != subject {
		t.Fatalf("Verify(token from the previous secret) = %+v, %v, want it accepted", got, err)
	}
	newToken, err := after.Issue(subject, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := before.Verify(newToken); err == nil {
		t.Fatal("a token signed after rotation verifies with the old secret alone: the previous secret signed it")
	}
	withoutPrevious := mustService(t, c, nil)
	if _, err := withoutPrevious.Verify(oldToken); err == nil {
		t.Fatal("a token of a retired secret still verifies")
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*token.Config)
	}{
		{"short secret", func(c *token.Config) { c.Secret = []byte("too short") }},
		{"short previous secret", func(c *token.Config) { c.Previous = [][]byte{[]byte("short")} }},
		{"zero TTL", func(c *token.Config) { c.TTL = 0 }},
		{"leeway over 30s", func(c *token.Config) { c.Leeway = time.Minute }},
		{"no issuer", func(c *token.Config) { c.Issuer = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := token.Config{Secret: secret, Issuer: "authapi", Audience: "authapi", TTL: time.Hour}
			tc.mod(&cfg)
			if _, err := token.New(cfg); err == nil {
				t.Fatal("New = nil error, want refusal")
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	s := mustService(f, &clock{epoch}, nil)
	good, _ := s.Issue(subject, 0)
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := s.Verify(raw)
		if err == nil && raw != good && c.Subject != subject {
			t.Fatalf("Verify(%q) accepted a token for %q", raw, c.Subject)
		}
	})
}
