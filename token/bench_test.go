package token_test

import (
	"testing"
	"time"

	"authapi/token"
)

// BenchmarkVerify is a token's check, in full and when it was verified
// before (cached).
func BenchmarkVerify(b *testing.B) {
	for _, cache := range []int{0, 1000} {
		b.Run(map[bool]string{true: "cached", false: "full"}[cache > 0], func(b *testing.B) {
			s, err := token.New(token.Config{Secret: []byte("0123456789abcdef0123456789abcdef"), Issuer: "authapi", Audience: "authapi", TTL: time.Hour, CacheSize: cache})
			if err != nil {
				b.Fatal(err)
			}
			tok, err := s.Issue("5f0c6e4e-8a4f-4a38-9a57-2f0a3d1c9b11", 0)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
