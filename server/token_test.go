package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"authapi/server/servertest"
	"authapi/token"
	"authapi/token/tokentest"
)

// The harness's JWT secret, and another for rotation.
var (
	testSecret  = servertest.JWTSecret
	otherSecret = []byte("another secret, also 32 bytes!!!")
)

// jwtHeader decodes the header of a compact JWT.
func jwtHeader(tb testing.TB, raw string) map[string]any {
	tb.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	var h map[string]any
	if err != nil || json.Unmarshal(b, &h) != nil {
		tb.Fatalf("the token's header is not base64url JSON: %q", raw)
	}
	return h
}

// TestTokensThroughTheServer: the token rules, end to end: what the server
// issues, and which forged or rotated tokens the key endpoints accept.
func TestTokensThroughTheServer(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("tokens")
	now := e.Clock.Now()
	claims := func(mod map[string]any) jwt.MapClaims {
		c := jwt.MapClaims{"sub": u.ID, "iss": "authapi", "aud": "authapi", "jti": "forged",
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		for k, v := range mod {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	header := func(mod map[string]any) map[string]any {
		h := map[string]any{"typ": token.Type, "kid": token.KeyID(testSecret)}
		for k, v := range mod {
			h[k] = v
		}
		return h
	}
	list := func(raw string) *response {
		return e.do(true, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+raw)
	}

	t.Run("issued header", func(t *testing.T) {
		h := jwtHeader(t, u.Token)
		if h["alg"] != "HS256" || h["typ"] != token.Type || h["kid"] != token.KeyID(testSecret) {
			t.Fatalf("issued token header = %v, want alg HS256, typ %s, kid %s", h, token.Type, token.KeyID(testSecret))
		}
	})
	t.Run("control", func(t *testing.T) {
		// The forge with nothing wrong passes, so each refusal below is for
		// the reason its case names.
		if r := list(tokentest.Forge(t, jwt.SigningMethodHS256, testSecret, claims(nil), header(nil))); r.Status != 200 {
			t.Fatalf("a well-formed forged token = %d %s, want 200", r.Status, r.Body)
		}
	})

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		raw  string
	}{
		{"alg none", tokentest.Forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil), header(nil))},
		{"HS384 with the right secret", tokentest.Forge(t, jwt.SigningMethodHS384, testSecret, claims(nil), header(nil))},
		{"HS512 with the right secret", tokentest.Forge(t, jwt.SigningMethodHS512, testSecret, claims(nil), header(nil))},
		{"RS256", tokentest.Forge(t, jwt.SigningMethodRS256, rsaKey, claims(nil), header(nil))},
		{"ES256", tokentest.Forge(t, jwt.SigningMethodES256, ecKey, claims(nil), header(nil))},
		{"no exp", tokentest.Forge(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"exp": nil}), header(nil))},
		{"wrong iss", tokentest.Forge(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"iss": "someone-else"}), header(nil))},
		{"wrong aud", tokentest.Forge(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"aud": "another-api"}), header(nil))},
		{"nbf beyond the leeway", tokentest.Forge(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"nbf": now.Add(10 * time.Second).Unix()}), header(nil))},
		{"typ JWT", tokentest.Forge(t, jwt.SigningMethodHS256, testSecret, claims(nil), header(map[string]any{"typ": "JWT"}))},
		{"no kid", tokentest.Forge(t, jwt.SigningMethodHS256, testSecret, claims(nil), header(map[string]any{"kid": nil}))},
		{"crit header", tokentest.Forge(t, jwt.SigningMethodHS256, testSecret, claims(nil), header(map[string]any{"crit": []string{"exp"}}))},
		{"sub in upper case", tokentest.Forge(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"sub": strings.ToUpper(u.ID)}), header(nil))},
		{"sub in braces", tokentest.Forge(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"sub": "{" + u.ID + "}"}), header(nil))},
		{"sub as a URN", tokentest.Forge(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"sub": "urn:uuid:" + u.ID}), header(nil))},
		{"a secret not configured", tokentest.Forge(t, jwt.SigningMethodHS256, otherSecret, claims(nil), header(map[string]any{"kid": token.KeyID(otherSecret)}))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := list(tc.raw)
			if r.Status != 401 || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Fatalf("%s = %d %q, want 401 invalid_token", tc.name, r.Status, r.Header.Get("WWW-Authenticate"))
			}
		})
	}
	t.Run("nbf within the leeway", func(t *testing.T) {
		// 5 s of skew between instances is allowed.
		raw := tokentest.Forge(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"nbf": now.Add(3 * time.Second).Unix(), "iat": now.Add(3 * time.Second).Unix()}), header(nil))
		if r := list(raw); r.Status != 200 {
			t.Fatalf("a token valid in 3 s = %d, want 200 within the 5 s leeway", r.Status)
		}
	})
}

// TestSecretRotationThroughTheServer: after rotating the secret, tokens of
// the previous one still work where it is listed, and new tokens are signed
// with the new one only.
func TestSecretRotationThroughTheServer(t *testing.T) {
	before := newEnv(t)
	u := before.MustLogin("rotated")
	rotate := func(previous ...[]byte) *env {
		return newEnv(t, options{dbURL: before.DBURL, token: func(c *token.Config) { c.Secret, c.Previous = otherSecret, previous }})
	}
	after, dropped := rotate(testSecret), rotate()
	if r := after.do(true, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+u.Token); r.Status != 200 {
		t.Fatalf("a token of the previous secret, listed in Previous = %d %s, want 200", r.Status, r.Body)
	}
	if r := dropped.do(true, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+u.Token); r.Status != 401 {
		t.Fatalf("a token of a secret no longer listed = %d, want 401", r.Status)
	}
	r := after.do(true, "POST", "/v1/auth/login", `{"username":"rotated","password":"`+u.Password+`"}`)
	fresh, _ := r.JSON["access_token"].(string)
	if r.Status != 200 || jwtHeader(t, fresh)["kid"] != token.KeyID(otherSecret) {
		t.Fatalf("login after rotation = %d, kid %v, want a token signed with the new secret", r.Status, jwtHeader(t, fresh)["kid"])
	}
	if r := before.do(true, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+fresh); r.Status != 401 {
		t.Fatalf("a new token on an instance that knows only the old secret = %d, want 401: the previous secret must never sign", r.Status)
	}
}
