// Package tokentest helps tests make access tokens the token service would
// not: other algorithms, missing or altered claims and header fields.
package tokentest

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// Forge signs claims and header fields of the test's choosing with method
// and key; a nil header value deletes the field.
func Forge(tb testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims, header map[string]any) string {
	tb.Helper()
	t := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		if v == nil {
			delete(t.Header, k)
		} else {
			t.Header[k] = v
		}
	}
	s, err := t.SignedString(key)
	if err != nil {
		tb.Fatalf("SignedString = %v", err)
	}
	return s
}
