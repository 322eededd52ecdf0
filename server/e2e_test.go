package server_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	openapi_types "github.com/oapi-codegen/runtime/types"

	"authapi/client/gen"
	"authapi/server"
	"authapi/token"
)

var ctx = context.Background()

// TestReferenceFlow walks the seed's reference flow through the generated
// client: register, login, create a key, list, read /v1/me with the key,
// revoke, and the key is refused.
func TestReferenceFlow(t *testing.T) {
	e := newEnv(t)
	var (
		userID, token string
		key           *gen.CreatedAPIKey
	)
	t.Run("register", func(t *testing.T) {
		resp, err := e.Client.RegisterUserWithResponse(ctx, gen.RegisterRequest{
			Username: "hershel", Email: "hershel@example.com", Password: "secureP@ss123", FullName: "Hershel Moshkovitz",
		})
		if err != nil || resp.StatusCode() != 200 {
			t.Fatalf("register = %v %d %s", err, resp.StatusCode(), resp.Body)
		}
		u := resp.JSON200
		if u.Username != "hershel" || u.Email != "hershel@example.com" || u.FullName != "Hershel Moshkovitz" || u.ID == uuid.Nil {
			t.Fatalf("register returned %+v", u)
		}
		if strings.Contains(string(resp.Body), "secureP@ss123") || strings.Contains(string(resp.Body), "argon2") {
			t.Fatalf("register response reveals the password or its hash: %s", resp.Body)
		}
		userID = u.ID.String()
	})
	t.Run("login", func(t *testing.T) {
		resp, err := e.Client.LoginWithResponse(ctx, gen.LoginRequest{Username: "hershel", Password: "secureP@ss123"})
		if err != nil || resp.StatusCode() != 200 {
			t.Fatalf("login = %v %d %s", err, resp.StatusCode(), resp.Body)
		}
		if resp.JSON200.TokenType != "bearer" || resp.JSON200.ExpiresIn != 3600 || strings.Count(resp.JSON200.AccessToken, ".") != 2 {
			t.Fatalf("login returned %+v", resp.JSON200)
		}
		if cc := resp.HTTPResponse.Header.Get("Cache-Control"); cc != "no-store" {
			t.Fatalf("login Cache-Control = %q, want no-store", cc)
		}
		token = resp.JSON200.AccessToken
	})
	t.Run("create key", func(t *testing.T) {
		resp, err := e.Client.CreateAPIKeyWithResponse(ctx, gen.CreateAPIKeyRequest{Name: "my-app-key"}, bearer(t, token))
		if err != nil || resp.StatusCode() != 200 {
			t.Fatalf("create key = %v %d %s", err, resp.StatusCode(), resp.Body)
		}
		key = resp.JSON200
		if !regexp.MustCompile(`^rst_[A-Za-z0-9]{38}$`).MatchString(key.RawKey) || key.Prefix != key.RawKey[:8] ||
			key.Name != "my-app-key" || !key.IsActive || time.Since(key.CreatedAt) > time.Minute {
			t.Fatalf("create key returned %+v", key)
		}
		if cc := resp.HTTPResponse.Header.Get("Cache-Control"); cc != "no-store" {
			t.Fatalf("create key Cache-Control = %q, want no-store", cc)
		}
	})
	t.Run("list", func(t *testing.T) {
		resp, err := e.Client.ListAPIKeysWithResponse(ctx, nil, bearer(t, token))
		if err != nil || resp.StatusCode() != 200 {
			t.Fatalf("list = %v %d %s", err, resp.StatusCode(), resp.Body)
		}
		keys := *resp.JSON200
		if len(keys) != 1 || keys[0].ID != key.ID || keys[0].Prefix != key.Prefix || !keys[0].IsActive {
			t.Fatalf("list returned %+v", keys)
		}
		if strings.Contains(string(resp.Body), key.RawKey) || strings.Contains(string(resp.Body), "raw_key") {
			t.Fatalf("the listing shows the raw key: %s", resp.Body)
		}
	})
	t.Run("me", func(t *testing.T) {
		resp, err := e.Client.GetCurrentUserWithResponse(ctx, apiKey(t, key.RawKey))
		if err != nil || resp.StatusCode() != 200 {
			t.Fatalf("GET /v1/me = %v %d %s", err, resp.StatusCode(), resp.Body)
		}
		if resp.JSON200.ID.String() != userID || resp.JSON200.Username != "hershel" {
			t.Fatalf("GET /v1/me returned %+v", resp.JSON200)
		}
	})
	t.Run("revoke", func(t *testing.T) {
		resp, err := e.Client.RevokeAPIKeyWithResponse(ctx, key.ID, bearer(t, token))
		if err != nil || resp.StatusCode() != 204 || len(resp.Body) != 0 {
			t.Fatalf("revoke = %v %d %q", err, resp.StatusCode(), resp.Body)
		}
	})
	t.Run("revoked key refused", func(t *testing.T) {
		resp, err := e.Client.GetCurrentUserWithResponse(ctx, apiKey(t, key.RawKey))
		if err != nil || resp.StatusCode() != 401 {
			t.Fatalf("GET /v1/me with a revoked key = %v %d %s", err, resp.StatusCode(), resp.Body)
		}
	})
	t.Run("listing keeps the revoked key", func(t *testing.T) {
		resp, _ := e.Client.ListAPIKeysWithResponse(ctx, nil, bearer(t, token))
		keys := *resp.JSON200
		if len(keys) != 1 || keys[0].IsActive || keys[0].RevokedAt == nil {
			t.Fatalf("list after revoke = %+v, want the key inactive with its revocation time", keys)
		}
	})
	t.Run("revoke again", func(t *testing.T) {
		resp, err := e.Client.RevokeAPIKeyWithResponse(ctx, key.ID, bearer(t, token))
		if err != nil || resp.StatusCode() != 204 {
			t.Fatalf("revoking twice = %v %d, want 204", err, resp.StatusCode())
		}
	})
}

func TestMalformedJSON(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("malformed")
	for _, path := range []string{"/v1/auth/register", "/v1/auth/login", "/v1/auth/api-keys"} {
		for _, body := range []string{`{"username":`, `{"a":1}}`, `{} {}`, `nope`, `{'a':1}`, "\ufeff{}"} {
			r := e.do(false, "POST", path, body, "Authorization", "Bearer "+u.Token)
			if r.Status != 400 || r.Problem().Type != "urn:authapi:problem:malformed-json" {
				t.Errorf("POST %s %q = %d %s, want 400 malformed-json", path, body, r.Status, r.Body)
			}
		}
		r := e.do(false, "POST", path, "", "Content-Type", "application/json", "Authorization", "Bearer "+u.Token)
		if r.Status != 400 {
			t.Errorf("POST %s with an empty JSON body = %d %s, want 400", path, r.Status, r.Body)
		}
	}
}

func TestUnsupportedMediaType(t *testing.T) {
	e := newEnv(t)
	body := `{"username":"media","email":"media@example.com","password":"secureP@ss123","full_name":"M"}`
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1", "application/jsonx", "multipart/form-data; boundary=x", "nonsense"} {
		r := e.do(false, "POST", "/v1/auth/register", body, "Content-Type", "", "Content-Type", ct)
		if r.Status != 415 {
			t.Errorf("Content-Type %q = %d %s, want 415", ct, r.Status, r.Body)
		}
	}
	r := e.do(false, "POST", "/v1/auth/register", body, "Content-Type", "")
	if r.Status != 415 {
		t.Errorf("no Content-Type = %d %s, want 415", r.Status, r.Body)
	}
	for _, ct := range []string{"application/json; charset=utf-8", "Application/JSON", "application/json;charset=UTF-8"} {
		r := e.do(true, "POST", "/v1/auth/register", strings.ReplaceAll(body, "media", "m"+strconv.Itoa(len(ct))), "Content-Type", "", "Content-Type", ct)
		if r.Status != 200 {
			t.Errorf("Content-Type %q = %d %s, want 200", ct, r.Status, r.Body)
		}
	}
}

func TestBodyTooLarge(t *testing.T) {
	e := newEnv(t)
	big := `{"username":"big","email":"big@example.com","password":"secureP@ss123","full_name":"` + strings.Repeat("a", 70000) + `"}`
	r := e.do(false, "POST", "/v1/auth/register", big)
	if r.Status != 413 || r.Problem().Type != "urn:authapi:problem:body-too-large" {
		t.Fatalf("a 70 KB body = %d %s, want 413", r.Status, r.Body)
	}
	// Without a Content-Length (chunked), the limit still holds.
	req, _ := http.NewRequestWithContext(offSpec(ctx), "POST", e.URL+"/v1/auth/login", strings.NewReader(big))
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.HTTP.Do(req)
	if err != nil || resp.StatusCode != 413 {
		t.Fatalf("a chunked 70 KB body = %v %v, want 413", err, resp)
	}
	// Just under the limit is judged on its merits: 422, the name is too long.
	under := `{"username":"under","email":"under@example.com","password":"secureP@ss123","full_name":"` + strings.Repeat("a", 60000) + `"}`
	if r := e.do(false, "POST", "/v1/auth/register", under); r.Status != 422 {
		t.Fatalf("a 60 KB body = %d, want 422", r.Status)
	}
}

func TestUnknownRouteAndWrongMethod(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/", "/v1", "/v1/auth", "/v1/auth/register/", "/v2/me", "/v1/me/../../etc/passwd", "/v1/auth/api-keys/" + uuid.NewString() + "/x"} {
		if r := e.do(false, "GET", path, ""); r.Status != 404 {
			t.Errorf("GET %s = %d %s, want 404", path, r.Status, r.Body)
		}
	}
	for _, tc := range []struct{ method, path, allow string }{
		{"GET", "/v1/auth/register", "POST"},
		{"PUT", "/v1/auth/login", "POST"},
		{"DELETE", "/v1/auth/api-keys", "GET, POST"},
		{"PUT", "/v1/me", "GET, PATCH"},
		{"GET", "/v1/auth/password", "POST"},
		{"POST", "/v1/auth/account", "DELETE"},
		{"GET", "/v1/auth/api-keys/" + uuid.NewString(), "DELETE"},
	} {
		r := e.do(false, tc.method, tc.path, "")
		allow := r.Header.Get("Allow")
		if r.Status != 405 || r.Problem().Type != "urn:authapi:problem:method-not-allowed" {
			t.Errorf("%s %s = %d %s, want 405", tc.method, tc.path, r.Status, r.Body)
		}
		for _, m := range strings.Split(tc.allow, ", ") {
			if !strings.Contains(allow, m) {
				t.Errorf("%s %s: Allow = %q, want it to list %s", tc.method, tc.path, allow, m)
			}
		}
	}
}

func TestRegistrationConflicts(t *testing.T) {
	e := newEnv(t)
	e.MustRegister("taken")
	for _, tc := range []struct {
		username, email, detail string
		fields                  []string
	}{
		{"TAKEN", "new1@example.com", "username", []string{"username"}},
		{"fresh", "Taken@Example.COM", "email", []string{"email"}},
		{"Taken", "TAKEN@example.com", "username and the email", []string{"email", "username"}},
	} {
		r := e.do(true, "POST", "/v1/auth/register", fmt.Sprintf(`{"username":%q,"email":%q,"password":"secureP@ss123","full_name":"X"}`, tc.username, tc.email))
		p := r.Problem()
		if r.Status != 409 || !strings.Contains(p.Detail, tc.detail) || !slices.Equal(sorted(r.Fields()), tc.fields) {
			t.Errorf("register %q %q = %d %s, want 409 naming %v", tc.username, tc.email, r.Status, r.Body, tc.fields)
		}
	}
}

func sorted(s []string) []string { slices.Sort(s); return s }

func TestConcurrentDuplicateRegistration(t *testing.T) {
	e := newEnv(t)
	const n = 12
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.Client.RegisterUserWithResponse(ctx, gen.RegisterRequest{
				Username: "same", Email: openapi_types.Email(fmt.Sprintf("same%d@example.com", i)), Password: "secureP@ss123", FullName: "Same",
			})
			if err != nil {
				t.Error(err)
				return
			}
			statuses[i] = resp.StatusCode()
		}()
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[200] != 1 || count[409] != n-1 {
		t.Fatalf("%d concurrent registrations of one username: statuses %v, want one 200 and %d 409s", n, count, n-1)
	}
}

func TestLogin(t *testing.T) {
	e := newEnv(t)
	u := e.MustRegister("Logger")
	for _, name := range []string{"Logger", "logger", "LOGGER"} {
		if r := e.do(true, "POST", "/v1/auth/login", fmt.Sprintf(`{"username":%q,"password":%q}`, name, u.Password)); r.Status != 200 {
			t.Errorf("login as %q = %d %s, want 200 (usernames match without regard to case)", name, r.Status, r.Body)
		}
	}
	wrong := e.do(true, "POST", "/v1/auth/login", `{"username":"logger","password":"wrong password"}`)
	unknown := e.do(true, "POST", "/v1/auth/login", `{"username":"nobody","password":"wrong password"}`)
	if wrong.Status != 401 || unknown.Status != 401 {
		t.Fatalf("wrong password = %d, unknown user = %d, want 401 both", wrong.Status, unknown.Status)
	}
	strip := func(r *response) string {
		delete(r.JSON, "request_id") // these two name the request, not the outcome
		delete(r.JSON, "instance")
		b := fmt.Sprint(r.JSON)
		return b
	}
	if strip(wrong) != strip(unknown) {
		t.Fatalf("wrong password and unknown user differ:\n%s\n%s", wrong.Body, unknown.Body)
	}
	if r := e.do(true, "POST", "/v1/auth/login", fmt.Sprintf(`{"username":"logger","password":%q}`, strings.ToUpper(u.Password))); r.Status != 401 {
		t.Fatalf("login with the password in upper case = %d, want 401", r.Status)
	}
}

func TestLoginThrottling(t *testing.T) {
	e := newEnv(t, trustLoopbackProxy)
	u := e.MustRegister("victim")
	attempt := func(from, password string) *response {
		return e.do(true, "POST", "/v1/auth/login", fmt.Sprintf(`{"username":"VICTIM","password":%q}`, password), "X-Forwarded-For", from)
	}
	for i := 1; i <= 10; i++ {
		if r := attempt("203.0.113.5", "wrong password"); r.Status != 401 {
			t.Fatalf("failure %d = %d, want 401", i, r.Status)
		}
	}
	r := attempt("203.0.113.5", "wrong password")
	retry, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if r.Status != 429 || err != nil || retry < 1 || retry > 15*60 {
		t.Fatalf("11th failure = %d, Retry-After %q, want 429 with whole seconds up to 900", r.Status, r.Header.Get("Retry-After"))
	}
	if r := attempt("203.0.113.5", u.Password); r.Status != 429 {
		t.Fatalf("the right password after 10 failures = %d, want 429 until the window passes", r.Status)
	}
	if r := attempt("198.51.100.20", u.Password); r.Status != 200 {
		t.Fatalf("the real user from another address = %d %s, want 200: one client's failures never lock out another", r.Status, r.Body)
	}
	// Without a trusted proxy, X-Forwarded-For is ignored: all these come
	// from one TCP peer.
	e2 := newEnv(t)
	e2.MustRegister("spoof")
	for i := 0; i < 10; i++ {
		e2.do(true, "POST", "/v1/auth/login", `{"username":"spoof","password":"wrong password"}`, "X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i))
	}
	if r := e2.do(true, "POST", "/v1/auth/login", `{"username":"spoof","password":"wrong password"}`, "X-Forwarded-For", "192.0.2.99"); r.Status != 429 {
		t.Fatalf("rotating X-Forwarded-For without a trusted proxy = %d, want 429", r.Status)
	}
}

func TestLoginThrottlingOff(t *testing.T) {
	e := newEnv(t, options{server: func(c *server.Config) { c.LoginMaxFailures = 0 }})
	e.MustRegister("free")
	for i := 0; i < 15; i++ {
		if r := e.do(true, "POST", "/v1/auth/login", `{"username":"free","password":"wrong password"}`); r.Status != 401 {
			t.Fatalf("failure %d with throttling off = %d, want 401", i+1, r.Status)
		}
	}
}

// TestBearerCredentials covers every way a bearer credential is refused.
func TestBearerCredentials(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("bearer")
	key := e.MustCreateKey(u, "k")
	other := newEnv(t, options{token: func(c *token.Config) { c.Secret = []byte("another secret, also 32 bytes!!!") }}).MustLogin("bearer")

	for _, tc := range []struct {
		name, header string
		sent         bool
	}{
		{"no header", "", false},
		{"empty", "Bearer ", true},
		{"wrong scheme", "Basic " + u.Token, true},
		{"no scheme", u.Token, true},
		{"garbage", "Bearer not-a-token", true},
		{"an API key", "Bearer " + key.RawKey, true},
		{"signed by another server", "Bearer " + other.Token, true},
		{"tampered", "Bearer " + u.Token[:len(u.Token)-3] + "abc", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(true, "GET", "/v1/auth/api-keys", "", "Authorization", tc.header)
			challenge := r.Header.Get("WWW-Authenticate")
			if r.Status != 401 || !strings.HasPrefix(challenge, "Bearer ") {
				t.Fatalf("%s = %d, WWW-Authenticate %q, want 401 with a Bearer challenge", tc.name, r.Status, challenge)
			}
			if got := strings.Contains(challenge, `error="invalid_token"`); got != tc.sent {
				t.Fatalf("%s: WWW-Authenticate %q, invalid_token present = %v, want %v", tc.name, challenge, got, tc.sent)
			}
		})
	}
	t.Run("scheme is case-insensitive", func(t *testing.T) {
		for _, scheme := range []string{"bearer", "BEARER", "BeArEr"} {
			if r := e.do(true, "GET", "/v1/auth/api-keys", "", "Authorization", scheme+" "+u.Token); r.Status != 200 {
				t.Fatalf("%s scheme = %d, want 200", scheme, r.Status)
			}
		}
	})
	t.Run("expired", func(t *testing.T) {
		e.Clock.Add(time.Hour + time.Second)
		defer e.Clock.Add(-time.Hour - time.Second)
		r := e.do(true, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+u.Token)
		if r.Status != 401 || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) || !strings.Contains(r.Problem().Detail, "expired") {
			t.Fatalf("expired token = %d %s %s", r.Status, r.Header.Get("WWW-Authenticate"), r.Body)
		}
	})
	t.Run("user deleted", func(t *testing.T) {
		gone := e.MustLogin("gone")
		db, err := sql.Open("postgres", e.DBURL)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`DELETE FROM users WHERE id = $1`, gone.ID); err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/v1/auth/api-keys"} {
			if r := e.do(true, "GET", path, "", "Authorization", "Bearer "+gone.Token); r.Status != 401 {
				t.Fatalf("GET %s with a deleted user's token = %d, want 401", path, r.Status)
			}
		}
		if r := e.do(true, "POST", "/v1/auth/api-keys", `{"name":"x"}`, "Authorization", "Bearer "+gone.Token); r.Status != 401 {
			t.Fatalf("creating a key for a deleted user = %d, want 401", r.Status)
		}
	})
}

func TestAPIKeyCredentials(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("keyholder")
	key := e.MustCreateKey(u, "k")
	flipped := key.RawKey[:10] + map[bool]string{true: "B", false: "A"}[key.RawKey[10] == 'A'] + key.RawKey[11:]
	for _, tc := range []struct {
		name   string
		header []string
	}{
		{"none", nil},
		{"empty", []string{"X-API-Key", ""}},
		{"a JWT", []string{"X-API-Key", u.Token}},
		{"one character changed", []string{"X-API-Key", flipped}},
		{"well-formed but unknown", []string{"X-API-Key", "rst_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p60IoT2U"}},
		{"as a bearer token", []string{"Authorization", "Bearer " + key.RawKey}},
		{"lower-cased", []string{"X-API-Key", strings.ToLower(key.RawKey)}},
		{"two keys", []string{"X-API-Key", key.RawKey, "X-API-Key", key.RawKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(true, "GET", "/v1/me", "", tc.header...)
			if r.Status != 401 || r.Header.Get("WWW-Authenticate") == "" || strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("GET /v1/me with %s = %d %q %s, want 401 with an API key challenge", tc.name, r.Status, r.Header.Get("WWW-Authenticate"), r.Body)
			}
		})
	}
	t.Run("X-API-Key name is case-insensitive", func(t *testing.T) {
		if r := e.do(true, "GET", "/v1/me", "", "x-api-key", key.RawKey); r.Status != 200 {
			t.Fatalf("lower-case header name = %d, want 200", r.Status)
		}
	})
}

// TestCredentialSeparation: an API key never manages keys, and a JWT never
// reads /v1/me.
func TestCredentialSeparation(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("separate")
	key := e.MustCreateKey(u, "k")
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/v1/auth/api-keys", ""},
		{"POST", "/v1/auth/api-keys", `{"name":"minted by a key"}`},
		{"DELETE", "/v1/auth/api-keys/" + key.ID.String(), ""},
	} {
		if r := e.do(true, tc.method, tc.path, tc.body, "X-API-Key", key.RawKey); r.Status != 401 {
			t.Errorf("%s %s with an API key = %d, want 401", tc.method, tc.path, r.Status)
		}
	}
	if r := e.do(true, "GET", "/v1/me", "", "Authorization", "Bearer "+u.Token); r.Status != 401 {
		t.Errorf("GET /v1/me with a JWT = %d, want 401", r.Status)
	}
	// Both sent: each endpoint uses its own and ignores the other.
	if r := e.do(true, "GET", "/v1/me", "", "Authorization", "Bearer "+u.Token, "X-API-Key", key.RawKey); r.Status != 200 {
		t.Errorf("GET /v1/me with both = %d, want 200", r.Status)
	}
	resp, _ := e.Client.ListAPIKeysWithResponse(ctx, nil, bearer(t, u.Token))
	if len(*resp.JSON200) != 1 {
		t.Errorf("the API key minted or revoked keys: listing %s", resp.Body)
	}
}

func TestForeignAndUnknownKeyIDs(t *testing.T) {
	e := newEnv(t)
	alice, mallory := e.MustLogin("alice"), e.MustLogin("mallory")
	key := e.MustCreateKey(alice, "alices")
	for _, id := range []string{key.ID.String(), uuid.NewString(), "b2c3d4e5-6789-abcd-ef01-23456789abcd", strings.ToUpper(uuid.NewString())} {
		r := e.do(true, "DELETE", "/v1/auth/api-keys/"+id, "", "Authorization", "Bearer "+mallory.Token)
		if r.Status != 404 {
			t.Errorf("mallory revoking %s = %d %s, want 404", id, r.Status, r.Body)
		}
	}
	if resp, _ := e.Client.GetCurrentUserWithResponse(ctx, apiKey(t, key.RawKey)); resp.StatusCode() != 200 {
		t.Fatalf("alice's key after mallory's attempts = %d, want it still working", resp.StatusCode())
	}
	resp, _ := e.Client.ListAPIKeysWithResponse(ctx, nil, bearer(t, mallory.Token))
	if len(*resp.JSON200) != 0 {
		t.Fatalf("mallory's listing shows %s", resp.Body)
	}
	for _, id := range []string{"not-a-uuid", "123", uuid.NewString() + "0", "{" + uuid.NewString() + "}", strings.ReplaceAll(uuid.NewString(), "-", "")} {
		r := e.do(false, "DELETE", "/v1/auth/api-keys/"+id, "", "Authorization", "Bearer "+alice.Token)
		if r.Status != 422 || !slices.Equal(uniq(r.Fields()), []string{"key_id"}) {
			t.Errorf("DELETE with key_id %q = %d %s, want 422 naming key_id", id, r.Status, r.Body)
		}
	}
}

func TestListingOrderAndScope(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("lister")
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, e.MustCreateKey(u, fmt.Sprintf("key %d", i)).ID.String())
	}
	e.Client.RevokeAPIKeyWithResponse(ctx, uuid.MustParse(ids[2]), bearer(t, u.Token))
	e.MustCreateKey(e.MustLogin("someone"), "theirs")
	resp, _ := e.Client.ListAPIKeysWithResponse(ctx, nil, bearer(t, u.Token))
	keys := *resp.JSON200
	if len(keys) != 5 {
		t.Fatalf("listing has %d keys, want 5", len(keys))
	}
	for i, k := range keys {
		if want := ids[4-i]; k.ID.String() != want {
			t.Fatalf("listing[%d] = %s, want %s (newest first)", i, k.ID, want)
		}
		if k.IsActive != (k.ID.String() != ids[2]) {
			t.Fatalf("listing[%d].is_active = %v", i, k.IsActive)
		}
	}
}

func TestActiveKeyCap(t *testing.T) {
	e := newEnv(t, options{server: func(c *server.Config) { c.MaxActiveKeys = 2 }})
	u := e.MustLogin("capped")
	first := e.MustCreateKey(u, "1")
	e.MustCreateKey(u, "2")
	r := e.do(true, "POST", "/v1/auth/api-keys", `{"name":"3"}`, "Authorization", "Bearer "+u.Token)
	if r.Status != 409 || !strings.Contains(r.Problem().Detail, "2 active API keys") {
		t.Fatalf("third key with a cap of 2 = %d %s, want 409 saying so", r.Status, r.Body)
	}
	e.Client.RevokeAPIKeyWithResponse(ctx, first.ID, bearer(t, u.Token))
	e.MustCreateKey(u, "3")
}

func TestHealthAndSpec(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ path, ctype, contains string }{
		{"/healthz", "application/json", `"ok"`},
		{"/readyz", "application/json", `"ready"`},
		{"/openapi.yaml", "application/yaml", "openapi: 3.0.3"},
		{"/openapi.json", "application/json", `"openapi":"3.0.3"`},
	} {
		r := e.do(false, "GET", tc.path, "")
		if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), tc.ctype) || !strings.Contains(string(r.Body), tc.contains) {
			t.Errorf("GET %s = %d %q, want 200 %s containing %s", tc.path, r.Status, r.Header.Get("Content-Type"), tc.ctype, tc.contains)
		}
	}
}

func TestCommonHeaders(t *testing.T) {
	e := newEnv(t)
	r := e.do(false, "GET", "/nope", "", "X-Request-ID", "trace-123")
	if r.Header.Get("X-Request-ID") != "trace-123" || r.Problem().RequestID == nil || *r.Problem().RequestID != "trace-123" {
		t.Errorf("a well-formed X-Request-ID is not echoed: %q %s", r.Header.Get("X-Request-ID"), r.Body)
	}
	r = e.do(false, "GET", "/nope", "", "X-Request-ID", "bad id\twith\"quotes")
	if id := r.Header.Get("X-Request-ID"); id == "" || strings.ContainsAny(id, " \t\"") {
		t.Errorf("a malformed X-Request-ID was kept: %q", id)
	}
	for _, h := range []struct{ name, want string }{{"X-Content-Type-Options", "nosniff"}, {"Cache-Control", "no-store"}} {
		if got := r.Header.Get(h.name); got != h.want {
			t.Errorf("%s = %q, want %q", h.name, got, h.want)
		}
	}
}
