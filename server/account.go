package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"authapi/gen"
	"authapi/store"
)

// DefaultReauthMaxAge is how recent a login must be for the operations
// that need one (account deletion) when Config leaves it unset.
const DefaultReauthMaxAge = 5 * time.Minute

// ChangePassword replaces the caller's password and ends every token
// issued before.
// (POST /v1/auth/password)
func (s *Server) ChangePassword(ctx context.Context, req gen.ChangePasswordRequestObject) (gen.ChangePasswordResponseObject, error) {
	p, err := principalFrom(ctx)
	if err != nil {
		return nil, err
	}
	info := infoFrom(ctx)
	leave, err := s.passwordTurn(ctx, info)
	if err != nil {
		return nil, err
	}
	defer leave()
	u, err := s.cfg.Store.UserByID(ctx, p.userID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, userGone().problem()
	}
	if err != nil {
		return nil, err
	}
	// A wrong current password counts as a failed login of the user from
	// this address: a stolen token must not become a way to guess the
	// password past the login throttle.
	ok, err := s.checkPassword(ctx, info, u, req.Body.CurrentPassword)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errWrongPassword
	}
	if req.Body.NewPassword == req.Body.CurrentPassword {
		return nil, validationProblem([]gen.FieldError{{Field: "new_password", Message: "must differ from the current password"}})
	}
	hash, err := s.cfg.Hasher.Hash(ctx, req.Body.NewPassword)
	if err != nil {
		return nil, err
	}
	err = s.cfg.Store.ChangePassword(ctx, u.ID, u.PasswordHash, hash, actor(ctx))
	switch {
	case errors.Is(err, store.ErrChanged): // changed meanwhile: what was checked is no longer the password
		return nil, errWrongPassword
	case errors.Is(err, store.ErrNotFound):
		return nil, userGone().problem()
	case err != nil:
		return nil, err
	}
	info.event = eventPasswordChanged
	s.tokensEnded(u.ID)
	return gen.ChangePassword204Response{}, nil
}

// checkPassword checks password against u's under the login throttle of
// (u's username, the client's address), as a login would: it returns
// false for a wrong password, which it records, and a 429 problem when the
// throttle refuses.
func (s *Server) checkPassword(ctx context.Context, info *requestInfo, u *store.User, password string) (bool, error) {
	name := strings.ToLower(u.Username)
	refusal, err := s.cfg.Store.BeginLogin(ctx, name, info.client, s.loginLimits())
	if err != nil {
		return false, err
	}
	if refusal.RetryAfter > 0 {
		info.event, info.reason = eventLoginThrottled, "too many failures for this username and address"
		s.recordEvent(ctx, u.ID, "", store.EventLoginThrottled)
		return false, refusePasswordChecks.after(refusal.RetryAfter)
	}
	ok, err := s.cfg.Hasher.Verify(ctx, password, u.PasswordHash)
	if err != nil {
		return false, err
	}
	if !ok {
		info.event, info.reason = eventLoginFailed, "wrong password"
		s.recordEvent(ctx, u.ID, "", store.EventLoginFailed)
		return false, nil
	}
	return true, s.cfg.Store.ClearLoginFailures(ctx, name, info.client)
}

// recordEvent writes a security event that records no change (a failed
// or throttled password check) of the user, or of the user with username
// (there may be none, which takes as long). Failing to write it does not
// change the answer, which is a refusal either way.
func (s *Server) recordEvent(ctx context.Context, user uuid.UUID, username string, t store.EventType) {
	var err error
	if user != uuid.Nil {
		err = s.cfg.Store.RecordEvent(ctx, user, t, actor(ctx))
	} else {
		err = s.cfg.Store.RecordEventByUsername(ctx, username, t, actor(ctx))
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.cfg.Logger.Warn("record security event", "request_id", infoFrom(ctx).id, "event", string(t), "error", err)
	}
}

// Logout ends the presented token, or every token of the user.
// (POST /v1/auth/logout)
func (s *Server) Logout(ctx context.Context, req gen.LogoutRequestObject) (gen.LogoutResponseObject, error) {
	p, err := principalFrom(ctx)
	if err != nil {
		return nil, err
	}
	if p.token == nil {
		return nil, errors.New("server: logout reached without an access token")
	}
	if req.Body != nil && req.Body.All != nil && *req.Body.All {
		err = s.cfg.Store.EndAllTokens(ctx, p.userID, actor(ctx))
	} else {
		err = s.cfg.Store.EndToken(ctx, p.userID, p.token.ID, p.token.Expires, actor(ctx))
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, userGone().problem()
	}
	if err != nil {
		return nil, err
	}
	infoFrom(ctx).event = eventLoggedOut
	s.tokensEnded(p.userID)
	return gen.Logout204Response{}, nil
}

// DeleteAccount deletes the caller's account, keys and security log.
// (DELETE /v1/auth/account)
func (s *Server) DeleteAccount(ctx context.Context, _ gen.DeleteAccountRequestObject) (gen.DeleteAccountResponseObject, error) {
	p, err := principalFrom(ctx)
	if err != nil {
		return nil, err
	}
	if p.token == nil {
		return nil, errors.New("server: account deletion reached without an access token")
	}
	if age := s.cfg.Now().Sub(p.token.AuthTime); p.token.AuthTime.IsZero() || age > s.cfg.ReauthMaxAge {
		info := infoFrom(ctx)
		info.event, info.reason = eventAuthFailed, "bearerAuth: login too old for account deletion"
		return nil, reauthenticate(s.cfg.ReauthMaxAge)
	}
	if err := s.cfg.Store.DeleteUser(ctx, p.userID); errors.Is(err, store.ErrNotFound) {
		return nil, userGone().problem()
	} else if err != nil {
		return nil, err
	}
	infoFrom(ctx).event = eventAccountDeleted
	s.tokensEnded(p.userID)
	return gen.DeleteAccount204Response{}, nil
}

// reauthenticate is the 401 of RFC 9470: the token is valid, but its login
// is older than maxAge allows.
func reauthenticate(maxAge time.Duration) *Problem {
	secs := int(maxAge / time.Second)
	return newProblem(http.StatusUnauthorized, "reauthentication-required", "Recent login required",
		fmt.Sprintf("This operation needs a login within the last %d seconds; log in again and retry with the new token.", secs)).
		with("WWW-Authenticate", fmt.Sprintf(`Bearer realm="authapi", error="insufficient_user_authentication", error_description="A more recent login is required", max_age=%d`, secs))
}

// tokensEnded is called after a committed change that ends tokens of the
// user or the user itself: this instance forgets what it cached of them
// at once; the others hear of it from the database.
func (s *Server) tokensEnded(user uuid.UUID) {
	s.cache.Changed(store.Change{UserID: user})
}

// UpdateCurrentUser changes the full name and/or email of the key's owner.
// (PATCH /v1/me)
func (s *Server) UpdateCurrentUser(ctx context.Context, req gen.UpdateCurrentUserRequestObject) (gen.UpdateCurrentUserResponseObject, error) {
	p, err := principalFrom(ctx)
	if err != nil {
		return nil, err
	}
	b := req.Body
	if b.Email == nil && b.FullName == nil {
		return nil, validationProblem([]gen.FieldError{{Field: "body", Message: "must set email or full_name"}})
	}
	var email *string
	if b.Email != nil {
		e := string(*b.Email)
		email = &e
	}
	u, err := s.cfg.Store.UpdateUser(ctx, p.userID, email, b.FullName, actor(ctx))
	if errors.Is(err, store.ErrNotFound) { // the user, and so the key, is gone
		return nil, (&authFailure{scheme: schemeAPIKey, sent: true, reason: "unknown or revoked",
			detail: "The API key is not recognised or has been revoked."}).problem()
	}
	if err != nil {
		return nil, err
	}
	infoFrom(ctx).event = eventProfileUpdated
	s.tokensEnded(u.ID) // the cached GET /v1/me bodies of the user's keys
	return gen.UpdateCurrentUser200JSONResponse{Body: userBody(u)}, nil
}

// ListSecurityEvents lists a page of the caller's security events, newest
// first.
// (GET /v1/auth/events)
func (s *Server) ListSecurityEvents(ctx context.Context, req gen.ListSecurityEventsRequestObject) (gen.ListSecurityEventsResponseObject, error) {
	p, err := principalFrom(ctx)
	if err != nil {
		return nil, err
	}
	pg, err := page(req.Params.Limit, req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	events, err := s.cfg.Store.ListEvents(ctx, p.userID, pg)
	if err != nil {
		return nil, err
	}
	events, link := onePage(events, pg, "/v1/auth/events", func(e store.Event) (time.Time, uuid.UUID) { return e.OccurredAt, e.ID })
	body := make([]gen.SecurityEvent, len(events))
	for i, e := range events {
		body[i] = gen.SecurityEvent{
			ID: e.ID, Type: gen.SecurityEventType(e.Type), OccurredAt: e.OccurredAt, ClientAddress: e.Client,
			UserAgent: e.UserAgent, KeyID: e.KeyID, KeyPrefix: e.KeyPrefix,
		}
	}
	resp := gen.ListSecurityEvents200JSONResponse{Body: body}
	if link != "" {
		resp.Headers.Link = &link
	}
	return resp, nil
}
