package server

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"

	openapi_types "github.com/oapi-codegen/runtime/types"

	"authapi/gen"
	"authapi/store"
)

// RegisterUser creates an account.
// (POST /v1/auth/register)
func (s *Server) RegisterUser(ctx context.Context, req gen.RegisterUserRequestObject) (gen.RegisterUserResponseObject, error) {
	b := req.Body
	info := infoFrom(ctx)
	leave, err := s.passwordTurn(ctx, info)
	if err != nil {
		return nil, err
	}
	defer leave()
	// Count the attempt before anything else, so that the 409s below
	// cannot be used to probe for taken names beyond the budget.
	wait, err := s.cfg.Store.BeginRegistration(ctx, info.client, s.cfg.RegisterMaxPerAddress, RegisterWindow)
	if err != nil {
		return nil, err
	}
	if wait > 0 {
		info.event, info.reason = eventRegisterThrottled, "too many registrations from this address"
		return nil, refuseRegistrations.after(wait)
	}
	// Refuse a taken name before paying for a hash; the insert below still
	// decides races, through the unique indexes.
	taken, err := s.cfg.Store.TakenFields(ctx, b.Username, string(b.Email))
	if err != nil {
		return nil, err
	}
	if len(taken) > 0 {
		return nil, &store.ConflictError{Fields: taken}
	}
	hash, err := s.cfg.Hasher.Hash(ctx, b.Password)
	if err != nil {
		return nil, err
	}
	u := &store.User{Username: b.Username, Email: string(b.Email), FullName: b.FullName, PasswordHash: hash}
	if err := s.cfg.Store.CreateUser(ctx, u); err != nil {
		return nil, err
	}
	info.userID, info.event = u.ID.String(), eventRegistered
	return gen.RegisterUser200JSONResponse{Body: userBody(u)}, nil
}

// Login exchanges a username and password for an access token.
// (POST /v1/auth/login)
func (s *Server) Login(ctx context.Context, req gen.LoginRequestObject) (gen.LoginResponseObject, error) {
	b := req.Body
	info := infoFrom(ctx)
	if ok, wait := s.limits.logins.Allow(info.client, time.Now()); !ok {
		info.event, info.reason = eventLoginThrottled, "too many logins from this address"
		return nil, refuseLogins.after(wait)
	}
	leave, err := s.passwordTurn(ctx, info)
	if err != nil {
		return nil, err
	}
	defer leave()
	name, addr := strings.ToLower(b.Username), info.client
	refusal, err := s.cfg.Store.BeginLogin(ctx, name, addr, s.loginLimits())
	if err != nil {
		return nil, err
	}
	if refusal.RetryAfter > 0 {
		refused, reason := loginRefusal(refusal)
		info.event, info.reason = eventLoginThrottled, reason
		s.recordEvent(ctx, uuid.Nil, b.Username, store.EventLoginThrottled)
		return nil, refused.after(refusal.RetryAfter)
	}

	u, err := s.cfg.Store.UserByUsername(ctx, b.Username)
	if errors.Is(err, store.ErrNotFound) {
		// Spend the time a wrong password costs, hash and event write, so
		// that the response time does not tell which usernames exist.
		if err := s.cfg.Hasher.VerifyDummy(ctx, b.Password); err != nil {
			return nil, err
		}
		if err := s.cfg.Store.CommitNothing(ctx); err != nil {
			return nil, err
		}
		info.event, info.reason = eventLoginFailed, "unknown username"
		return nil, errInvalidCredentials
	}
	if err != nil {
		return nil, err
	}
	info.userID = u.ID.String()
	ok, err := s.cfg.Hasher.Verify(ctx, b.Password, u.PasswordHash)
	if err != nil {
		return nil, err
	}
	if !ok {
		info.event, info.reason = eventLoginFailed, "wrong password"
		if err := s.cfg.Store.RecordEvent(ctx, u.ID, store.EventLoginFailed, actor(ctx)); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return nil, errInvalidCredentials
	}

	err = s.cfg.Store.LoginSucceeded(ctx, name, addr, u.ID, actor(ctx))
	if errors.Is(err, store.ErrNotFound) { // deleted since its password was checked
		info.event, info.reason = eventLoginFailed, "user deleted meanwhile"
		return nil, errInvalidCredentials
	}
	if err != nil {
		return nil, err
	}
	info.event = eventLoginSucceeded
	if s.cfg.Hasher.NeedsRehash(u.PasswordHash) {
		// The parameters were raised since this hash was made; upgrade it
		// now that the password is at hand. Failing to is no reason to
		// refuse the login.
		if hash, err := s.cfg.Hasher.Hash(ctx, b.Password); err == nil {
			if err := s.cfg.Store.SetPasswordHash(ctx, u.ID, hash); err != nil {
				s.cfg.Logger.Warn("upgrade password hash", "user_id", u.ID, "error", err)
			}
		}
	}
	tok, err := s.cfg.Tokens.Issue(u.ID.String(), u.TokenGeneration)
	if err != nil {
		return nil, err
	}
	return gen.Login200JSONResponse{Body: gen.AccessToken{
		AccessToken: tok,
		TokenType:   gen.Bearer,
		ExpiresIn:   int32(s.cfg.Tokens.TTL().Seconds()),
	}}, nil
}

// GetCurrentUser returns the owner of the API key.
// (GET /v1/me)
func (s *Server) GetCurrentUser(ctx context.Context, _ gen.GetCurrentUserRequestObject) (gen.GetCurrentUserResponseObject, error) {
	p, err := principalFrom(ctx)
	if err != nil {
		return nil, err
	}
	if p.me == nil {
		return nil, errors.New("server: /v1/me reached without an API key's user")
	}
	return encodedJSON(p.me), nil
}

// passwordTurnWait bounds the wait for an address's turn at password work.
const passwordTurnWait = 10 * time.Second

// passwordTurn waits for the client address's turn at password work:
// PasswordChecksPerAddress requests per address at a time per instance
// run the throttles' transactions and the hash, so that one address can
// hold no more pooled connections for them and hashing workers than
// that, however many requests it sends at once. The others wait, holding
// nothing, for at most passwordTurnWait.
func (s *Server) passwordTurn(ctx context.Context, info *requestInfo) (leave func(), err error) {
	if s.limits.passwords == nil {
		return func() {}, nil
	}
	wctx, cancel := context.WithTimeout(ctx, passwordTurnWait)
	defer cancel()
	leave, err = s.limits.passwords.Enter(wctx, info.client)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		info.event, info.reason = eventLoginThrottled, "too many concurrent password checks from this address"
		return nil, refuseAtOnce.after(time.Second)
	}
	return leave, nil
}

func userBody(u *store.User) gen.User {
	return gen.User{ID: u.ID, Username: u.Username, Email: openapi_types.Email(u.Email), FullName: u.FullName}
}
