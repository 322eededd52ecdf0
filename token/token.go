// Package token issues and verifies the JWT access tokens that authenticate
// the API key management endpoints.
//
// Tokens are HS256 with the claims sub (user ID), iat, nbf, exp, iss, aud
// and jti, auth_time (when the user logged in, RFC 9470) and gen (the
// user's token generation, which ending all of a user's tokens raises), a
// "kid" header naming the secret that signed them and the "typ"
// header "at+jwt" (RFC 9068), so that no other kind of JWT signed with the
// same secret passes for an access token. Verification pins the algorithm,
// requires every claim, and accepts tokens signed with previous secrets so
// that a secret can be rotated without logging everyone out.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MinSecretLen is the shortest secret accepted: HS256 wants a key as long as
// its output (RFC 7518 section 3.2).
const MinSecretLen = 32

// MaxLeeway bounds the allowance for clock skew between instances.
const MaxLeeway = 30 * time.Second

// maxTokenLen bounds what is parsed at all: our tokens are about 400 bytes.
const maxTokenLen = 4096

// Type is the "typ" header of an access token (RFC 9068 section 2.1).
const Type = "at+jwt"

var (
	// ErrExpired means the token was valid but its exp has passed.
	ErrExpired = errors.New("token: expired")
	// ErrInvalid means the token is malformed, forged, not yet valid, or
	// not an access token of this service.
	ErrInvalid = errors.New("token: invalid")
)

// Config configures a Service.
type Config struct {
	Secret   []byte        // signs and verifies; at least MinSecretLen bytes
	Previous [][]byte      // verify only, for rotation
	Issuer   string        // iss, also required on verification
	Audience string        // aud, also required on verification
	TTL      time.Duration // lifetime of an issued token
	// Leeway allows for clock skew on nbf and iat between instances (at most
	// MaxLeeway). exp gets none: a token is refused from its expiry on.
	Leeway time.Duration
	Now    func() time.Time // nil means time.Now
	// CacheSize bounds how many verified tokens are remembered, so that a
	// token used again skips parsing and the signature check (0: none).
	// A token's claims and signature never change, so only the times are
	// checked again on every use.
	CacheSize int
}

// Service issues and verifies access tokens.
type Service struct {
	cfg    Config
	kid    string
	keys   map[string][]byte // by kid: the current secret and the previous ones
	parser *jwt.Parser

	mu       sync.RWMutex
	verified map[string]verified // by raw token, at most cfg.CacheSize
}

// Claims are what a verified access token says.
type Claims struct {
	Subject string // the user ID
	ID      string // jti
	// Generation is the user's token generation when the token was issued
	// ("gen"): ending every token of a user raises it (0 for tokens that
	// do not say).
	Generation int
	// AuthTime is when the user logged in ("auth_time", RFC 9470); zero
	// for tokens that do not say.
	AuthTime time.Time
	IssuedAt time.Time
	Expires  time.Time
}

// verified is what a verified token said, and when it is valid (from nbf
// and iat less the leeway, until exp).
type verified struct {
	claims      Claims
	from, until time.Time
}

// accessClaims are the claims of an access token as JSON.
type accessClaims struct {
	jwt.RegisteredClaims
	Generation int              `json:"gen"`
	AuthTime   *jwt.NumericDate `json:"auth_time,omitempty"`
}

// New returns a Service, or an error naming what is wrong with cfg.
func New(cfg Config) (*Service, error) {
	if len(cfg.Secret) < MinSecretLen {
		return nil, fmt.Errorf("token: the JWT secret must be at least %d bytes, got %d", MinSecretLen, len(cfg.Secret))
	}
	for i, p := range cfg.Previous {
		if len(p) < MinSecretLen {
			return nil, fmt.Errorf("token: previous JWT secret %d must be at least %d bytes, got %d", i+1, MinSecretLen, len(p))
		}
	}
	if cfg.TTL <= 0 {
		return nil, fmt.Errorf("token: the token lifetime must be positive, got %v", cfg.TTL)
	}
	if cfg.Leeway < 0 || cfg.Leeway > MaxLeeway {
		return nil, fmt.Errorf("token: leeway must be between 0 and %v, got %v", MaxLeeway, cfg.Leeway)
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("token: issuer and audience are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{cfg: cfg, kid: KeyID(cfg.Secret), keys: map[string][]byte{KeyID(cfg.Secret): cfg.Secret},
		verified: make(map[string]verified)}
	for _, p := range cfg.Previous {
		if _, dup := s.keys[KeyID(p)]; !dup {
			s.keys[KeyID(p)] = p
		}
	}
	s.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
	)
	return s, nil
}

// KeyID names a secret without revealing it: the first 8 bytes of its
// SHA-256, in hex.
func KeyID(secret []byte) string {
	sum := sha256.Sum256(secret)
	return hex.EncodeToString(sum[:8])
}

// TTL returns the lifetime of issued tokens.
func (s *Service) TTL() time.Duration { return s.cfg.TTL }

// Issue returns a signed access token for subject (a user ID) whose token
// generation is generation, for a login that happens now.
func (s *Service) Issue(subject string, generation int) (string, error) {
	now := s.cfg.Now().Truncate(time.Second)
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	claims := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   subject,
			Issuer:    s.cfg.Issuer,
			Audience:  jwt.ClaimStrings{s.cfg.Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.cfg.TTL)),
			ID:        base64.RawURLEncoding.EncodeToString(jti[:]),
		},
		Generation: generation,
		AuthTime:   jwt.NewNumericDate(now),
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	t.Header["typ"] = Type
	t.Header["kid"] = s.kid
	return t.SignedString(s.cfg.Secret)
}

// Verify checks raw and returns its claims. It returns an error wrapping
// ErrExpired or ErrInvalid.
func (s *Service) Verify(raw string) (*Claims, error) {
	if len(raw) > maxTokenLen {
		return nil, fmt.Errorf("%w: too long", ErrInvalid)
	}
	if s.cfg.CacheSize > 0 {
		s.mu.RLock()
		v, ok := s.verified[raw]
		s.mu.RUnlock()
		// Outside its window, the full check below says why.
		if now := s.cfg.Now(); ok && !now.Before(v.from) && now.Before(v.until) {
			c := v.claims
			return &c, nil
		}
	}
	var ac accessClaims
	_, err := s.parser.ParseWithClaims(raw, &ac, s.key)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, fmt.Errorf("%w: %v", ErrExpired, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	// exp gets no leeway (the parser's applies to nbf and iat alike).
	if !s.cfg.Now().Before(ac.ExpiresAt.Time) {
		return nil, fmt.Errorf("%w: exp has passed", ErrExpired)
	}
	// The parser checks iat only when it is there.
	if ac.Subject == "" || ac.ID == "" || ac.NotBefore == nil || ac.IssuedAt == nil || ac.Generation < 0 {
		return nil, fmt.Errorf("%w: a required claim is missing", ErrInvalid)
	}
	c := Claims{Subject: ac.Subject, ID: ac.ID, Generation: ac.Generation, IssuedAt: ac.IssuedAt.Time, Expires: ac.ExpiresAt.Time}
	if ac.AuthTime != nil {
		c.AuthTime = ac.AuthTime.Time
	}
	if s.cfg.CacheSize > 0 {
		from := ac.NotBefore.Time
		if ac.IssuedAt.After(from) {
			from = ac.IssuedAt.Time
		}
		s.remember(raw, verified{claims: c, from: from.Add(-s.cfg.Leeway), until: ac.ExpiresAt.Time})
	}
	return &c, nil
}

func (s *Service) remember(raw string, v verified) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.verified) >= s.cfg.CacheSize {
		for k := range s.verified { // map order is random enough to evict by
			delete(s.verified, k)
			break
		}
	}
	s.verified[raw] = v
}

// key picks the verification key by kid, after checking the header.
func (s *Service) key(t *jwt.Token) (any, error) {
	if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, Type) && !strings.EqualFold(typ, "application/"+Type) {
		return nil, fmt.Errorf("typ %q is not %q", typ, Type)
	}
	// We understand no extension, so a token that says one is critical
	// must be refused (RFC 7515 section 4.1.11).
	if _, ok := t.Header["crit"]; ok {
		return nil, errors.New("crit header: no extension is understood")
	}
	kid, _ := t.Header["kid"].(string)
	k, ok := s.keys[kid]
	if !ok {
		return nil, errors.New("unknown kid")
	}
	return k, nil
}
