package server_test

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"authapi/client/gen"
	"authapi/server"
)

// listed returns u's key id as listed.
func (e *env) listed(u *user, id uuid.UUID) gen.APIKey {
	e.t.Helper()
	resp, err := e.Client.ListAPIKeysWithResponse(ctx, nil, bearer(e.t, u.Token))
	if err != nil || resp.JSON200 == nil {
		e.t.Fatalf("list = %v %s", err, resp.Body)
	}
	for _, k := range *resp.JSON200 {
		if k.ID == id {
			return k
		}
	}
	e.t.Fatalf("key %s is not listed: %s", id, resp.Body)
	return gen.APIKey{}
}

// me calls GET /v1/me with key and returns the response.
func (e *env) me(key string) *response {
	e.t.Helper()
	return e.do(true, "GET", "/v1/me", "", "X-API-Key", key)
}

func createKey(e *env, u *user, body string) *response {
	e.t.Helper()
	return e.do(true, "POST", "/v1/auth/api-keys", body, "Authorization", "Bearer "+u.Token)
}

func TestKeyExpiry(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("expiring")
	exp := e.Clock.Now().Add(10 * time.Minute).UTC().Truncate(time.Second)
	r := createKey(e, u, fmt.Sprintf(`{"name":"short","expires_at":%q}`, exp.Format(time.RFC3339)))
	if r.Status != 200 || r.JSON["expires_at"] != exp.Format(time.RFC3339) {
		t.Fatalf("create with expires_at = %d %s", r.Status, r.Body)
	}
	key := r.JSON["raw_key"].(string)
	if got := e.listed(u, uuid.MustParse(r.JSON["id"].(string))); got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) || !got.IsActive {
		t.Fatalf("listed = %+v, want expires_at %v and active", got, exp)
	}
	for i := 0; i < 3; i++ { // repeated uses: a cache must not keep an expired key alive
		if r := e.me(key); r.Status != 200 {
			t.Fatalf("use %d before expiry = %d", i, r.Status)
		}
	}
	e.Clock.Add(10 * time.Minute)
	for i := 0; i < 2; i++ {
		r := e.me(key)
		if p := r.Problem(); r.Status != 401 || p.Type != "urn:authapi:problem:api-key-expired" || !strings.Contains(p.Detail, "expired") || !strings.Contains(p.Detail, "X-API-Key") {
			t.Fatalf("use at expiry = %d %s, want 401 api-key-expired with guidance", r.Status, r.Body)
		}
	}
	if got := e.listed(u, uuid.MustParse(r.JSON["id"].(string))); got.IsActive {
		t.Fatal("an expired key is listed as active")
	}
	// Unknown and revoked keys keep their own type.
	if p := e.me("rst_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p60IoT2U").Problem(); p.Type != "urn:authapi:problem:invalid-api-key" {
		t.Fatalf("an unknown key's type = %s", p.Type)
	}
}

func TestKeyExpiryRules(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("rules")
	now := e.Clock.Now()
	for _, tc := range []struct {
		name    string
		expires string
		want    int
	}{
		{"in an hour", now.Add(time.Hour).Format(time.RFC3339), 200},
		{"with an offset", now.Add(time.Hour).In(time.FixedZone("X", 5*3600)).Format(time.RFC3339), 200},
		{"just under a year", now.Add(364 * 24 * time.Hour).Format(time.RFC3339), 200},
		{"in the past", now.Add(-time.Minute).Format(time.RFC3339), 422},
		{"now", now.Format(time.RFC3339Nano), 422},
		{"over a year", now.Add(366 * 24 * time.Hour).Format(time.RFC3339), 422},
		{"not a date", "next tuesday", 422},
		{"a leap second", now.Add(48*time.Hour).UTC().Format("2006-01-02") + "T23:59:60Z", 422},
		{"a 31st of a 30-day month", "2027-04-31T10:00:00Z", 422},
		{"a date without time", now.Format("2006-01-02"), 422},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.want == 200, "POST", "/v1/auth/api-keys", fmt.Sprintf(`{"name":"k","expires_at":%q}`, tc.expires), "Authorization", "Bearer "+u.Token)
			if r.Status != tc.want || tc.want == 422 && !slices.Contains(r.Fields(), "expires_at") {
				t.Fatalf("expires_at %q = %d %s, want %d", tc.expires, r.Status, r.Body, tc.want)
			}
		})
	}
	// RFC 3339 (section 5.6) allows a lower-case t and z.
	at := now.Add(time.Hour).UTC().Truncate(time.Second)
	r := e.do(false, "POST", "/v1/auth/api-keys", fmt.Sprintf(`{"name":"k","expires_at":%q}`, strings.ToLower(at.Format(time.RFC3339))), "Authorization", "Bearer "+u.Token)
	if got, _ := time.Parse(time.RFC3339, fmt.Sprint(r.JSON["expires_at"])); r.Status != 200 || !got.Equal(at) {
		t.Fatalf("expires_at with a lower-case t and z = %d %s, want 200 expiring at %v", r.Status, r.Body, at)
	}
	if r := createKey(e, u, `{"name":"forever"}`); r.Status != 200 || r.JSON["expires_at"] != nil {
		t.Fatalf("a key without expires_at = %s, want expires_at null (no default lifetime)", r.Body)
	}

	d := newEnv(t, options{server: func(c *server.Config) { c.KeyDefaultLifetime = 30 * 24 * time.Hour }})
	du := d.MustLogin("defaulted")
	r = createKey(d, du, `{"name":"k"}`)
	got, _ := time.Parse(time.RFC3339, fmt.Sprint(r.JSON["expires_at"]))
	if want := d.Clock.Now().Add(30 * 24 * time.Hour); r.Status != 200 || got.Sub(want).Abs() > time.Second {
		t.Fatalf("with a default lifetime, expires_at = %v, want about %v", r.JSON["expires_at"], want)
	}
}

func TestKeyLastUse(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("user")
	k := e.MustCreateKey(u, "k")
	write := func() {
		t.Helper()
		if err := e.Srv.KeyUses().Write(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// use uses k, which must work.
	use := func() {
		t.Helper()
		if r := e.me(k.RawKey); r.Status != 200 {
			t.Fatalf("GET /v1/me = %d %s, want 200", r.Status, r.Body)
		}
	}
	write()
	if got := e.listed(u, k.ID); got.LastUsedAt != nil {
		t.Fatalf("last_used_at before any use = %v, want null", got.LastUsedAt)
	}
	use()
	write()
	minute := e.Clock.Now().UTC().Truncate(time.Minute)
	if got := e.listed(u, k.ID); got.LastUsedAt == nil || !got.LastUsedAt.Equal(minute) {
		t.Fatalf("last_used_at after a use = %v, want %v", got.LastUsedAt, minute)
	}

	// Within the same minute nothing more is written: clear the column
	// behind the server's back and it stays clear.
	db, err := sql.Open("postgres", e.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE api_keys SET last_used_at = NULL WHERE id = $1`, k.ID); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		use()
	}
	write()
	if got := e.listed(u, k.ID); got.LastUsedAt != nil {
		t.Fatalf("a second write within the minute: last_used_at = %v", got.LastUsedAt)
	}
	// The next minute writes again.
	e.Clock.Add(time.Minute)
	use()
	write()
	if got := e.listed(u, k.ID); got.LastUsedAt == nil || !got.LastUsedAt.Equal(minute.Add(time.Minute)) {
		t.Fatalf("last_used_at a minute later = %v, want %v", got.LastUsedAt, minute.Add(time.Minute))
	}
	// A refused use is no use.
	other := e.MustCreateKey(u, "unused")
	if r := e.do(true, "GET", "/v1/me", "", "X-API-Key", otherLast(other.RawKey)); r.Status != 401 {
		t.Fatalf("GET /v1/me with a malformed key = %d %s, want 401", r.Status, r.Body)
	}
	write()
	if got := e.listed(u, other.ID); got.LastUsedAt != nil {
		t.Fatalf("a malformed key counted as a use of another: %v", got.LastUsedAt)
	}
}

func TestKeyRotation(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("rotator")
	r := createKey(e, u, `{"name":"deploy","scopes":["me:read"]}`)
	oldKey, oldID := r.JSON["raw_key"].(string), r.JSON["id"].(string)

	rot := e.do(true, "POST", "/v1/auth/api-keys/"+oldID+"/rotate", `{"grace_seconds":3600}`, "Authorization", "Bearer "+u.Token)
	if rot.Status != 200 || rot.JSON["name"] != "deploy" || fmt.Sprint(rot.JSON["scopes"]) != "[me:read]" || rot.JSON["raw_key"] == oldKey || rot.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("rotate = %d %s, want a new key with the old name and scopes", rot.Status, rot.Body)
	}
	newKey, newID := rot.JSON["raw_key"].(string), rot.JSON["id"].(string)
	for _, k := range []string{oldKey, newKey} {
		if r := e.me(k); r.Status != 200 {
			t.Fatalf("during grace, a key = %d, want both working", r.Status)
		}
	}
	old := e.listed(u, uuid.MustParse(oldID))
	if want := e.Clock.Now().Add(time.Hour); old.ExpiresAt == nil || old.ExpiresAt.Sub(want).Abs() > time.Second || !old.IsActive {
		t.Fatalf("the old key is listed with end %v, want about %v", old.ExpiresAt, want)
	}

	// Rotating the new key within the grace period: each old key keeps its
	// own end.
	rot2 := e.do(true, "POST", "/v1/auth/api-keys/"+newID+"/rotate", `{"grace_seconds":1800}`, "Authorization", "Bearer "+u.Token)
	if rot2.Status != 200 {
		t.Fatalf("second rotation = %d %s", rot2.Status, rot2.Body)
	}
	if mid := e.listed(u, uuid.MustParse(newID)); mid.ExpiresAt.Sub(e.Clock.Now().Add(30*time.Minute)).Abs() > time.Second {
		t.Fatalf("the middle key ends at %v, want in 30 minutes", mid.ExpiresAt)
	}
	if again := e.listed(u, uuid.MustParse(oldID)); !again.ExpiresAt.Equal(*old.ExpiresAt) {
		t.Fatalf("the first key's end moved from %v to %v", old.ExpiresAt, again.ExpiresAt)
	}

	e.Clock.Add(31 * time.Minute)
	u.Token = e.relogin(u)
	if r := e.me(newKey); r.Status != 401 {
		t.Fatalf("the middle key after its grace = %d, want 401", r.Status)
	}
	if r := e.me(oldKey); r.Status != 200 {
		t.Fatalf("the first key within its grace = %d, want 200", r.Status)
	}
	e.Clock.Add(30 * time.Minute)
	u.Token = e.relogin(u)
	if r := e.me(oldKey); r.Status != 401 || r.Problem().Type != "urn:authapi:problem:api-key-expired" {
		t.Fatalf("the first key after its grace = %d %s, want 401 expired", r.Status, r.Body)
	}
	if r := e.me(rot2.JSON["raw_key"].(string)); r.Status != 200 {
		t.Fatalf("the newest key = %d, want 200", r.Status)
	}
	if r := e.do(true, "POST", "/v1/auth/api-keys/"+oldID+"/rotate", "", "Authorization", "Bearer "+u.Token); r.Status != 404 {
		t.Fatalf("rotating an expired key = %d, want 404", r.Status)
	}
}

// relogin gets u a fresh token after the clock moved past the old one's life.
func (e *env) relogin(u *user) string {
	e.t.Helper()
	r := e.do(true, "POST", "/v1/auth/login", fmt.Sprintf(`{"username":%q,"password":%q}`, u.Username, u.Password))
	if r.Status != 200 {
		e.t.Fatalf("relogin = %d %s", r.Status, r.Body)
	}
	return r.JSON["access_token"].(string)
}

func TestKeyRotationRules(t *testing.T) {
	e := newEnv(t)
	u, mallory := e.MustLogin("owner"), e.MustLogin("mallory")
	k := e.MustCreateKey(u, "k")
	path := "/v1/auth/api-keys/" + k.ID.String() + "/rotate"

	if r := e.do(true, "POST", path, "", "Authorization", "Bearer "+mallory.Token); r.Status != 404 {
		t.Fatalf("rotating another user's key = %d, want 404", r.Status)
	}
	if r := e.me(k.RawKey); r.Status != 200 {
		t.Fatalf("the key after mallory's attempt = %d", r.Status)
	}
	for _, tc := range []struct {
		body, ctype string
		want        int
	}{
		{`{"grace_seconds":-1}`, "application/json", 422},
		{`{"grace_seconds":604801}`, "application/json", 422},
		{`{"grace_seconds":"soon"}`, "application/json", 422},
		{`{"grace_seconds":1.5}`, "application/json", 422},
		{`{"grace_seconds":1e3}`, "application/json", 422},
		{`{"grace_seconds":1000.0}`, "application/json", 422},
		{`{"grace_seconds":`, "application/json", 400},
		{`{"grace_seconds":60}`, "text/plain", 415},
	} {
		r := e.do(false, "POST", path, tc.body, "Content-Type", "", "Content-Type", tc.ctype, "Authorization", "Bearer "+u.Token)
		if r.Status != tc.want {
			t.Errorf("rotate with %s (%s) = %d %s, want %d", tc.body, tc.ctype, r.Status, r.Body, tc.want)
		}
	}
	if r := e.do(false, "POST", "/v1/auth/api-keys/not-a-uuid/rotate", "", "Authorization", "Bearer "+u.Token); r.Status != 422 {
		t.Fatalf("rotating key_id not-a-uuid = %d, want 422", r.Status)
	}
	if r := e.do(true, "POST", path, "", "X-API-Key", k.RawKey); r.Status != 401 {
		t.Fatalf("rotating with an API key = %d, want 401", r.Status)
	}
	// With an empty body the grace is 0: the old key stops at once.
	r := e.do(true, "POST", path, "", "Authorization", "Bearer "+u.Token)
	if r.Status != 200 {
		t.Fatalf("rotate with no body = %d %s", r.Status, r.Body)
	}
	if r := e.me(k.RawKey); r.Status != 401 {
		t.Fatalf("the old key after a rotation without grace = %d, want 401", r.Status)
	}
	revoked := e.MustCreateKey(u, "revoked")
	e.Client.RevokeAPIKeyWithResponse(ctx, revoked.ID, bearer(t, u.Token))
	if r := e.do(true, "POST", "/v1/auth/api-keys/"+revoked.ID.String()+"/rotate", "", "Authorization", "Bearer "+u.Token); r.Status != 404 {
		t.Fatalf("rotating a revoked key = %d, want 404", r.Status)
	}
	if r := e.do(true, "POST", "/v1/auth/api-keys/"+uuid.NewString()+"/rotate", "", "Authorization", "Bearer "+u.Token); r.Status != 404 {
		t.Fatalf("rotating an unknown key = %d, want 404", r.Status)
	}
}

func TestKeyScopes(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("scoper")
	for _, tc := range []struct {
		body string
		me   int // GET /v1/me with the key, or 0 when creation must fail
	}{
		{`{"name":"all"}`, 200},
		{`{"name":"read","scopes":["me:read"]}`, 200},
		{`{"name":"both","scopes":["me:write","me:read"]}`, 200},
		{`{"name":"write","scopes":["me:write"]}`, 403},
		{`{"name":"none","scopes":[]}`, 0},
		{`{"name":"unknown","scopes":["admin"]}`, 0},
		{`{"name":"twice","scopes":["me:read","me:read"]}`, 0},
		{`{"name":"string","scopes":"me:read"}`, 0},
	} {
		r := e.do(tc.me != 0, "POST", "/v1/auth/api-keys", tc.body, "Authorization", "Bearer "+u.Token)
		if tc.me == 0 {
			if r.Status != 422 || !strings.HasPrefix(strings.Join(r.Fields(), ","), "scopes") {
				t.Errorf("create %s = %d %s, want 422 naming scopes", tc.body, r.Status, r.Body)
			}
			if p := r.Problem(); p.Errors != nil && (*p.Errors)[0].Message == "is invalid" {
				t.Errorf("create %s: the message %q says nothing", tc.body, (*p.Errors)[0].Message)
			}
			continue
		}
		if r.Status != 200 {
			t.Fatalf("create %s = %d %s", tc.body, r.Status, r.Body)
		}
		got := e.me(r.JSON["raw_key"].(string))
		if got.Status != tc.me {
			t.Errorf("GET /v1/me with %s = %d %s, want %d", tc.body, got.Status, got.Body, tc.me)
		}
		if tc.me == 403 && (got.Problem().Type != "urn:authapi:problem:insufficient-scope" || !strings.Contains(got.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`)) {
			t.Errorf("the 403 = %s %q, want insufficient-scope", got.Body, got.Header.Get("WWW-Authenticate"))
		}
	}
	resp, _ := e.Client.ListAPIKeysWithResponse(ctx, nil, bearer(t, u.Token))
	for _, k := range *resp.JSON200 {
		if k.Name == "all" && len(k.Scopes) != 2 || k.Name == "read" && (len(k.Scopes) != 1 || k.Scopes[0] != gen.MeRead) {
			t.Errorf("listed %q with scopes %v", k.Name, k.Scopes)
		}
	}
}

// TestConcurrentDuplicateRotationAndRevocation sends the same rotation
// (without grace) and the same revocation many times at once: one rotation
// wins and the others find no working key (404), so one key replaces the
// old one; every revocation succeeds, and the key is revoked once.
func TestConcurrentDuplicateRotationAndRevocation(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("duplicated")
	k := e.MustCreateKey(u, "k")
	const n = 8
	statuses := func(call func() (int, error)) map[int]int {
		got := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				status, err := call()
				if err != nil {
					t.Error(err)
				}
				got[i] = status
			})
		}
		wg.Wait()
		count := map[int]int{}
		for _, s := range got {
			count[s]++
		}
		return count
	}

	rotated := statuses(func() (int, error) {
		r, err := e.Client.RotateAPIKeyWithResponse(ctx, k.ID, gen.RotateAPIKeyJSONRequestBody{}, bearer(t, u.Token))
		if err != nil {
			return 0, err
		}
		return r.StatusCode(), nil
	})
	if rotated[200] != 1 || rotated[404] != n-1 {
		t.Fatalf("%d concurrent rotations of one key: statuses %v, want one 200 and %d 404s", n, rotated, n-1)
	}
	keys, err := e.Client.ListAPIKeysWithResponse(ctx, nil, bearer(t, u.Token))
	if err != nil || keys.JSON200 == nil {
		t.Fatalf("list = %v", err)
	}
	if got := len(*keys.JSON200); got != 2 {
		t.Fatalf("keys after the rotations = %d, want the old one and one new one", got)
	}
	if r := e.me(k.RawKey); r.Status != 401 {
		t.Fatalf("the rotated key without grace = %d, want 401", r.Status)
	}

	next := (*keys.JSON200)[0] // newest first
	revoked := statuses(func() (int, error) {
		r, err := e.Client.RevokeAPIKeyWithResponse(ctx, next.ID, bearer(t, u.Token))
		if err != nil {
			return 0, err
		}
		return r.StatusCode(), nil
	})
	if revoked[204] != n {
		t.Fatalf("%d concurrent revocations of one key: statuses %v, want %d 204s", n, revoked, n)
	}
	first := e.listed(u, next.ID).RevokedAt
	if first == nil {
		t.Fatal("the key is not listed as revoked")
	}
	e.do(true, "DELETE", "/v1/auth/api-keys/"+next.ID.String(), "", "Authorization", "Bearer "+u.Token)
	if again := e.listed(u, next.ID).RevokedAt; again == nil || !again.Equal(*first) {
		t.Fatalf("a later revocation moved revoked_at from %v to %v", first, again)
	}
}

// TestConcurrentRotationsOnAMovingClock: with the server's clock moving,
// as in production, 24 rotations of one key at once (no grace) mint
// exactly one working key, trial after trial. The clock is read once the
// key's row is locked: read before, a rotation judged the key by a time
// earlier than the end another had just given it, and two or three
// succeeded.
func TestConcurrentRotationsOnAMovingClock(t *testing.T) {
	e := newEnv(t, options{server: func(c *server.Config) { c.Now = time.Now }})
	u := e.MustLogin("movingclock")
	const trials, n = 30, 24
	for trial := range trials {
		k := e.MustCreateKey(u, fmt.Sprint("k", trial))
		codes := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				r := e.do(true, "POST", "/v1/auth/api-keys/"+k.ID.String()+"/rotate", "{}", "Authorization", "Bearer "+u.Token)
				codes[i] = r.Status
			})
		}
		wg.Wait()
		ok := 0
		for _, c := range codes {
			switch c {
			case 200:
				ok++
			case 404:
			default:
				t.Fatalf("trial %d: a rotation answered %d", trial, c)
			}
		}
		if ok != 1 {
			t.Fatalf("trial %d: %d of %d concurrent rotations succeeded, want exactly 1", trial, ok, n)
		}
		// Revoke what the trial made, to stay under the active-key cap.
		for _, key := range e.activeKeys(u) {
			e.do(true, "DELETE", "/v1/auth/api-keys/"+key.String(), "", "Authorization", "Bearer "+u.Token)
		}
	}
}

// activeKeys lists the IDs of u's active keys.
func (e *env) activeKeys(u *user) []uuid.UUID {
	e.t.Helper()
	resp, err := e.Client.ListAPIKeysWithResponse(ctx, nil, bearer(e.t, u.Token))
	if err != nil || resp.JSON200 == nil {
		e.t.Fatalf("list = %v", err)
	}
	var out []uuid.UUID
	for _, k := range *resp.JSON200 {
		if k.IsActive {
			out = append(out, k.ID)
		}
	}
	return out
}
