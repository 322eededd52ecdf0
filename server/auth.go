package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"authapi/apikey"
	"authapi/credcache"
	"authapi/store"
	"authapi/token"
)

// The security schemes of openapi.yaml.
const (
	schemeBearer = "bearerAuth"
	schemeAPIKey = "apiKeyAuth"
	apiKeyHeader = "X-API-Key"
)

// principal is who a request acts as.
type principal struct {
	userID uuid.UUID
	me     []byte        // with an API key: GET /v1/me's response body
	keyID  uuid.UUID     // the API key, when one authenticated the request
	scopes []string      // the API key's scopes
	token  *token.Claims // the access token, when one authenticated the request

	verified *verifiedHeaders // with an API key: GET /v1/auth/verify's answer
}

// authFailure is a refused credential: 401, with a challenge.
type authFailure struct {
	scheme  string // schemeBearer or schemeAPIKey
	sent    bool   // a credential was sent (and refused), rather than missing
	detail  string // for the client
	reason  string // for the log: missing, malformed, expired, unknown...
	expired bool   // an API key that was valid but has expired: its own problem type
	counted bool   // the lookup that found it out spent a failure already
}

func (f *authFailure) Error() string { return "authentication failed: " + f.reason }

// problem renders the failure with the challenge RFC 9110 requires on a 401
// (RFC 6750 for bearer tokens).
func (f *authFailure) problem() *Problem {
	var p *Problem
	switch {
	case !f.sent:
		p = newProblem(http.StatusUnauthorized, "unauthenticated", "Authentication required", f.detail)
	case f.scheme == schemeBearer:
		p = newProblem(http.StatusUnauthorized, "invalid-token", "Invalid access token", f.detail)
	case f.expired:
		p = newProblem(http.StatusUnauthorized, "api-key-expired", "API key expired", f.detail)
	default:
		p = newProblem(http.StatusUnauthorized, "invalid-api-key", "Invalid API key", f.detail)
	}
	switch {
	case f.scheme == schemeAPIKey:
		p.with("WWW-Authenticate", `APIKey realm="authapi", header="`+apiKeyHeader+`"`)
	case f.sent:
		p.with("WWW-Authenticate", fmt.Sprintf(`Bearer realm="authapi", error="invalid_token", error_description=%q`, strings.TrimSuffix(f.detail, ".")))
	default:
		p.with("WWW-Authenticate", `Bearer realm="authapi"`)
	}
	return p
}

// authenticate is the validator's AuthenticationFunc: it checks the
// credential a security scheme of the operation names, and leaves the
// principal in the request's info for the strict handler.
func (s *Server) authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	req := in.RequestValidationInput.Request
	info := infoFrom(req.Context())
	var (
		p   *principal
		err error
	)
	// A credential the cache cannot vouch for costs a lookup, which holds
	// one of the address's failures while it runs: an address past its
	// budget gets answers from the cache only, and concurrent guesses
	// cannot look up more than the budget has left.
	now := time.Now()
	admit := func() (func(failed bool), error) {
		done, ok, wait := s.limits.authFails.Hold(info.client, now)
		if !ok {
			info.event, info.reason = eventAuthThrottled, in.SecuritySchemeName+": too many failed checks from this address"
			return nil, refuseAuthFailures.after(wait)
		}
		return func(failed bool) { done(failed, time.Now()) }, nil
	}
	switch in.SecuritySchemeName {
	case schemeBearer:
		p, err = s.checkBearer(req, admit)
	case schemeAPIKey:
		p, err = s.checkAPIKey(req, admit)
	default:
		return fmt.Errorf("server: no check for security scheme %q", in.SecuritySchemeName)
	}
	var af *authFailure
	if errors.As(err, &af) {
		if af.scheme == schemeAPIKey {
			s.metrics.keyRefused.Inc()
		}
		if !af.counted {
			s.limits.authFails.Take(info.client, now)
		}
		info.event = eventAuthFailed
		info.reason = in.SecuritySchemeName + ": " + af.reason
		return af.problem()
	}
	if err != nil {
		return err
	}
	info.principal = p
	info.userID = p.userID.String()
	if p.keyID != uuid.Nil {
		if s.byMethod[in.RequestValidationInput.Route.Operation] != nil {
			// The scope depends on the forwarded request, which the
			// handler judges once the validator has checked its headers
			// (verify.go); so does recording the use.
			return nil
		}
		if missing := missingScope(s.scopes[in.RequestValidationInput.Route.Operation], p.scopes); missing != "" {
			info.event, info.reason = eventAuthFailed, in.SecuritySchemeName+": lacks scope "+missing
			return insufficientScope(missing)
		}
		s.uses.Record(p.keyID, s.cfg.Now())
	}
	return nil
}

// missingScope returns a scope of required that granted lacks, or "".
func missingScope(required, granted []string) string {
	for _, r := range required {
		if !slices.Contains(granted, r) {
			return r
		}
	}
	return ""
}

// insufficientScope is the 403 of RFC 6750 section 3.1, for API keys.
func insufficientScope(scope string) *Problem {
	return newProblem(http.StatusForbidden, "insufficient-scope", "Insufficient scope",
		"This API key lacks the "+scope+" scope; create a key with it.").
		with("WWW-Authenticate", fmt.Sprintf(`APIKey realm="authapi", header="%s", error="insufficient_scope", scope=%q`, apiKeyHeader, scope))
}

// admitFunc admits a database lookup of a credential, or refuses it with
// the problem to answer; failed says, once it is known, whether the
// credential was refused.
type admitFunc func() (done func(failed bool), err error)

// checkBearer verifies the JWT in the Authorization header, and that its
// user still exists; a user the cache does not know is looked up if admit
// allows.
func (s *Server) checkBearer(req *http.Request, admit admitFunc) (*principal, error) {
	values := req.Header.Values("Authorization")
	if len(values) == 0 || strings.TrimSpace(values[0]) == "" {
		return nil, &authFailure{scheme: schemeBearer, reason: "missing",
			detail: "An access token is required: send Authorization: Bearer <token>."}
	}
	scheme, raw, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	raw = strings.TrimSpace(raw)
	if len(values) > 1 || !ok || !strings.EqualFold(scheme, "Bearer") || raw == "" {
		return nil, &authFailure{scheme: schemeBearer, sent: true, reason: "malformed",
			detail: "Send exactly one access token as Authorization: Bearer <token>."}
	}
	claims, err := s.cfg.Tokens.Verify(raw)
	if errors.Is(err, token.ErrExpired) {
		return nil, &authFailure{scheme: schemeBearer, sent: true, reason: "expired",
			detail: "The access token expired; log in again."}
	}
	// sub must be a user ID as this service writes it: canonical, lower
	// case (uuid.Parse also takes upper case, braces and urn:uuid:).
	var id uuid.UUID
	if err == nil {
		id, err = uuid.Parse(claims.Subject)
	}
	if err != nil || id.String() != claims.Subject {
		return nil, &authFailure{scheme: schemeBearer, sent: true, reason: "invalid",
			detail: "The access token is invalid."}
	}
	tokens, ok, epoch := s.cache.User(id)
	if !ok {
		done, err := admit()
		if err != nil {
			return nil, err
		}
		t, err := s.cfg.Store.UserTokens(req.Context(), id)
		done(errors.Is(err, store.ErrNotFound))
		if errors.Is(err, store.ErrNotFound) {
			gone := userGone()
			gone.counted = true
			return nil, gone
		}
		if err != nil {
			return nil, err
		}
		tokens = *t
		s.cache.PutUser(id, tokens, epoch)
	}
	if claims.Generation < tokens.Generation || slices.Contains(tokens.Ended, claims.ID) {
		return nil, &authFailure{scheme: schemeBearer, sent: true, reason: "ended",
			detail: "The access token was ended by a sign-out or a password change; log in again."}
	}
	return &principal{userID: id, token: claims}, nil
}

// checkAPIKey looks up the owner of the key in the X-API-Key header. A
// malformed key (wrong shape or checksum) is refused without a lookup; a
// key the cache does not hold is looked up if admit allows.
func (s *Server) checkAPIKey(req *http.Request, admit admitFunc) (*principal, error) {
	values := req.Header.Values(apiKeyHeader)
	if len(values) == 0 || values[0] == "" {
		return nil, &authFailure{scheme: schemeAPIKey, reason: "missing",
			detail: "An API key is required: send it in the X-API-Key header."}
	}
	if len(values) > 1 || apikey.Parse(values[0]) != nil {
		return nil, &authFailure{scheme: schemeAPIKey, sent: true, reason: "malformed",
			detail: "The API key is malformed."}
	}
	digest := s.cfg.Keys.Digest(values[0])
	e, ok, epoch := s.cache.Key([32]byte(digest))
	if ok {
		s.metrics.keyHit.Inc()
	} else {
		done, err := admit()
		if err != nil {
			return nil, err
		}
		owner, err := s.cfg.Store.APIKeyOwner(req.Context(), digest)
		done(errors.Is(err, store.ErrNotFound))
		if errors.Is(err, store.ErrNotFound) {
			return nil, &authFailure{scheme: schemeAPIKey, sent: true, reason: "unknown or revoked", counted: true,
				detail: "The API key is not recognised or has been revoked."}
		}
		if err != nil {
			return nil, err
		}
		// Encoding the user is most of what a cached GET /v1/me costs; do
		// it once per cache fill.
		me, err := json.Marshal(userBody(&owner.User))
		if err != nil {
			return nil, err
		}
		e = &keyEntry{owner: *owner, me: append(me, '\n'), verified: newVerifiedHeaders(owner)}
		s.cache.PutKey([32]byte(digest), owner.User.ID, e, epoch)
		s.metrics.keyMiss.Inc()
	}
	// Expiry is judged on every use, cache hits included, by the server's
	// clock: the cache holds unrevoked keys, expired or not.
	if exp := e.owner.ExpiresAt; exp != nil && !s.cfg.Now().Before(*exp) {
		return nil, &authFailure{scheme: schemeAPIKey, sent: true, reason: "expired", expired: true,
			detail: "The API key expired at " + exp.UTC().Format(time.RFC3339) +
				"; send a current key in the X-API-Key header (create one, or rotate keys before they expire)."}
	}
	return &principal{userID: e.owner.User.ID, me: e.me, keyID: e.owner.KeyID, scopes: e.owner.Scopes, verified: e.verified}, nil
}

// keyEntry is what the credential cache keeps of an API key: its owner,
// and the answers of GET /v1/me and GET /v1/auth/verify, made once per
// fill. It must not be changed once cached.
type keyEntry struct {
	owner    store.KeyOwner
	me       []byte // GET /v1/me's response body
	verified *verifiedHeaders
}

// encodedJSON is a 200 response with its JSON body encoded beforehand, as
// gen's 200 JSON responses would write it: GET /v1/me's, from the
// credential cache.
type encodedJSON []byte

func (body encodedJSON) VisitGetCurrentUserResponse(w http.ResponseWriter) error {
	return body.write(w)
}

func (body encodedJSON) write(w http.ResponseWriter) error {
	w.Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(body)
	return err
}

// listing is a page of GET /v1/auth/api-keys, encoded beforehand, with the
// Link to the next page if there is one.
type listing credcache.Listing

func (l listing) VisitListAPIKeysResponse(w http.ResponseWriter) error {
	if l.Link != "" {
		w.Header().Set("Link", l.Link)
	}
	return encodedJSON(l.Body).write(w)
}

// principalFrom returns the principal the validator authenticated. The spec
// gives every handler that calls it a security requirement, so a missing
// principal is a bug.
func principalFrom(ctx context.Context) (*principal, error) {
	if p := infoFrom(ctx).principal; p != nil {
		return p, nil
	}
	return nil, errors.New("server: no principal on an authenticated route")
}
