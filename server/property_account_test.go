package server_test

// The properties of account self-service (issue 12): the model follows
// each user's password, tokens, profile and security log, so that it can
// say which token a sign-out or a password change ended, that a deleted
// account's key and tokens are refused, and which events the log lists,
// in which order.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"pgregory.net/rapid"
)

// propToken is an access token the model knows of.
type propToken struct {
	raw      string
	owner    *propUser
	authTime time.Time // its auth_time: when its user logged in
	ended    string    // why it is refused, as the outcome its refusal counts as; "" while it works
}

// propEvent is one entry of a user's security log.
type propEvent struct {
	typ string
	key *propKey // the key of a key event, else nil
}

// String is the event as listEvents compares it: its type and key.
func (e propEvent) String() string {
	if e.key == nil {
		return e.typ + " key=null prefix=null"
	}
	return fmt.Sprintf("%s key=%s prefix=%s", e.typ, e.key.id, e.key.raw[:8])
}

func (u *propUser) record(typ string, k *propKey) {
	u.events = append(u.events, propEvent{typ: typ, key: k})
}

// newest is u's log as the server lists it, newest first.
func (u *propUser) newest() []string {
	var out []string
	for _, e := range slices.Backward(u.events) {
		out = append(out, e.String())
	}
	return out
}

// current is u's newest working token.
func (u *propUser) current() *propToken {
	if len(u.live) == 0 {
		return nil
	}
	return u.live[len(u.live)-1]
}

// authTimeOf reads a token's auth_time claim, which decides whether it may
// delete its account.
func authTimeOf(t interface{ Fatalf(string, ...any) }, tok string) time.Time {
	parts := strings.Split(tok, ".")
	var claims struct {
		AuthTime *float64 `json:"auth_time"`
	}
	if len(parts) != 3 {
		t.Fatalf("access token %q is not a JWS", tok)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err == nil {
		err = json.Unmarshal(payload, &claims)
	}
	if err != nil || claims.AuthTime == nil {
		t.Fatalf("access token %q: no auth_time (%v)", tok, err)
	}
	sec, frac := math.Modf(*claims.AuthTime)
	return time.Unix(int64(sec), int64(frac*1e9))
}

// issued records a token the server just gave u.
func (p *propEnv) issued(t *rapid.T, u *propUser, raw string) {
	for _, o := range p.m.users {
		for _, tok := range o.live {
			if tok.raw == raw {
				t.Fatalf("login as %q gave a token given before", u.username)
			}
		}
	}
	u.live = append(u.live, &propToken{raw: raw, owner: u, authTime: authTimeOf(t, raw)})
	u.token = raw
}

// end marks tokens of u as ended for why (all of its working ones when
// none are named), to be refused from now on.
func (p *propEnv) end(u *propUser, why string, toks ...*propToken) {
	if len(toks) == 0 {
		toks = slices.Clone(u.live)
	}
	for _, tok := range toks {
		tok.ended = why
		p.m.ended = append(p.m.ended, tok)
		u.live = slices.DeleteFunc(u.live, func(x *propToken) bool { return x == tok })
	}
	u.token = ""
	if c := u.current(); c != nil {
		u.token = c.raw
	}
}

// loginAs logs u in again, with its password now, so that it has a
// working token for the other actions.
func (p *propEnv) loginAs(t *rapid.T, u *propUser) {
	p.login(t, map[string]any{"username": recase(t, u.username), "password": u.password})
}

// refused tries an ended token on a request drawn among those a token
// makes, each of which would change something if it were let through,
// and expects 401 invalid_token.
func (p *propEnv) refused(t *rapid.T, tok *propToken) {
	req := rapid.SampledFrom([]string{
		"GET /v1/auth/events", "GET /v1/auth/api-keys", "POST /v1/auth/api-keys", "POST /v1/auth/logout",
		"POST /v1/auth/password", "DELETE /v1/auth/account",
	}).Draw(t, "request with an ended token")
	method, path, _ := strings.Cut(req, " ")
	var body any
	switch path {
	case "/v1/auth/api-keys":
		if method == "POST" {
			body = map[string]any{"name": "after the end"}
		}
	case "/v1/auth/password":
		body = map[string]any{"current_password": tok.owner.password, "new_password": "a new Passw0rd for an ended token"}
	}
	r := p.send(t, true, method, path, body, "Authorization", "Bearer "+tok.raw)
	what := fmt.Sprintf("%s with %s (%s)", req, strings.TrimSuffix(tok.ended, " 401"), tok.owner.username)
	expectProblem(t, what, r, 401, "urn:authapi:problem:invalid-token")
	if challenge := r.Header.Get("WWW-Authenticate"); !strings.Contains(challenge, `error="invalid_token"`) {
		t.Fatalf("%s: WWW-Authenticate %q, want error=\"invalid_token\"", what, challenge)
	}
	p.seen[tok.ended]++
}

// works checks that tok is still accepted: the newest event it lists is
// the newest its user has.
func (p *propEnv) works(t *rapid.T, tok *propToken) {
	r := p.send(t, true, "GET", "/v1/auth/events?limit=1", nil, "Authorization", "Bearer "+tok.raw)
	var page []map[string]any
	if r.Status != 200 || json.Unmarshal(r.Body, &page) != nil {
		t.Fatalf("listSecurityEvents with a working token of %q = %d %s, want 200", tok.owner.username, r.Status, r.Body)
	}
	want := tok.owner.newest()
	if got := eventStrings(page); !slices.Equal(got, want[:min(1, len(want))]) {
		t.Fatalf("listSecurityEvents?limit=1 as %q = %v, want %v", tok.owner.username, got, want[:min(1, len(want))])
	}
}

func eventStrings(page []map[string]any) []string {
	out := []string{}
	for _, e := range page {
		out = append(out, fmt.Sprintf("%v key=%v prefix=%v", e["type"], orNull(e["key_id"]), orNull(e["key_prefix"])))
	}
	return out
}

func orNull(v any) any {
	if v == nil {
		return "null"
	}
	return v
}

// listEvents lists u's whole log, a page at a time when a page size is
// drawn, and compares it with the model's.
func (p *propEnv) listEvents(t *rapid.T, u *propUser) {
	want := u.newest()
	path, limit := "/v1/auth/events", 100
	if rapid.Bool().Draw(t, "paged") {
		// At most about ten pages, however long the log has grown.
		lo := min(100, max(1, len(want)/10))
		limit = rapid.IntRange(lo, min(100, max(lo, len(want)+1))).Draw(t, "page size")
		path += "?limit=" + strconv.Itoa(limit)
	}
	got := []string{}
	for pages := 0; path != ""; pages++ {
		r := p.send(t, true, "GET", path, nil, "Authorization", "Bearer "+u.token)
		var page []map[string]any
		if r.Status != 200 || json.Unmarshal(r.Body, &page) != nil || pages > 100 {
			t.Fatalf("listSecurityEvents as %q (%s) = %d %s, want 200", u.username, path, r.Status, r.Body)
		}
		got = append(got, eventStrings(page)...)
		path = ""
		if link := r.Header.Get("Link"); link != "" {
			// A next page only after a full one.
			if len(page) != limit {
				t.Fatalf("listSecurityEvents as %q: a page of %d of %d with a Link %q", u.username, len(page), limit, link)
			}
			path = strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
			p.seen["listSecurityEvents 200 with a next page"]++
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listSecurityEvents as %q =\n%s\nwant\n%s", u.username, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	p.seen["listSecurityEvents 200"]++
}

// workingKeys lists the keys that work now, of live accounts, whose
// scopes include scopes (has) or lack one of them (!has).
func (p *propEnv) workingKeys(scopes []string, has bool) []*propKey {
	now := p.Clock.Now()
	return slices.DeleteFunc(p.m.allKeys(), func(k *propKey) bool {
		all := !slices.ContainsFunc(scopes, func(s string) bool { return !slices.Contains(k.scopes, s) })
		return !k.activeAt(now) || all != has
	})
}

// keyWith returns a working key whose scopes include scopes (has) or lack
// one (!has), creating one for a logged-in user when there is none (and
// revoking a key first when that user is at the cap).
func (p *propEnv) keyWith(t *rapid.T, scopes []string, has bool) *propKey {
	if keys := p.workingKeys(scopes, has); len(keys) > 0 {
		return rapid.SampledFrom(keys).Draw(t, "key")
	}
	u := rapid.SampledFrom(p.m.loggedIn()).Draw(t, "user to make a key for")
	now := p.Clock.Now()
	if u.activeKeys(now, nil) >= p.m.maxKey {
		working := slices.DeleteFunc(slices.Clone(u.keys), func(k *propKey) bool { return !k.activeAt(now) })
		p.revoke(t, u, rapid.SampledFrom(working).Draw(t, "key to make room").id)
	}
	var granted []any
	for _, s := range p.m.allScopes {
		if slices.Contains(scopes, s) == has {
			granted = append(granted, s)
		}
	}
	if len(granted) == 0 {
		t.Fatalf("no scope set is %v of %v", map[bool]string{true: "with", false: "without"}[has], scopes)
	}
	p.createKey(t, u, map[string]any{"name": "made for the test", "scopes": granted})
	return u.keys[len(u.keys)-1]
}

// updateBody draws a profile update for u: a drawn email, another user's,
// or u's own in other letter cases, and/or a full name.
func (p *propEnv) updateBody(t *rapid.T, u *propUser) map[string]any {
	schema := bodySchema(p.ops["updateCurrentUser"])
	b := p.d.object(schema).Draw(t, "updateCurrentUser body")
	if len(b) == 0 { // the schema's minProperties
		name := rapid.SampledFrom([]string{"email", "full_name"}).Draw(t, "the one member")
		b[name] = p.d.value(name, schema.Properties[name].Value).Draw(t, name)
	}
	others := slices.DeleteFunc(p.m.sortedUsers(), func(o *propUser) bool { return o == u })
	switch rapid.IntRange(0, 3).Draw(t, "email to set") {
	case 1: // 409
		if len(others) > 0 {
			b["email"] = recase(t, rapid.SampledFrom(others).Draw(t, "another user").email)
		}
	case 2: // its own is no conflict, in whatever case
		b["email"] = recase(t, u.email)
	}
	return b
}

// updateMe updates the profile of k's owner with body and checks the
// answer, and GET /v1/me's afterwards, against the model.
func (p *propEnv) updateMe(t *rapid.T, k *propKey, body map[string]any) {
	now := p.Clock.Now()
	r := p.send(t, true, "PATCH", "/v1/me", body, "X-API-Key", k.raw)
	if p.keyRefused(t, "updateCurrentUser", r, k, p.m.writeScopes, now) {
		return
	}
	k.used(now)
	u := k.owner
	email, fullName := u.email, u.fullName
	if e, ok := body["email"].(string); ok {
		if holder := p.m.emails[strings.ToLower(e)]; holder != nil && holder != u {
			expectProblem(t, "updateCurrentUser with another user's email", r, 409, "urn:authapi:problem:already-registered", "email")
			p.seen["updateCurrentUser 409"]++
			return
		}
		email = e
	}
	if n, ok := body["full_name"].(string); ok {
		fullName = n
	}
	if r.Status != 200 || r.JSON["id"] != u.id || r.JSON["username"] != u.username || r.JSON["email"] != email || r.JSON["full_name"] != fullName {
		t.Fatalf("updateCurrentUser(%v) as %q = %d %s, want 200 with email %q and full name %q", body, u.username, r.Status, r.Body, email, fullName)
	}
	p.seen["updateCurrentUser 200"]++
	delete(p.m.emails, strings.ToLower(u.email))
	u.email, u.fullName = email, fullName
	p.m.emails[strings.ToLower(email)] = u
	u.record("profile_updated", nil)
	// Every key of the user shows the change at once, the cached ones too.
	readers := slices.DeleteFunc(p.workingKeys(p.m.meScopes, true), func(o *propKey) bool { return o.owner != u })
	if len(readers) > 0 {
		p.me(t, rapid.SampledFrom(readers).Draw(t, "key to read the update with"))
		p.seen["getCurrentUser 200 after an update"]++
	}
}

// changePassword sends a password change as u, with the right current
// password, a wrong one, or the current one as the new one too.
func (p *propEnv) changePassword(t *rapid.T, u *propUser) {
	schema := bodySchema(p.ops["changePassword"])
	newSchema := schema.Properties["new_password"].Value
	current, next := u.password, stringGen(p.t, newSchema).Draw(t, "new_password")
	switch rapid.IntRange(0, 3).Draw(t, "kind of change") {
	case 1:
		current = stringGen(p.t, schema.Properties["current_password"].Value).Draw(t, "wrong current_password")
	case 2:
		if lengthOK(u.password, newSchema) && regexp.MustCompile(newSchema.Pattern).MatchString(u.password) {
			next = u.password
		}
	}
	tok := rapid.SampledFrom(u.live).Draw(t, "token")
	r := p.send(t, true, "POST", "/v1/auth/password", map[string]any{"current_password": current, "new_password": next},
		"Authorization", "Bearer "+tok.raw)
	switch {
	case current != u.password:
		expectProblem(t, "changePassword with a wrong current password", r, 403, "urn:authapi:problem:wrong-password")
		u.record("login_failed", nil) // a guess at the password, like a failed login
		p.seen["changePassword 403"]++
		return
	case next == current:
		expectProblem(t, "changePassword to the same password", r, 422, "urn:authapi:problem:validation-failed", "new_password")
		p.seen["changePassword 422 same password"]++
		return
	}
	if r.Status != 204 || len(r.Body) != 0 {
		t.Fatalf("changePassword as %q = %d %s, want 204", u.username, r.Status, r.Body)
	}
	p.seen["changePassword 204"]++
	old := u.password
	u.password = next
	u.record("password_changed", nil)
	ended := slices.Clone(u.live)
	p.end(u, "a token ended by a password change 401")
	// The token that made the change and the user's others are refused.
	p.refused(t, tok)
	if others := slices.DeleteFunc(ended, func(o *propToken) bool { return o == tok }); len(others) > 0 {
		p.refused(t, rapid.SampledFrom(others).Draw(t, "another token of before"))
	}
	// API keys keep working.
	if keys := slices.DeleteFunc(p.workingKeys(p.m.meScopes, true), func(k *propKey) bool { return k.owner != u }); len(keys) > 0 {
		p.me(t, rapid.SampledFrom(keys).Draw(t, "key after the change"))
		p.seen["an API key after a password change"]++
	}
	if rapid.Bool().Draw(t, "try the old password") {
		p.login(t, map[string]any{"username": recase(t, u.username), "password": old})
	}
	p.loginAs(t, u)
}

// logout signs u out: one of its tokens, or all of them. Some of the
// time u logs in once more first, so that another token is there to be
// ended with the others or spared.
func (p *propEnv) logout(t *rapid.T, u *propUser) {
	if len(u.live) < 2 && rapid.Bool().Draw(t, "log in once more first") {
		p.loginAs(t, u)
	}
	tok := rapid.SampledFrom(u.live).Draw(t, "token to log out")
	var body any // none at all: the body is optional
	all := false
	switch rapid.IntRange(0, 3).Draw(t, "logout body") {
	case 1:
		body = map[string]any{}
	case 2:
		body = map[string]any{"all": false}
	case 3:
		body, all = map[string]any{"all": true}, true
	}
	others := slices.DeleteFunc(slices.Clone(u.live), func(o *propToken) bool { return o == tok })
	r := p.send(t, true, "POST", "/v1/auth/logout", body, "Authorization", "Bearer "+tok.raw)
	if r.Status != 204 || len(r.Body) != 0 {
		t.Fatalf("logout(%v) as %q = %d %s, want 204", body, u.username, r.Status, r.Body)
	}
	u.record("logged_out", nil)
	if all {
		p.seen["logout 204 all"]++
		p.end(u, "a token ended by logout all 401")
	} else {
		p.seen["logout 204"]++
		p.end(u, "a logged-out token 401", tok)
	}
	p.refused(t, tok)
	if len(others) > 0 {
		other := rapid.SampledFrom(others).Draw(t, "another token")
		if all {
			p.refused(t, other)
		} else {
			p.works(t, other)
			p.seen["logout 204 leaves the other tokens"]++
		}
	}
	if u.token == "" {
		p.loginAs(t, u)
	}
}

// registerNew registers a user whose username and email are free and
// logs it in.
func (p *propEnv) registerNew(t *rapid.T) *propUser {
	b := p.d.object(bodySchema(p.ops["registerUser"])).Filter(func(b map[string]any) bool {
		return p.m.users[strings.ToLower(b["username"].(string))] == nil && p.m.emails[strings.ToLower(b["email"].(string))] == nil
	}).Draw(t, "new user")
	p.register(t, b)
	u := p.m.users[strings.ToLower(b["username"].(string))]
	p.loginAs(t, u)
	return u
}

// deleteAccount deletes a user: one registered for it, or one of the pool
// while more than two are logged in, with its newest token, fresh or not,
// at times after waiting until its login is as old as deletion allows, or
// a second younger; or it tries a login of the pool a nanosecond too old.
//
// The server's clock only moves ahead, and the tokens' does not follow it,
// so once the server's is ahead by more than the age allowed (after the
// first wait of the interleaved run) every deletion is refused: accounts
// are deleted in deleteAccount's own property, which runs before any such
// wait, and the clock is moved here only as far as keeps a login made from
// then on young enough.
func (p *propEnv) deleteAccount(t *rapid.T) {
	pool := p.m.loggedIn()
	var u *propUser
	switch kind := rapid.IntRange(0, 3).Draw(t, "whom to delete"); {
	case kind == 0:
		// Refused, whoever it is, so the pool keeps its users.
		u = rapid.SampledFrom(pool).Draw(t, "user with a login a nanosecond too old")
		if d := u.current().authTime.Add(p.m.reauth + time.Nanosecond).Sub(p.Clock.Now()); d > 0 {
			p.Clock.Add(d)
			// auth_time counts whole seconds: logins of this second would
			// be too old as well, so the tokens' clock moves to the next.
			p.tokens.Add(time.Second)
			p.seen["deleteAccount 401 a nanosecond past the age"]++
		}
	case kind == 1 && len(pool) > 2:
		u = rapid.SampledFrom(pool).Draw(t, "user to delete")
	default:
		u = p.registerNew(t)
		if rapid.Bool().Draw(t, "with a key") {
			p.createKey(t, u, p.d.object(bodySchema(p.ops["createApiKey"])).Draw(t, "createApiKey body"))
		}
		if rapid.Bool().Draw(t, "log in again first") {
			p.loginAs(t, u)
		}
		if rapid.Bool().Draw(t, "wait until the login is that old") {
			by := rapid.SampledFrom([]time.Duration{0, -time.Second}).Draw(t, "older than allowed by")
			if d := u.current().authTime.Add(p.m.reauth + by).Sub(p.Clock.Now()); d > 0 {
				p.Clock.Add(d)
			}
		}
	}
	tok := u.current()
	age := p.Clock.Now().Sub(tok.authTime)
	r := p.send(t, true, "DELETE", "/v1/auth/account", nil, "Authorization", "Bearer "+tok.raw)
	if age > p.m.reauth {
		expectProblem(t, fmt.Sprintf("deleteAccount with a login %v old", age), r, 401, "urn:authapi:problem:reauthentication-required")
		challenge := r.Header.Get("WWW-Authenticate")
		if !strings.Contains(challenge, `error="insufficient_user_authentication"`) || !strings.Contains(challenge, fmt.Sprintf("max_age=%d", int(p.m.reauth/time.Second))) {
			t.Fatalf("deleteAccount with a login %v old: WWW-Authenticate %q, want insufficient_user_authentication and max_age", age, challenge)
		}
		p.seen["deleteAccount 401 reauthentication"]++
		return // nothing changed: u stays, logged in
	}
	if r.Status != 204 || len(r.Body) != 0 {
		t.Fatalf("deleteAccount as %q with a login %v old = %d %s, want 204", u.username, age, r.Status, r.Body)
	}
	p.seen["deleteAccount 204"]++
	if age == p.m.reauth {
		p.seen["deleteAccount 204 at the reauthentication age"]++
	}
	u.deleted = true
	delete(p.m.users, strings.ToLower(u.username))
	delete(p.m.emails, strings.ToLower(u.email))
	p.m.deleted = append(p.m.deleted, u)
	p.end(u, "a deleted account's token 401")
	p.refused(t, tok)
	if len(u.keys) > 0 {
		p.me(t, rapid.SampledFrom(u.keys).Draw(t, "key of the deleted account"))
	}
	// The username and the email are free again, and the log starts anew.
	if rapid.Bool().Draw(t, "register the name again") {
		b := p.d.object(bodySchema(p.ops["registerUser"])).Draw(t, "registerUser body")
		b["username"], b["email"] = recase(t, u.username), recase(t, u.email)
		p.register(t, b)
		p.seen["registerUser 200 with a deleted account's name"]++
		again := p.m.users[strings.ToLower(u.username)]
		p.loginAs(t, again)
		p.listEvents(t, again)
	}
}

// stale tries a credential that the model says was ended: a token ended
// by a sign-out, a password change or a deletion, or a deleted account's
// key, some time after it ended.
func (p *propEnv) stale(t *rapid.T) {
	var keys []*propKey
	for _, u := range p.m.deleted {
		keys = append(keys, u.keys...)
	}
	switch {
	case len(p.m.ended) > 0 && (len(keys) == 0 || rapid.Bool().Draw(t, "a token")):
		p.refused(t, rapid.SampledFrom(p.m.ended).Draw(t, "ended token"))
	case len(keys) > 0:
		p.me(t, rapid.SampledFrom(keys).Draw(t, "deleted account's key"))
	}
}

// accountChecks are the properties of the account operations, for
// operationChecks.
func (p *propEnv) accountChecks(user func(*rapid.T) *propUser) map[string]propOp {
	// withoutToken checks that an operation for a JWT refuses a request
	// without one, and one with an API key instead.
	withoutToken := func(t *rapid.T, op, method, path string, body any) {
		r := p.send(t, true, method, path, body)
		expectProblem(t, op+" without a token", r, 401, "urn:authapi:problem:unauthenticated")
		if k := rapid.SampledFrom(p.m.allKeys()).Draw(t, "a key instead of a token"); k.activeAt(p.Clock.Now()) {
			r := p.send(t, true, method, path, body, "X-API-Key", k.raw)
			expectProblem(t, op+" with an API key", r, 401, "urn:authapi:problem:unauthenticated")
		}
	}
	return map[string]propOp{
		"updateCurrentUser": {
			broken: func(t *rapid.T) {
				k := p.keyWith(t, p.m.writeScopes, true)
				now := p.Clock.Now()
				p.checkBrokenBodies(t, "updateCurrentUser", "PATCH", "/v1/me", p.updateBody(t, k.owner), "X-API-Key", k.raw)
				for _, c := range []struct {
					what string
					body map[string]any
				}{{"empty", map[string]any{}}, {"only unknown members", map[string]any{"nickname": "x", "username": "renamed"}}} {
					r := p.send(t, false, "PATCH", "/v1/me", c.body, "X-API-Key", k.raw)
					expectProblem(t, "updateCurrentUser "+c.what, r, 422, "urn:authapi:problem:validation-failed", "body")
					p.seen["updateCurrentUser 422 "+c.what]++
				}
				k.used(now) // the refusals came after the key was accepted
				valid := p.updateBody(t, k.owner)
				r := p.send(t, true, "PATCH", "/v1/me", valid)
				expectProblem(t, "updateCurrentUser without a key", r, 401, "urn:authapi:problem:unauthenticated")
				r = p.send(t, true, "PATCH", "/v1/me", valid, "Authorization", "Bearer "+user(t).token)
				expectProblem(t, "updateCurrentUser with a JWT", r, 401, "urn:authapi:problem:unauthenticated")
				p.updateMe(t, p.keyWith(t, p.m.writeScopes, false), valid)
			},
			valid: func(t *rapid.T) {
				var k *propKey
				switch rapid.IntRange(0, 3).Draw(t, "kind of key") {
				case 0:
					k = rapid.SampledFrom(p.m.allKeys()).Draw(t, "any key")
				case 1:
					k = p.keyWith(t, p.m.writeScopes, false)
				default:
					k = p.keyWith(t, p.m.writeScopes, true)
				}
				p.updateMe(t, k, p.updateBody(t, k.owner))
			},
		},
		"changePassword": {
			broken: func(t *rapid.T) {
				u := user(t)
				valid := p.d.object(bodySchema(p.ops["changePassword"])).Draw(t, "changePassword body")
				valid["current_password"] = u.password // so that nothing but the broken constraint is wrong
				p.checkBrokenBodies(t, "changePassword", "POST", "/v1/auth/password", valid, "Authorization", "Bearer "+u.token)
				withoutToken(t, "changePassword", "POST", "/v1/auth/password", valid)
			},
			valid: func(t *rapid.T) { p.changePassword(t, user(t)) },
		},
		"logout": {
			broken: func(t *rapid.T) {
				u := user(t)
				p.checkBrokenBodies(t, "logout", "POST", "/v1/auth/logout", p.d.object(bodySchema(p.ops["logout"])).Draw(t, "logout body"),
					"Authorization", "Bearer "+u.token)
				withoutToken(t, "logout", "POST", "/v1/auth/logout", nil)
				p.works(t, u.current()) // refused sign-outs end nothing
			},
			valid: func(t *rapid.T) { p.logout(t, user(t)) },
		},
		"deleteAccount": {
			broken: func(t *rapid.T) { withoutToken(t, "deleteAccount", "DELETE", "/v1/auth/account", nil) },
			valid:  p.deleteAccount,
		},
		"listSecurityEvents": {
			broken: func(t *rapid.T) {
				u := user(t)
				p.checkBrokenQuery(t, "listSecurityEvents", "/v1/auth/events", u)
				withoutToken(t, "listSecurityEvents", "GET", "/v1/auth/events", nil)
			},
			valid: func(t *rapid.T) { p.listEvents(t, user(t)) },
		},
	}
}
