//go:build multi

// These tests run several authapi processes on one PostgreSQL, as
// operators scale it out: no sticky routing, so any instance must honour
// what another did, at once or within the contract's 100 ms.
//
// They run alone (make test-multi, with the build tag multi) rather than in
// make test, whose other packages would share the two CPUs with the three
// instances while they time revocations against the 100 ms.
package multi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"authapi/internal/authproc"
	"authapi/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// instance is one authapi process.
type instance struct{ *authproc.Process }

// MustStartCluster builds authapi and starts n processes on the database
// at dbURL, sharing their secrets, each on a free port; env (KEY=VALUE)
// adds settings. They stop gracefully when the test ends.
func MustStartCluster(t *testing.T, n int, dbURL string, env ...string) []*instance {
	t.Helper()
	bin, err := authproc.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{
		"AUTH_ADDR":              "127.0.0.1:0",
		"AUTH_DATABASE_URL":      dbURL,
		"AUTH_JWT_SECRET":        "0123456789abcdef0123456789abcdef",
		"AUTH_API_KEY_PEPPER":    "pepper pepper pepper pepper 32b!",
		"AUTH_ARGON2_MEMORY_KIB": "64",
		"AUTH_ARGON2_TIME":       "1",
		// The tests are one client polling each instance until a
		// credential is refused: hundreds of failed checks a minute from
		// one address, which the per-client limits would rightly cut off.
		// Those limits are each instance's own and tested elsewhere
		// (authproc.ClientLimitsOff, below).
	}
	maps.Copy(settings, authproc.ClientLimitsOff)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		settings[k] = v
	}
	var cluster []*instance
	for range n {
		in := &instance{authproc.MustStart(t, bin, settings)}
		t.Cleanup(func() { in.Stop(30 * time.Second) }) // before the kill authproc registered
		cluster = append(cluster, in)
	}
	// Every instance uses its credential cache once it hears the database.
	for i, in := range cluster {
		for deadline := time.Now().Add(15 * time.Second); in.metric(t, "authapi_credential_cache_listening", "") != 1; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("instance %d's credential cache is not listening", i)
			}
		}
	}
	return cluster
}

var client = &http.Client{Timeout: 10 * time.Second}

// do sends a request and returns its status and decoded JSON body. It
// fails the test at once on an error, so it must not be called from a
// goroutine other than the test's: use try there.
func (in *instance) do(t *testing.T, method, path, body string, header ...string) (int, map[string]any) {
	t.Helper()
	code, m, err := in.try(method, path, body, header...)
	if err != nil {
		t.Fatal(err)
	}
	return code, m
}

// try sends a request and returns its status and decoded JSON body (nil
// when the body is not a JSON object), or an error if it got no answer.
func (in *instance) try(method, path, body string, header ...string) (int, map[string]any, error) {
	req, err := authproc.NewRequest(context.Background(), method, in.URL+path, body, header...)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m, nil
}

// mustCacheKey uses the key raw through in, checking that it works, until
// the instance's cache answers a use: then the key is cached there.
func mustCacheKey(t *testing.T, in *instance, raw string) {
	t.Helper()
	for range 20 {
		hits := in.metric(t, "authapi_api_key_verifications_total", `result="hit"`)
		if code, body := in.do(t, "GET", "/v1/me", "", "X-API-Key", raw); code != 200 {
			t.Fatalf("GET /v1/me through %s = %d %v, want 200", in.URL, code, body)
		}
		if in.metric(t, "authapi_api_key_verifications_total", `result="hit"`) > hits {
			return
		}
		// A fill is dropped when a change is heard meanwhile: use it again.
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no use of the key through %s was answered from its cache", in.URL)
}

// metric returns one sample of the instance's /metrics, or -1.
func (in *instance) metric(t *testing.T, name, labels string) float64 {
	t.Helper()
	v, err := in.Metric(name, labels)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// MustRegister registers name through in and returns its password.
func MustRegister(t *testing.T, in *instance, name string) string {
	t.Helper()
	password := "secureP@ss123-" + name
	if code, body := in.do(t, "POST", "/v1/auth/register", `{"username":"`+name+`","email":"`+name+`@example.com","password":"`+password+`","full_name":"N"}`); code != 200 {
		t.Fatalf("register %s = %d %v", name, code, body)
	}
	return password
}

// MustLogin logs name in through in and returns the token.
func MustLogin(t *testing.T, in *instance, name, password string) string {
	t.Helper()
	code, body := in.do(t, "POST", "/v1/auth/login", `{"username":"`+name+`","password":"`+password+`"}`)
	if code != 200 {
		t.Fatalf("login %s = %d %v", name, code, body)
	}
	return body["access_token"].(string)
}

// MustCreateKey creates a key through in and returns its raw key and ID.
func MustCreateKey(t *testing.T, in *instance, token string) (raw, id string) {
	t.Helper()
	code, body := in.do(t, "POST", "/v1/auth/api-keys", `{"name":"k"}`, "Authorization", "Bearer "+token)
	if code != 200 {
		t.Fatalf("create key = %d %v", code, body)
	}
	return body["raw_key"].(string), body["id"].(string)
}

func TestThreeInstances(t *testing.T) {
	const maxFailures = 3
	c := MustStartCluster(t, 3, storetest.NewURL(t), "AUTH_LOGIN_MAX_FAILURES="+strconv.Itoa(maxFailures))

	t.Run("registered through one, logged in through another", func(t *testing.T) {
		password := MustRegister(t, c[0], "roamer")
		token := MustLogin(t, c[1], "roamer", password)
		raw, _ := MustCreateKey(t, c[2], token)
		for i, in := range c {
			if code, body := in.do(t, "GET", "/v1/me", "", "X-API-Key", raw); code != 200 || body["username"] != "roamer" {
				t.Fatalf("GET /v1/me through instance %d = %d %v", i, code, body)
			}
			if code, _ := in.do(t, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+token); code != 200 {
				t.Fatalf("GET /v1/auth/api-keys through instance %d = %d", i, code)
			}
		}
		if code, _ := c[2].do(t, "POST", "/v1/auth/register", `{"username":"ROAMER","email":"other@example.com","password":"secureP@ss123","full_name":"N"}`); code != 409 {
			t.Fatalf("registering the same name through another instance = %d, want 409", code)
		}
	})

	t.Run("login throttling counts are shared", func(t *testing.T) {
		password := MustRegister(t, c[0], "target")
		for i := range maxFailures {
			if code, _ := c[i%3].do(t, "POST", "/v1/auth/login", `{"username":"target","password":"a wrong guess"}`); code != 401 {
				t.Fatalf("failure %d through instance %d = %d, want 401", i+1, i%3, code)
			}
		}
		for i, in := range c {
			if code, _ := in.do(t, "POST", "/v1/auth/login", `{"username":"target","password":"`+password+`"}`); code != 429 {
				t.Fatalf("login through instance %d after %d failures spread over the instances = %d, want 429", i, maxFailures, code)
			}
		}
	})

	t.Run("a listing through any instance shows a change once it is answered", func(t *testing.T) {
		const rounds = 60
		token := MustLogin(t, c[2], "lister", MustRegister(t, c[0], "lister"))
		// listed returns whether the key with id is listed through in,
		// and whether as active.
		listed := func(in *instance, id string) (found, active bool) {
			t.Helper()
			req, _ := http.NewRequest("GET", in.URL+"/v1/auth/api-keys", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var keys []struct {
				ID       string `json:"id"`
				IsActive bool   `json:"is_active"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&keys); err != nil || resp.StatusCode != 200 {
				t.Fatalf("list = %d %v", resp.StatusCode, err)
			}
			for _, k := range keys {
				if k.ID == id {
					return true, k.IsActive
				}
			}
			return false, false
		}
		for n := range rounds {
			if t.Failed() {
				break
			}
			writer := c[n%3]
			for i, in := range c { // every instance has the listing cached
				listed(in, "")
				// The next listing comes from the cache; a fill is
				// dropped when a change is heard meanwhile (such as the
				// last round's), so list again until one does.
				fromCache := false
				for try := 0; try < 100 && !fromCache; try++ {
					before := in.metric(t, "authapi_key_listings_total", `source="cache"`)
					listed(in, "")
					switch d := in.metric(t, "authapi_key_listings_total", `source="cache"`) - before; d {
					case 1:
						fromCache = true
					case 0:
						time.Sleep(time.Millisecond)
					default:
						t.Fatalf("round %d: one listing through instance %d counted %v listings served from the cache, want 0 or 1", n, i, d)
					}
				}
				if !fromCache {
					t.Fatalf("round %d: no listing through instance %d came from its cache", n, i)
				}
			}
			_, id := MustCreateKey(t, writer, token)
			for i, in := range c {
				if found, active := listed(in, id); !found || !active {
					t.Fatalf("round %d: a key created through instance %d is not listed as active through instance %d right after", n, n%3, i)
				}
			}
			if code, _ := writer.do(t, "DELETE", "/v1/auth/api-keys/"+id, "", "Authorization", "Bearer "+token); code != 204 {
				t.Fatalf("revoke = %d", code)
			}
			for i, in := range c {
				if _, active := listed(in, id); active {
					t.Fatalf("round %d: a key revoked through instance %d is listed as active through instance %d right after", n, n%3, i)
				}
			}
		}
	})

	t.Run("a revoked key is refused by every instance within 100 ms", func(t *testing.T) {
		const revocations = 100
		token := MustLogin(t, c[1], "revoker", MustRegister(t, c[0], "revoker"))
		hitsBefore := make([]float64, len(c))
		for i, in := range c {
			hitsBefore[i] = in.metric(t, "authapi_api_key_verifications_total", `result="hit"`)
		}
		var delays []time.Duration
		for n := range revocations {
			if t.Failed() {
				break
			}
			raw, id := MustCreateKey(t, c[n%3], token)
			// Every instance verifies the key twice: the second answer
			// comes from its cache.
			for i, in := range c {
				for range 2 {
					if code, _ := in.do(t, "GET", "/v1/me", "", "X-API-Key", raw); code != 200 {
						t.Fatalf("key %d through instance %d = %d, want 200", n, i, code)
					}
				}
			}
			revoker := c[n%3]
			if code, _ := revoker.do(t, "DELETE", "/v1/auth/api-keys/"+id, "", "Authorization", "Bearer "+token); code != 204 {
				t.Fatalf("revoke = %d", code)
			}
			revoked := time.Now()
			if code, _ := revoker.do(t, "GET", "/v1/me", "", "X-API-Key", raw); code != 401 {
				t.Fatalf("revocation %d: the revoking instance's very next request with the key = %d, want 401", n, code)
			}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for i, in := range c {
				if in == revoker {
					continue
				}
				wg.Go(func() {
					for {
						code, _, err := in.try("GET", "/v1/me", "", "X-API-Key", raw)
						if err != nil {
							t.Errorf("revocation %d: instance %d: %v", n, i, err)
							return
						}
						took := time.Since(revoked)
						if code == 401 {
							mu.Lock()
							delays = append(delays, took)
							mu.Unlock()
							return
						}
						if code != 200 || took > 5*time.Second {
							t.Errorf("revocation %d: instance %d answers %d %v after the revocation", n, i, code, took)
							return
						}
					}
				})
			}
			wg.Wait()
		}
		for i, in := range c {
			if hits := in.metric(t, "authapi_api_key_verifications_total", `result="hit"`) - hitsBefore[i]; hits < revocations {
				t.Errorf("instance %d answered %v key checks from its cache, want at least %d: the test did not exercise the cache", i, hits, revocations)
			}
		}
		slices.Sort(delays)
		if len(delays) == 0 {
			t.Fatal("no delays measured")
		}
		median, p90, worst := delays[len(delays)/2], delays[len(delays)*9/10], delays[len(delays)-1]
		t.Logf("propagation of %d revocations to the 2 other instances (%d measurements, from the revoker's 204 to the first 401): median %v, 90th percentile %v, worst %v",
			revocations, len(delays), median.Round(10*time.Microsecond), p90.Round(10*time.Microsecond), worst.Round(10*time.Microsecond))
		if worst > 100*time.Millisecond {
			t.Errorf("the slowest revocation reached another instance after %v, want at most 100ms", worst)
		}
	})

	t.Run("a rotation without grace ends the old key on every instance within 100 ms", func(t *testing.T) {
		const rotations = 20
		token := MustLogin(t, c[0], "rotor", MustRegister(t, c[2], "rotor"))
		var worst time.Duration
		for n := range rotations {
			raw, id := MustCreateKey(t, c[n%3], token)
			for _, in := range c { // every instance has the key cached
				mustCacheKey(t, in, raw)
			}
			rotator := c[(n+1)%3]
			code, body := rotator.do(t, "POST", "/v1/auth/api-keys/"+id+"/rotate", "", "Authorization", "Bearer "+token)
			if code != 200 {
				t.Fatalf("rotate = %d %v", code, body)
			}
			rotated := time.Now()
			if code, body := rotator.do(t, "GET", "/v1/me", "", "X-API-Key", raw); code != 401 || body["type"] != "urn:authapi:problem:api-key-expired" {
				t.Fatalf("rotation %d: the rotating instance's very next request with the old key = %d %v, want 401 expired", n, code, body)
			}
			for i, in := range c {
				if code, _ := in.do(t, "GET", "/v1/me", "", "X-API-Key", body["raw_key"].(string)); code != 200 {
					t.Fatalf("rotation %d: the new key through instance %d = %d", n, i, code)
				}
				for {
					code, _ := in.do(t, "GET", "/v1/me", "", "X-API-Key", raw)
					if code == 401 {
						worst = max(worst, time.Since(rotated))
						break
					}
					if time.Since(rotated) > 5*time.Second {
						t.Fatalf("rotation %d: instance %d still accepts the old key after 5s", n, i)
					}
				}
			}
		}
		t.Logf("the slowest of %d rotations reached every instance after %v", rotations, worst.Round(10*time.Microsecond))
		if worst > 100*time.Millisecond {
			t.Errorf("the slowest rotation reached another instance after %v, want at most 100ms", worst)
		}
	})

	t.Run("a logout, a password change and an account deletion end the tokens on every instance within 100 ms", func(t *testing.T) {
		const trials = 10
		password := MustRegister(t, c[0], "ender")
		var worst time.Duration
		for n := range trials {
			for _, tc := range []struct {
				name string
				end  func(in *instance, token string) int
			}{
				{"logout", func(in *instance, token string) int {
					code, _ := in.do(t, "POST", "/v1/auth/logout", "", "Authorization", "Bearer "+token)
					return code
				}},
				{"logout everywhere", func(in *instance, token string) int {
					code, _ := in.do(t, "POST", "/v1/auth/logout", `{"all":true}`, "Authorization", "Bearer "+token)
					return code
				}},
				{"password change", func(in *instance, token string) int {
					next := fmt.Sprintf("secureP@ss123-%d", n)
					code, _ := in.do(t, "POST", "/v1/auth/password", fmt.Sprintf(`{"current_password":%q,"new_password":%q}`, password, next), "Authorization", "Bearer "+token)
					if code == 204 {
						password = next
					}
					return code
				}},
			} {
				token := MustLogin(t, c[n%3], "ender", password)
				for _, in := range c { // every instance has the user's token state cached
					for range 2 {
						if code, _ := in.do(t, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+token); code != 200 {
							t.Fatalf("%s %d: the token before = %d", tc.name, n, code)
						}
					}
				}
				ender := c[(n+1)%3]
				if code := tc.end(ender, token); code != 204 {
					t.Fatalf("%s %d = %d, want 204", tc.name, n, code)
				}
				ended := time.Now()
				if code, _ := ender.do(t, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+token); code != 401 {
					t.Fatalf("%s %d: the ending instance's very next request with the token = %d, want 401", tc.name, n, code)
				}
				for i, in := range c {
					for {
						code, _ := in.do(t, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+token)
						if code == 401 {
							worst = max(worst, time.Since(ended))
							break
						}
						if code != 200 || time.Since(ended) > 5*time.Second {
							t.Fatalf("%s %d: instance %d answers %d %v after the end", tc.name, n, i, code, time.Since(ended))
						}
					}
				}
			}
		}
		t.Logf("the slowest of %d logouts, logouts everywhere and password changes reached every instance after %v", 3*trials, worst.Round(10*time.Microsecond))
		if worst > 100*time.Millisecond {
			t.Errorf("the slowest end of a token reached another instance after %v, want at most 100ms", worst)
		}

		// A deleted account: its token and key are refused by every
		// instance at once.
		deleted := MustRegister(t, c[1], "deleted")
		token := MustLogin(t, c[1], "deleted", deleted)
		raw, _ := MustCreateKey(t, c[1], token)
		for _, in := range c {
			mustCacheKey(t, in, raw)
			in.do(t, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+token)
		}
		if code, _ := c[2].do(t, "DELETE", "/v1/auth/account", "", "Authorization", "Bearer "+token); code != 204 {
			t.Fatalf("delete account = %d", code)
		}
		gone := time.Now()
		for i, in := range c {
			for {
				kc, _ := in.do(t, "GET", "/v1/me", "", "X-API-Key", raw)
				tc, _ := in.do(t, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+token)
				if kc == 401 && tc == 401 {
					break
				}
				if time.Since(gone) > 100*time.Millisecond {
					t.Fatalf("instance %d still answers the deleted account's key %d and token %d after %v", i, kc, tc, time.Since(gone))
				}
			}
		}
	})
}
