package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"

	"authapi/client/gen"
)

// The account self-service models, as openapi.yaml defines them.
type (
	// SecurityEvent is one thing that happened to the account: who did it
	// from where (ClientAddress, UserAgent) and, for key events, which key
	// (KeyID, KeyPrefix).
	SecurityEvent = gen.SecurityEvent
	// SecurityEventType says what happened; one of the Event... constants.
	SecurityEventType = gen.SecurityEventType
)

// The kinds of security event. A server newer than this SDK may add
// others: treat an unknown one as something to show, not as an error.
const (
	EventLoginSucceeded  SecurityEventType = gen.LoginSucceeded
	EventLoginFailed     SecurityEventType = gen.LoginFailed    // a wrong password, at login or in ChangePassword
	EventLoginThrottled  SecurityEventType = gen.LoginThrottled // refused by the login throttle
	EventPasswordChanged SecurityEventType = gen.PasswordChanged
	EventLoggedOut       SecurityEventType = gen.LoggedOut // Logout or LogoutEverywhere
	EventProfileUpdated  SecurityEventType = gen.ProfileUpdated
	EventAPIKeyCreated   SecurityEventType = gen.APIKeyCreated
	EventAPIKeyRotated   SecurityEventType = gen.APIKeyRotated
	EventAPIKeyRevoked   SecurityEventType = gen.APIKeyRevoked
)

// UserOption is a change UpdateCurrentUser makes.
type UserOption func(*userUpdate)

// userUpdate is gen.UpdateUserRequest with the email address as a plain
// string, for the reason RegisterRequest has one: the server judges it.
type userUpdate struct {
	Email    *string `json:"email,omitempty"`
	FullName *string `json:"full_name,omitempty"`
}

// WithFullName sets the user's full name (1-200 characters, not only
// white space).
func WithFullName(name string) UserOption {
	return func(u *userUpdate) { u.FullName = &name }
}

// WithEmail sets the user's email address. An address another account has,
// without regard to case, is a 409 Problem of TypeAlreadyRegistered naming
// "email".
func WithEmail(email string) UserOption {
	return func(u *userUpdate) { u.Email = &email }
}

// UpdateCurrentUser changes the full name and/or the email address of the
// API key's owner, as opts say, and returns the user as updated. Without
// an option it is a 422 Problem, as are values that break the
// registration rules. Needs an API key with ScopeMeWrite (a key without
// it gets a 403 Problem of TypeInsufficientScope).
func (c *Client) UpdateCurrentUser(ctx context.Context, opts ...UserOption) (*User, error) {
	var req userUpdate
	for _, opt := range opts {
		opt(&req)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("client: updateCurrentUser: %w", err)
	}
	return decode[User]("updateCurrentUser", http.StatusOK)(c.api.UpdateCurrentUserWithBody(ctx, "application/json", bytes.NewReader(body), c.key))
}

// ChangePassword replaces the caller's password with next. A wrong current
// password is a 403 Problem of TypeWrongPassword and counts as a failed
// login (too many are a 429 Problem of TypeTooManyAttempts); next equal to
// current, or breaking the registration rules, is a 422 Problem naming
// "new_password". Once it returns nil, every token issued before is
// refused (401, TypeInvalidToken), c's included: log in again with next
// and use UsingToken. API keys keep working. Needs a JWT.
func (c *Client) ChangePassword(ctx context.Context, current, next string) error {
	_, err := decode[struct{}]("changePassword", http.StatusNoContent)(c.api.ChangePassword(ctx, gen.ChangePasswordRequest{CurrentPassword: current, NewPassword: next}, c.bearer))
	return err
}

// Logout ends c's token: once it returns nil, every request with it is
// refused (401, TypeInvalidToken). The user's other tokens and API keys
// keep working. Needs a JWT.
func (c *Client) Logout(ctx context.Context) error {
	return c.logout(ctx, false)
}

// LogoutEverywhere ends every token of the user issued so far, c's and
// those of every other device; API keys keep working. Needs a JWT.
func (c *Client) LogoutEverywhere(ctx context.Context) error {
	return c.logout(ctx, true)
}

func (c *Client) logout(ctx context.Context, all bool) error {
	_, err := decode[struct{}]("logout", http.StatusNoContent)(c.api.Logout(ctx, gen.LogoutRequest{All: &all}, c.bearer))
	return err
}

// DeleteAccount deletes the caller's account with every API key and its
// security log; the username and email address become free again. It
// needs a recent login (5 minutes by default): an older token gets a 401
// Problem of TypeReauthenticationRequired, after which log in again and
// retry with the new token. Needs a JWT.
func (c *Client) DeleteAccount(ctx context.Context) error {
	_, err := decode[struct{}]("deleteAccount", http.StatusNoContent)(c.api.DeleteAccount(ctx, c.bearer))
	return err
}

// SecurityEvents iterates over the caller's security log, newest first,
// fetching a page at a time; it stops at the first error, which it
// yields. Needs a JWT.
func (c *Client) SecurityEvents(ctx context.Context) iter.Seq2[SecurityEvent, error] {
	return pages(func(cursor string) ([]SecurityEvent, string, error) {
		p, err := c.ListSecurityEventsPage(ctx, 0, cursor)
		if err != nil {
			return nil, "", err
		}
		return p.Events, p.Next, nil
	})
}

// EventPage is a page of the caller's security log.
type EventPage struct {
	Events []SecurityEvent
	Next   string // the cursor of the next page; "" on the last
}

// ListSecurityEventsPage returns the page of at most limit events (0: the
// server's default, 100) that starts at cursor ("": the newest). A cursor
// the server did not give is a 422 Problem naming "cursor". Needs a JWT.
func (c *Client) ListSecurityEventsPage(ctx context.Context, limit int, cursor string) (*EventPage, error) {
	var params gen.ListSecurityEventsParams
	params.Limit, params.Cursor = pageQuery(limit, cursor)
	var next string
	events, err := decode[[]SecurityEvent]("listSecurityEvents", http.StatusOK)(nextCursor(&next)(c.api.ListSecurityEvents(ctx, &params, c.bearer)))
	if err != nil {
		return nil, err
	}
	return &EventPage{Events: *events, Next: next}, nil
}
