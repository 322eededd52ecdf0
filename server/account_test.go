package server_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"authapi/server"
)

// bearerDo sends a request with tok as the bearer token.
func (e *env) bearerDo(method, path, body, tok string, header ...string) *response {
	e.t.Helper()
	return e.do(true, method, path, body, append([]string{"Authorization", "Bearer " + tok}, header...)...)
}

// login logs name in with password and returns the token.
func (e *env) login(name, password string) string {
	e.t.Helper()
	r := e.do(true, "POST", "/v1/auth/login", fmt.Sprintf(`{"username":%q,"password":%q}`, name, password))
	if r.Status != 200 {
		e.t.Fatalf("login %s = %d %s", name, r.Status, r.Body)
	}
	return r.JSON["access_token"].(string)
}

// events returns the types of u's security events, newest first, over
// every page.
func (e *env) events(tok string) []string {
	e.t.Helper()
	var types []string
	path := "/v1/auth/events?limit=3"
	for path != "" {
		r := e.bearerDo("GET", path, "", tok)
		var page []struct{ Type string }
		if r.Status != 200 || json.Unmarshal(r.Body, &page) != nil {
			e.t.Fatalf("GET %s = %d %s", path, r.Status, r.Body)
		}
		for _, ev := range page {
			types = append(types, ev.Type)
		}
		path = strings.TrimSuffix(strings.TrimPrefix(r.Header.Get("Link"), "<"), `>; rel="next"`)
	}
	return types
}

func mustStatus(t *testing.T, what string, r *response, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("%s = %d %s, want %d", what, r.Status, r.Body, want)
	}
}

func TestChangePassword(t *testing.T) {
	e := newEnv(t, trustLoopbackProxy)
	u := e.MustLogin("changer")
	other := e.login(u.Username, u.Password) // another device
	key := e.MustCreateKey(u, "k")
	change := func(tok, current, next string) *response {
		return e.bearerDo("POST", "/v1/auth/password", fmt.Sprintf(`{"current_password":%q,"new_password":%q}`, current, next), tok)
	}

	r := change(u.Token, "wrong password", "a new Passw0rd")
	mustStatus(t, "a wrong current password", r, 403)
	if r.Problem().Type != "urn:authapi:problem:wrong-password" {
		t.Fatalf("type = %s", r.Problem().Type)
	}
	r = change(u.Token, u.Password, u.Password)
	mustStatus(t, "the same password again", r, 422)
	if !slices.Equal(r.Fields(), []string{"new_password"}) {
		t.Fatalf("fields = %v", r.Fields())
	}
	mustStatus(t, "a new password too short", e.do(false, "POST", "/v1/auth/password", fmt.Sprintf(`{"current_password":%q,"new_password":"short"}`, u.Password), "Authorization", "Bearer "+u.Token), 422)

	mustStatus(t, "the change", change(u.Token, u.Password, "a new Passw0rd"), 204)
	for _, tok := range []string{u.Token, other} {
		r := e.bearerDo("GET", "/v1/auth/api-keys", "", tok)
		if r.Status != 401 || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("a token from before the change = %d %q, want 401 invalid_token", r.Status, r.Header.Get("WWW-Authenticate"))
		}
	}
	if r := e.do(true, "POST", "/v1/auth/login", fmt.Sprintf(`{"username":%q,"password":%q}`, u.Username, u.Password)); r.Status != 401 {
		t.Fatalf("the old password logs in: %d", r.Status)
	}
	fresh := e.login(u.Username, "a new Passw0rd")
	mustStatus(t, "a token issued after the change", e.bearerDo("GET", "/v1/auth/api-keys", "", fresh), 200)
	mustStatus(t, "an API key after the change", e.me(key.RawKey), 200)

	want := []string{"login_succeeded", "login_failed", "password_changed", "login_failed", "api_key_created", "login_succeeded", "login_succeeded"}
	if got := e.events(fresh); !slices.Equal(got, want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
}

// TestChangePasswordCountsAgainstTheLoginThrottle: wrong current passwords
// are failed logins of the user from the address.
func TestChangePasswordCountsAgainstTheLoginThrottle(t *testing.T) {
	e := newEnv(t, trustLoopbackProxy, options{server: func(c *server.Config) { c.LoginMaxFailures = 3 }})
	u := e.MustLogin("guessedpw")
	from := func(addr, tok, current string) *response {
		return e.bearerDo("POST", "/v1/auth/password", fmt.Sprintf(`{"current_password":%q,"new_password":"whatever Passw0rd"}`, current), tok, "X-Forwarded-For", addr)
	}
	for i := range 3 {
		mustStatus(t, fmt.Sprint("guess ", i+1), from("203.0.113.50", u.Token, "guess"), 403)
	}
	r := from("203.0.113.50", u.Token, u.Password)
	mustRetryAfter(t, "the right password after 3 wrong ones", r, 60, 15*60)
	r = e.do(true, "POST", "/v1/auth/login", fmt.Sprintf(`{"username":%q,"password":%q}`, u.Username, u.Password), "X-Forwarded-For", "203.0.113.50")
	mustStatus(t, "a login from the same address", r, 429)
	mustStatus(t, "the change from another address", from("203.0.113.51", u.Token, u.Password), 204)
}

func TestLogout(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("leaver")
	second := e.login(u.Username, u.Password)
	third := e.login(u.Username, u.Password)

	mustStatus(t, "logout", e.bearerDo("POST", "/v1/auth/logout", "", u.Token), 204)
	mustStatus(t, "the ended token", e.bearerDo("GET", "/v1/auth/api-keys", "", u.Token), 401)
	mustStatus(t, "logout with the ended token", e.bearerDo("POST", "/v1/auth/logout", "", u.Token), 401)
	mustStatus(t, "another token of the user", e.bearerDo("GET", "/v1/auth/api-keys", "", second), 200)

	mustStatus(t, "logout everywhere", e.bearerDo("POST", "/v1/auth/logout", `{"all":true}`, second), 204)
	for _, tok := range []string{second, third} {
		mustStatus(t, "a token after logging out everywhere", e.bearerDo("GET", "/v1/auth/api-keys", "", tok), 401)
	}
	fresh := e.login(u.Username, u.Password)
	mustStatus(t, "a token issued after", e.bearerDo("GET", "/v1/auth/api-keys", "", fresh), 200)
	mustStatus(t, "an explicit all=false", e.bearerDo("POST", "/v1/auth/logout", `{"all":false}`, fresh), 204)
	mustStatus(t, "... ends this token", e.bearerDo("GET", "/v1/auth/api-keys", "", fresh), 401)
	mustStatus(t, "all that is not a boolean", e.do(false, "POST", "/v1/auth/logout", `{"all":"yes"}`, "Authorization", "Bearer "+e.login(u.Username, u.Password)), 422)
}

// TestEndedTokensAreForgottenAfterTheirExpiry: storage for ended tokens is
// bounded: nothing is kept past a token's expiry.
func TestEndedTokensAreForgottenAfterTheirExpiry(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("bounded")
	mustStatus(t, "logout", e.bearerDo("POST", "/v1/auth/logout", "", u.Token), 204)
	if n := e.MustCount(`SELECT count(*) FROM ended_tokens`); n != 1 {
		t.Fatalf("%d ended tokens stored, want 1", n)
	}
	e.MustExec(`UPDATE ended_tokens SET expires_at = now() - interval '1 second'`)
	if n, err := e.DB.ForgetEndedTokens(ctx); err != nil || n != 1 {
		t.Fatalf("ForgetEndedTokens = %d, %v, want the expired one", n, err)
	}
}

func TestDeleteAccount(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("deleted")
	key := e.MustCreateKey(u, "k")
	mustStatus(t, "the key before", e.me(key.RawKey), 200) // cached now

	e.Clock.Add(6 * time.Minute)
	r := e.bearerDo("DELETE", "/v1/auth/account", "", u.Token)
	challenge := r.Header.Get("WWW-Authenticate")
	if r.Status != 401 || r.Problem().Type != "urn:authapi:problem:reauthentication-required" ||
		!strings.Contains(challenge, `error="insufficient_user_authentication"`) || !strings.Contains(challenge, "max_age=300") {
		t.Fatalf("deletion with a 6-minute-old login = %d %q %s, want 401 insufficient_user_authentication, max_age=300", r.Status, challenge, r.Body)
	}
	fresh := e.login(u.Username, u.Password)
	mustStatus(t, "deletion after a fresh login", e.bearerDo("DELETE", "/v1/auth/account", "", fresh), 204)
	mustStatus(t, "the key after", e.me(key.RawKey), 401)
	for _, tok := range []string{fresh, u.Token} {
		mustStatus(t, "a token after", e.bearerDo("GET", "/v1/auth/api-keys", "", tok), 401)
	}
	mustStatus(t, "logging in after", e.do(true, "POST", "/v1/auth/login", fmt.Sprintf(`{"username":%q,"password":%q}`, u.Username, u.Password)), 401)
	// The name and the address are free again.
	mustStatus(t, "registering the same name", e.do(true, "POST", "/v1/auth/register", registrationOf(u.Username)), 200)
	if n := e.MustCount(`SELECT count(*) FROM security_events`); n != 0 {
		t.Fatalf("%d security events left of the deleted user, want none", n)
	}
}

func registrationOf(name string) string {
	return fmt.Sprintf(`{"username":%q,"email":"%s@example.com","password":"secureP@ss123","full_name":"F"}`, name, name)
}

func TestUpdateCurrentUser(t *testing.T) {
	e := newEnv(t)
	u, other := e.MustLogin("updated"), e.MustRegister("taken")
	writer := e.MustCreateKey(u, "writer")
	readOnly := createKey(e, u, `{"name":"reader","scopes":["me:read"]}`)
	patch := func(key, body string) *response {
		return e.do(true, "PATCH", "/v1/me", body, "X-API-Key", key)
	}
	mustStatus(t, "GET /v1/me before", e.me(writer.RawKey), 200) // cached now

	r := patch(writer.RawKey, `{"full_name":"New Name"}`)
	mustStatus(t, "a new full name", r, 200)
	if r.JSON["full_name"] != "New Name" || r.JSON["email"] != u.Username+"@example.com" {
		t.Fatalf("PATCH = %s", r.Body)
	}
	if me := e.me(writer.RawKey); me.JSON["full_name"] != "New Name" {
		t.Fatalf("GET /v1/me after the update = %s, want the new name at once", me.Body)
	}
	r = patch(writer.RawKey, `{"email":"New.Address@example.org","full_name":"Both"}`)
	if r.Status != 200 || r.JSON["email"] != "New.Address@example.org" || r.JSON["full_name"] != "Both" {
		t.Fatalf("both = %d %s", r.Status, r.Body)
	}
	r = patch(writer.RawKey, fmt.Sprintf(`{"email":%q}`, strings.ToUpper(other.Username)+"@EXAMPLE.COM"))
	if r.Status != 409 || !slices.Equal(r.Fields(), []string{"email"}) {
		t.Fatalf("another account's email = %d %s, want 409 naming email", r.Status, r.Body)
	}
	for _, tc := range []struct{ name, body string }{
		{"empty", `{}`},
		{"unknown only", `{"nickname":"x"}`},
		{"blank full name", `{"full_name":"   "}`},
		{"bad email", `{"email":"nope"}`},
		{"null", `{"full_name":null}`},
	} {
		mustStatus(t, tc.name, e.do(false, "PATCH", "/v1/me", tc.body, "X-API-Key", writer.RawKey), 422)
	}
	// Whether the validator or the handler refuses it, an object that sets
	// nothing is told what it may set.
	for _, body := range []string{`{}`, `{"nickname":"x"}`} {
		r := e.do(false, "PATCH", "/v1/me", body, "X-API-Key", writer.RawKey)
		if p := r.Problem(); p.Errors == nil || len(*p.Errors) != 1 || (*p.Errors)[0].Field != "body" || (*p.Errors)[0].Message != "must set email or full_name" {
			t.Errorf("PATCH /v1/me %s = %d %s, want the body told to set email or full_name", body, r.Status, r.Body)
		}
	}
	r = patch(readOnly.JSON["raw_key"].(string), `{"full_name":"x"}`)
	if r.Status != 403 || r.Problem().Type != "urn:authapi:problem:insufficient-scope" || !strings.Contains(r.Header.Get("WWW-Authenticate"), `scope="me:write"`) {
		t.Fatalf("a me:read key = %d %q, want 403 naming me:write", r.Status, r.Header.Get("WWW-Authenticate"))
	}
	mustStatus(t, "a JWT on PATCH /v1/me", e.bearerDo("PATCH", "/v1/me", `{"full_name":"x"}`, u.Token), 401)
	if got := e.events(u.Token); !slices.Equal(got[:2], []string{"profile_updated", "profile_updated"}) {
		t.Fatalf("events = %v, want two profile updates on top", got)
	}
}

// TestSecurityEvents: every kind of event, newest first, paged, with the
// client's address and user agent; never a secret.
func TestSecurityEvents(t *testing.T) {
	e := newEnv(t, trustLoopbackProxy)
	u := e.MustLogin("logged")
	ua := "TestAgent/1.0 " + strings.Repeat("x", 300)
	h := []string{"X-Forwarded-For", "203.0.113.60", "User-Agent", ua}
	e.do(true, "POST", "/v1/auth/login", fmt.Sprintf(`{"username":%q,"password":"wrong"}`, strings.ToUpper(u.Username)), h...)
	e.do(true, "POST", "/v1/auth/login", `{"username":"nobodyatall","password":"wrong"}`, h...)
	k := e.bearerDo("POST", "/v1/auth/api-keys", `{"name":"k"}`, u.Token, h...)
	id := k.JSON["id"].(string)
	raw := k.JSON["raw_key"].(string)
	e.bearerDo("POST", "/v1/auth/api-keys/"+id+"/rotate", `{"grace_seconds":60}`, u.Token, h...)
	e.bearerDo("DELETE", "/v1/auth/api-keys/"+id, "", u.Token, h...)
	e.bearerDo("DELETE", "/v1/auth/api-keys/"+id, "", u.Token, h...) // again: nothing new

	r := e.bearerDo("GET", "/v1/auth/events", "", u.Token)
	var events []map[string]any
	if r.Status != 200 || json.Unmarshal(r.Body, &events) != nil {
		t.Fatalf("GET /v1/auth/events = %d %s", r.Status, r.Body)
	}
	var types []string
	for _, ev := range events {
		types = append(types, ev["type"].(string))
	}
	want := []string{"api_key_revoked", "api_key_rotated", "api_key_created", "login_failed", "login_succeeded"}
	if !slices.Equal(types, want) {
		t.Fatalf("events = %v, want %v", types, want)
	}
	for _, ev := range events[:4] {
		if ev["client_address"] != "203.0.113.60" || len([]rune(ev["user_agent"].(string))) != 200 || !strings.HasPrefix(ev["user_agent"].(string), "TestAgent/1.0") {
			t.Fatalf("event %v: want the client's address and its user agent cut to 200 characters", ev)
		}
	}
	for _, ev := range events[:3] {
		if ev["key_id"] != id || ev["key_prefix"] != raw[:8] {
			t.Fatalf("key event %v, want the key's id and prefix", ev)
		}
	}
	if events[3]["key_id"] != nil || events[3]["key_prefix"] != nil {
		t.Fatalf("a login event names a key: %v", events[3])
	}
	for _, secret := range []string{raw, u.Password, u.Token, "wrong"} {
		if strings.Contains(string(r.Body), secret) {
			t.Fatalf("the security log holds a secret: %q", secret)
		}
	}
	if got := e.events(u.Token); !slices.Equal(got, want) {
		t.Fatalf("the events over pages of 3 = %v, want %v", got, want)
	}
	mustStatus(t, "another user's log is their own", e.bearerDo("GET", "/v1/auth/events", "", e.MustLogin("someoneelse").Token), 200)
}

// TestEventRetention: events older than the retention are deleted.
func TestEventRetention(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("retained")
	e.MustCreateKey(u, "k")
	e.MustExec(`UPDATE security_events SET occurred_at = now() - interval '91 days' WHERE type = 'login_succeeded'`)
	if n, err := e.DB.DeleteOldEvents(ctx, 90*24*time.Hour); err != nil || n != 1 {
		t.Fatalf("DeleteOldEvents = %d, %v, want the one old event", n, err)
	}
	if got := e.events(u.Token); !slices.Equal(got, []string{"api_key_created"}) {
		t.Fatalf("events = %v", got)
	}
}
