package client_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"authapi/client"
)

// works reports whether c's JWT is accepted, by listing keys with it.
func works(c *client.Client) error {
	_, err := c.ListAPIKeysPage(ctx, 1, "")
	return err
}

func TestUpdateCurrentUser(t *testing.T) {
	base := MustServer(t)
	c := MustLogin(t, MustClient(t, base), "updater")
	MustLogin(t, MustClient(t, base), "taken")
	writer, err := c.CreateAPIKey(ctx, "writer")
	if err != nil {
		t.Fatal(err)
	}
	reader, err := c.CreateAPIKey(ctx, "reader", client.WithScopes(client.ScopeMeRead))
	if err != nil {
		t.Fatal(err)
	}
	me := c.UsingAPIKey(writer.RawKey)
	before, err := me.GetCurrentUser(ctx)
	if err != nil {
		t.Fatal(err)
	}

	u, err := me.UpdateCurrentUser(ctx, client.WithFullName("Hershel M."))
	if err != nil {
		t.Fatalf("UpdateCurrentUser(WithFullName) = %v", err)
	}
	if want := (client.User{ID: before.ID, Username: "updater", Email: "updater@example.com", FullName: "Hershel M."}); *u != want {
		t.Fatalf("UpdateCurrentUser(WithFullName) = %+v, want %+v (the email unchanged)", u, want)
	}
	u, err = me.UpdateCurrentUser(ctx, client.WithEmail("New.Address@example.org"), client.WithFullName("Both"))
	if err != nil {
		t.Fatalf("UpdateCurrentUser(WithEmail, WithFullName) = %v", err)
	}
	if u.Email != "New.Address@example.org" || u.FullName != "Both" {
		t.Fatalf("UpdateCurrentUser(WithEmail, WithFullName) = %+v", u)
	}
	if got, err := me.GetCurrentUser(ctx); err != nil || *got != *u {
		t.Fatalf("GetCurrentUser after the update = %+v, %v, want %+v", got, err, u)
	}

	for _, tc := range []struct {
		name   string
		c      *client.Client
		opts   []client.UserOption
		status int
		typ    string
		fields []string
	}{
		{"another account's email", me, []client.UserOption{client.WithEmail("TAKEN@example.com")}, 409, client.TypeAlreadyRegistered, []string{"email"}},
		{"nothing to change", me, nil, 422, client.TypeValidationFailed, []string{"body"}},
		{"a blank full name", me, []client.UserOption{client.WithFullName("   ")}, 422, client.TypeValidationFailed, []string{"full_name"}},
		// Sent as written: a display-name form is the server's to refuse,
		// not the SDK's to rewrite into a bare address.
		{"a display-name email", me, []client.UserOption{client.WithEmail("Hershel <h@example.com>")}, 422, client.TypeValidationFailed, []string{"email"}},
		{"a read-only key", c.UsingAPIKey(reader.RawKey), []client.UserOption{client.WithFullName("x")}, 403, client.TypeInsufficientScope, nil},
		{"a JWT only", c, []client.UserOption{client.WithFullName("x")}, 401, client.TypeUnauthenticated, nil},
	} {
		_, err := tc.c.UpdateCurrentUser(ctx, tc.opts...)
		expectProblem(t, "UpdateCurrentUser with "+tc.name, err, tc.status, tc.typ, tc.fields...)
	}
	if got, err := me.GetCurrentUser(ctx); err != nil || *got != *u {
		t.Fatalf("GetCurrentUser after the refused updates = %+v, %v, want %+v unchanged", got, err, u)
	}
}

func TestChangePassword(t *testing.T) {
	base := MustServer(t)
	anon := MustClient(t, base)
	c := MustLogin(t, anon, "changer")
	other := anon.UsingToken(mustToken(t, anon, "changer")) // another device
	key, err := c.CreateAPIKey(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}

	expectProblem(t, "ChangePassword with a wrong current password", c.ChangePassword(ctx, "wrong password", "a new Passw0rd"), 403, client.TypeWrongPassword)
	expectProblem(t, "ChangePassword to the same password", c.ChangePassword(ctx, "secureP@ss123", "secureP@ss123"), 422, client.TypeValidationFailed, "new_password")
	expectProblem(t, "ChangePassword to a short password", c.ChangePassword(ctx, "secureP@ss123", "short"), 422, client.TypeValidationFailed, "new_password")
	expectProblem(t, "ChangePassword without a token", anon.ChangePassword(ctx, "secureP@ss123", "a new Passw0rd"), 401, client.TypeUnauthenticated)
	expectProblem(t, "ChangePassword with an API key only", anon.UsingAPIKey(key.RawKey).ChangePassword(ctx, "secureP@ss123", "a new Passw0rd"), 401, client.TypeUnauthenticated)
	if err := works(c); err != nil {
		t.Fatalf("the token after refused changes = %v, want it working", err)
	}

	if err := c.ChangePassword(ctx, "secureP@ss123", "a new Passw0rd"); err != nil {
		t.Fatalf("ChangePassword = %v", err)
	}
	expectProblem(t, "the token used for the change", works(c), 401, client.TypeInvalidToken)
	expectProblem(t, "another device's token from before", works(other), 401, client.TypeInvalidToken)
	_, err = anon.Login(ctx, "changer", "secureP@ss123")
	expectProblem(t, "Login with the old password", err, 401, client.TypeInvalidCredentials)
	tok, err := anon.Login(ctx, "changer", "a new Passw0rd")
	if err != nil {
		t.Fatalf("Login with the new password = %v", err)
	}
	if err := works(anon.UsingToken(tok.AccessToken)); err != nil {
		t.Fatalf("a token issued after the change = %v", err)
	}
	if _, err := anon.UsingAPIKey(key.RawKey).GetCurrentUser(ctx); err != nil {
		t.Fatalf("an API key after the change = %v, want it working", err)
	}
}

func TestLogout(t *testing.T) {
	base := MustServer(t)
	anon := MustClient(t, base)
	c := MustLogin(t, anon, "leaver")
	second := anon.UsingToken(mustToken(t, anon, "leaver"))
	third := anon.UsingToken(mustToken(t, anon, "leaver"))
	key, err := c.CreateAPIKey(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}

	if err := c.Logout(ctx); err != nil {
		t.Fatalf("Logout = %v", err)
	}
	expectProblem(t, "the token after Logout", works(c), 401, client.TypeInvalidToken)
	expectProblem(t, "Logout with the ended token", c.Logout(ctx), 401, client.TypeInvalidToken)
	for name, d := range map[string]*client.Client{"second": second, "third": third} {
		if err := works(d); err != nil {
			t.Fatalf("the %s token after another's Logout = %v, want it working", name, err)
		}
	}

	if err := second.LogoutEverywhere(ctx); err != nil {
		t.Fatalf("LogoutEverywhere = %v", err)
	}
	for name, d := range map[string]*client.Client{"second": second, "third": third} {
		expectProblem(t, "the "+name+" token after LogoutEverywhere", works(d), 401, client.TypeInvalidToken)
	}
	if _, err := anon.UsingAPIKey(key.RawKey).GetCurrentUser(ctx); err != nil {
		t.Fatalf("an API key after LogoutEverywhere = %v, want it working", err)
	}
	if err := works(anon.UsingToken(mustToken(t, anon, "leaver"))); err != nil {
		t.Fatalf("a token issued after LogoutEverywhere = %v", err)
	}
	expectProblem(t, "Logout without a token", anon.Logout(ctx), 401, client.TypeUnauthenticated)
	expectProblem(t, "LogoutEverywhere with an API key only", anon.UsingAPIKey(key.RawKey).LogoutEverywhere(ctx), 401, client.TypeUnauthenticated)
}

func TestDeleteAccount(t *testing.T) {
	s := MustStart(t)
	anon := MustClient(t, s.URL)
	c := MustLogin(t, anon, "deleted")
	key, err := c.CreateAPIKey(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}

	s.Clock.Add(5*time.Minute + time.Second)
	expectProblem(t, "DeleteAccount with a login over 5 minutes old", c.DeleteAccount(ctx), 401, client.TypeReauthenticationRequired)
	if err := works(c); err != nil {
		t.Fatalf("the too old token elsewhere = %v, want it working", err)
	}
	expectProblem(t, "DeleteAccount without a token", anon.DeleteAccount(ctx), 401, client.TypeUnauthenticated)

	// Tokens keep real time (see MustStart): back there, a new login is
	// recent.
	s.Clock.Add(-(5*time.Minute + time.Second))
	fresh := anon.UsingToken(mustToken(t, anon, "deleted"))
	if err := fresh.DeleteAccount(ctx); err != nil {
		t.Fatalf("DeleteAccount after a fresh login = %v", err)
	}
	_, err = anon.UsingAPIKey(key.RawKey).GetCurrentUser(ctx)
	expectProblem(t, "the API key after DeleteAccount", err, 401, client.TypeInvalidAPIKey)
	for name, d := range map[string]*client.Client{"fresh": fresh, "old": c} {
		expectProblem(t, "the "+name+" token after DeleteAccount", works(d), 401, client.TypeInvalidToken)
	}
	_, err = anon.Login(ctx, "deleted", "secureP@ss123")
	expectProblem(t, "Login after DeleteAccount", err, 401, client.TypeInvalidCredentials)
	MustLogin(t, anon, "deleted") // the username and the address are free again
}

// counter counts the requests that pass.
type counter struct{ n atomic.Int32 }

func (c *counter) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(req)
}

// TestSecurityEvents: what the log holds, a page at a time, and the
// iterator over several of the server's pages of 100.
func TestSecurityEvents(t *testing.T) {
	base := MustServer(t)
	anon := MustClient(t, base)
	c := MustLogin(t, anon, "logged")
	if _, err := anon.Login(ctx, "logged", "wrong password"); err == nil {
		t.Fatal("a wrong password logged in")
	}
	key, err := c.CreateAPIKey(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	page, err := c.ListSecurityEventsPage(ctx, 0, "")
	if err != nil {
		t.Fatalf("ListSecurityEventsPage = %v", err)
	}
	var types []client.SecurityEventType
	for _, e := range page.Events {
		types = append(types, e.Type)
	}
	if want := []client.SecurityEventType{client.EventAPIKeyCreated, client.EventLoginFailed, client.EventLoginSucceeded}; !slices.Equal(types, want) || page.Next != "" {
		t.Fatalf("ListSecurityEventsPage = %v, next %q; want %v and no next page", types, page.Next, want)
	}
	created := page.Events[0]
	if created.KeyID == nil || *created.KeyID != key.ID || created.KeyPrefix == nil || *created.KeyPrefix != key.Prefix ||
		created.ClientAddress != "127.0.0.1" || !strings.HasPrefix(created.UserAgent, "Go-http-client/") || created.ID == uuid.Nil {
		t.Fatalf("the key's event = %+v, want its key, the client's address and user agent", created)
	}
	if login := page.Events[2]; login.KeyID != nil || login.KeyPrefix != nil {
		t.Fatalf("the login's event names a key: %+v", login)
	}

	// 204 more, a profile update each: 207 events, three pages of 100.
	me := c.UsingAPIKey(key.RawKey)
	for i := range 204 {
		if _, err := me.UpdateCurrentUser(ctx, client.WithFullName(fmt.Sprint("Name ", i))); err != nil {
			t.Fatal(err)
		}
	}
	var paged []uuid.UUID
	cursor, pages := "", 0
	for {
		p, err := c.ListSecurityEventsPage(ctx, 50, cursor)
		if err != nil {
			t.Fatalf("ListSecurityEventsPage(50, %q) = %v", cursor, err)
		}
		for _, e := range p.Events {
			paged = append(paged, e.ID)
		}
		pages++
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	if pages != 5 || len(paged) != 207 {
		t.Fatalf("pages of 50: %d pages, %d events; want 5 pages, 207 events", pages, len(paged))
	}

	rec := &counter{}
	counted := MustClient(t, base, client.WithHTTPClient(&http.Client{Transport: rec})).UsingToken(mustToken(t, anon, "logged"))
	var iterated []uuid.UUID
	var last time.Time
	for e, err := range counted.SecurityEvents(ctx) {
		if err != nil {
			t.Fatalf("SecurityEvents = %v", err)
		}
		if len(iterated) > 0 && e.OccurredAt.After(last) {
			t.Fatalf("SecurityEvents: %v after %v, want newest first", e.OccurredAt, last)
		}
		iterated, last = append(iterated, e.ID), e.OccurredAt
	}
	// The login for counted is the newest event; the rest are those paged.
	if n := rec.n.Load(); n != 3 || len(iterated) != 208 || !slices.Equal(iterated[1:], paged) {
		t.Fatalf("SecurityEvents: %d requests, %d events; want 3 pages, 208 events: the new login, then the %d paged", n, len(iterated), len(paged))
	}
	rec.n.Store(0)
	n := 0
	for _, err := range counted.SecurityEvents(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 150 {
			break
		}
	}
	if got := rec.n.Load(); got != 2 {
		t.Fatalf("breaking off after 150 events made %d requests, want 2 (no page fetched in vain)", got)
	}

	var errs []error
	for _, err := range anon.SecurityEvents(ctx) {
		errs = append(errs, err)
	}
	if len(errs) != 1 {
		t.Fatalf("SecurityEvents without a token yielded %d times, want once, the error", len(errs))
	}
	expectProblem(t, "SecurityEvents without a token", errs[0], 401, client.TypeUnauthenticated)
	_, err = c.ListSecurityEventsPage(ctx, 0, "not-a-cursor")
	expectProblem(t, "ListSecurityEventsPage with a cursor that is not one", err, 422, client.TypeValidationFailed, "cursor")
	_, err = anon.UsingAPIKey(key.RawKey).ListSecurityEventsPage(ctx, 0, "")
	expectProblem(t, "ListSecurityEventsPage with an API key only", err, 401, client.TypeUnauthenticated)
}
