package store_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/lib/pq"

	"authapi/account"
	"authapi/store"
	"authapi/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

var ctx = context.Background()

const hash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"

// MustCreateUser registers a user named name (and name@example.com).
func MustCreateUser(tb testing.TB, db *store.DB, name string) *store.User {
	tb.Helper()
	u := &store.User{Username: name, Email: name + "@example.com", FullName: "Full " + name, PasswordHash: hash}
	if err := db.CreateUser(ctx, u); err != nil {
		tb.Fatalf("CreateUser(%q) = %v", name, err)
	}
	return u
}

// MustCreateKey creates an API key for user with a random digest.
func MustCreateKey(tb testing.TB, db *store.DB, user uuid.UUID, name string) *store.APIKey {
	tb.Helper()
	k := &store.APIKey{UserID: user, Name: name, Prefix: "rst_abcd", Digest: make([]byte, 32)}
	rand.Read(k.Digest)
	if err := db.CreateAPIKey(ctx, k, time.Now(), 0, store.Actor{}); err != nil {
		tb.Fatalf("CreateAPIKey(%q) = %v", name, err)
	}
	return k
}

func TestCreateUser(t *testing.T) {
	db := storetest.NewDB(t)
	u := MustCreateUser(t, db, "Hershel")
	if u.ID == uuid.Nil || u.CreatedAt.IsZero() {
		t.Fatalf("CreateUser left ID %v and CreatedAt %v unset", u.ID, u.CreatedAt)
	}
	for _, name := range []string{"Hershel", "hershel", "HERSHEL"} {
		got, err := db.UserByUsername(ctx, name)
		if err != nil {
			t.Fatalf("UserByUsername(%q) = %v", name, err)
		}
		if got.ID != u.ID || got.Username != "Hershel" || got.PasswordHash != hash {
			t.Fatalf("UserByUsername(%q) = %+v, want the user as registered", name, got)
		}
	}
	if _, err := db.UserByUsername(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UserByUsername(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := db.UserTokens(ctx, u.ID); err != nil {
		t.Fatalf("UserTokens(registered) = %v", err)
	}
	if _, err := db.UserTokens(ctx, uuid.New()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UserTokens(random) = %v, want ErrNotFound", err)
	}
}

func TestCreateUserConflicts(t *testing.T) {
	db := storetest.NewDB(t)
	MustCreateUser(t, db, "hershel")
	for _, tc := range []struct {
		username, email string
		want            []string
	}{
		{"HERSHEL", "other@example.com", []string{"username"}},
		{"other", "Hershel@EXAMPLE.com", []string{"email"}},
		{"Hershel", "HERSHEL@example.com", []string{"username", "email"}},
	} {
		u := &store.User{Username: tc.username, Email: tc.email, FullName: "x", PasswordHash: hash}
		err := db.CreateUser(ctx, u)
		var ce *store.ConflictError
		if !errors.As(err, &ce) || !errors.Is(err, store.ErrConflict) || !slices.Equal(ce.Fields, tc.want) {
			t.Errorf("CreateUser(%q, %q) = %v, want a conflict on %v", tc.username, tc.email, err, tc.want)
		}
		taken, err := db.TakenFields(ctx, tc.username, tc.email)
		if err != nil || !slices.Equal(taken, tc.want) {
			t.Errorf("TakenFields(%q, %q) = %v, %v, want %v", tc.username, tc.email, taken, err, tc.want)
		}
	}
	if taken, err := db.TakenFields(ctx, "free", "free@example.com"); len(taken) != 0 || err != nil {
		t.Errorf("TakenFields(free) = %v, %v, want none", taken, err)
	}
}

func TestConcurrentRegistrationOfOneName(t *testing.T) {
	db := storetest.NewDB(t)
	const n = 20
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		created   int
		conflicts int
		others    []error
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Different case and different emails: only the username collides.
			name := map[bool]string{true: "racer", false: "RACER"}[i%2 == 0]
			err := db.CreateUser(ctx, &store.User{Username: name, Email: fmt.Sprintf("r%d@example.com", i), FullName: "x", PasswordHash: hash})
			mu.Lock()
			defer mu.Unlock()
			var ce *store.ConflictError
			switch {
			case err == nil:
				created++
			case errors.As(err, &ce) && slices.Equal(ce.Fields, []string{"username"}):
				conflicts++
			default:
				others = append(others, err)
			}
		}()
	}
	wg.Wait()
	if created != 1 || conflicts != n-1 || len(others) > 0 {
		t.Fatalf("%d concurrent registrations: %d created, %d conflicts, other errors %v; want 1 and %d", n, created, conflicts, others, n-1)
	}
}

func TestStoreRefusesWhatItCannotStore(t *testing.T) {
	db := storetest.NewDB(t)
	for _, tc := range []struct {
		name string
		user store.User
	}{
		{"NUL in full name", store.User{Username: "nul", Email: "nul@example.com", FullName: "a\x00b", PasswordHash: hash}},
		{"invalid UTF-8", store.User{Username: "utf", Email: "utf@example.com", FullName: "a\xffb", PasswordHash: hash}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rule *account.Error
			if err := db.CreateUser(ctx, &tc.user); !errors.As(err, &rule) || rule.Field != "full_name" {
				t.Fatalf("CreateUser = %v, want an account rule on full_name", err)
			}
		})
	}
	// The schema's own checks back the validator up.
	for _, u := range []store.User{
		{Username: "a!", Email: "x@example.com", FullName: "x", PasswordHash: hash},
		{Username: "ok1", Email: "y@example.com", FullName: "x", PasswordHash: "plaintext"},
	} {
		if err := db.CreateUser(ctx, &u); err == nil {
			t.Errorf("CreateUser(%+v) = nil, want a check violation", u)
		}
	}
}

func TestSetPasswordHash(t *testing.T) {
	db := storetest.NewDB(t)
	u := MustCreateUser(t, db, "rehash")
	newer := hash[:len(hash)-1] + "B"
	if err := db.SetPasswordHash(ctx, u.ID, newer); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.UserByUsername(ctx, "rehash"); got.PasswordHash != newer {
		t.Fatalf("hash after SetPasswordHash = %q, want %q", got.PasswordHash, newer)
	}
	if err := db.SetPasswordHash(ctx, uuid.New(), newer); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetPasswordHash(unknown) = %v, want ErrNotFound", err)
	}
}

func TestAPIKeys(t *testing.T) {
	db := storetest.NewDB(t)
	alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")
	first := MustCreateKey(t, db, alice.ID, "first")
	second := MustCreateKey(t, db, alice.ID, "second")
	bobs := MustCreateKey(t, db, bob.ID, "bobs")

	keys, err := db.ListAPIKeys(ctx, alice.ID, store.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].ID != second.ID || keys[1].ID != first.ID {
		t.Fatalf("ListAPIKeys(alice) = %+v, want second then first", keys)
	}
	if !keys[0].ActiveAt(time.Now()) || keys[0].Name != "second" || keys[0].Prefix != "rst_abcd" {
		t.Fatalf("ListAPIKeys(alice)[0] = %+v", keys[0])
	}

	owner, err := db.APIKeyOwner(ctx, first.Digest)
	if err != nil || owner.KeyID != first.ID || owner.User.ID != alice.ID || owner.User.Email != "alice@example.com" {
		t.Fatalf("APIKeyOwner(first) = %+v, %v, want first and alice", owner, err)
	}
	if owner.User.PasswordHash != "" {
		t.Fatal("APIKeyOwner returned the password hash, which nothing behind an API key needs")
	}
	if !slices.Equal(owner.Scopes, []string{"me:read", "me:write"}) || owner.ExpiresAt != nil {
		t.Fatalf("a new key's scopes and expiry = %v, %v, want every scope and none", owner.Scopes, owner.ExpiresAt)
	}

	// Another user's key is not found, and stays active.
	if _, err := db.RevokeAPIKey(ctx, alice.ID, bobs.ID, store.Actor{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RevokeAPIKey(alice, bob's key) = %v, want ErrNotFound", err)
	}
	if _, err := db.APIKeyOwner(ctx, bobs.Digest); err != nil {
		t.Fatalf("bob's key stopped working after alice tried to revoke it: %v", err)
	}
	if _, err := db.RevokeAPIKey(ctx, alice.ID, uuid.New(), store.Actor{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RevokeAPIKey(unknown) = %v, want ErrNotFound", err)
	}

	digest, err := db.RevokeAPIKey(ctx, alice.ID, first.ID, store.Actor{})
	if err != nil || string(digest) != string(first.Digest) {
		t.Fatalf("RevokeAPIKey(first) = %x, %v, want its digest", digest, err)
	}
	if _, err := db.APIKeyOwner(ctx, first.Digest); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("APIKeyOwner(revoked) = %v, want ErrNotFound", err)
	}
	keys, _ = db.ListAPIKeys(ctx, alice.ID, store.Page{Limit: 100})
	if len(keys) != 2 || keys[1].ActiveAt(time.Now()) || keys[1].RevokedAt == nil {
		t.Fatalf("after revoking, ListAPIKeys = %+v, want the revoked key kept, inactive, with its time", keys)
	}
	revokedAt := *keys[1].RevokedAt

	// Revoking again succeeds and keeps the first revocation time.
	time.Sleep(5 * time.Millisecond)
	if _, err := db.RevokeAPIKey(ctx, alice.ID, first.ID, store.Actor{}); err != nil {
		t.Fatalf("RevokeAPIKey(revoked) = %v, want nil", err)
	}
	keys, _ = db.ListAPIKeys(ctx, alice.ID, store.Page{Limit: 100})
	if !keys[1].RevokedAt.Equal(revokedAt) {
		t.Fatalf("revocation time moved from %v to %v", revokedAt, keys[1].RevokedAt)
	}

	if keys, _ := db.ListAPIKeys(ctx, uuid.New(), store.Page{Limit: 100}); keys == nil || len(keys) != 0 {
		t.Fatalf("ListAPIKeys(nobody) = %#v, want an empty, non-nil list", keys)
	}
}

func TestAPIKeyDigestsAreUnique(t *testing.T) {
	db := storetest.NewDB(t)
	u := MustCreateUser(t, db, "dup")
	k := MustCreateKey(t, db, u.ID, "one")
	again := &store.APIKey{UserID: u.ID, Name: "two", Prefix: "rst_abcd", Digest: k.Digest}
	if err := db.CreateAPIKey(ctx, again, time.Now(), 0, store.Actor{}); err == nil {
		t.Fatal("two keys with one digest were stored")
	}
}

func TestCreateAPIKeyForMissingUser(t *testing.T) {
	db := storetest.NewDB(t)
	k := &store.APIKey{UserID: uuid.New(), Name: "x", Prefix: "rst_abcd", Digest: make([]byte, 32)}
	if err := db.CreateAPIKey(ctx, k, time.Now(), 0, store.Actor{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CreateAPIKey(unknown user) = %v, want ErrNotFound", err)
	}
}

func TestActiveKeyCapHoldsUnderConcurrency(t *testing.T) {
	db := storetest.NewDB(t)
	u := MustCreateUser(t, db, "capped")
	const limit, tries = 5, 20
	var (
		wg               sync.WaitGroup
		mu               sync.Mutex
		created, refused int
	)
	for i := 0; i < tries; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := &store.APIKey{UserID: u.ID, Name: "k", Prefix: "rst_abcd", Digest: make([]byte, 32)}
			rand.Read(k.Digest)
			err := db.CreateAPIKey(ctx, k, time.Now(), limit, store.Actor{})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case errors.Is(err, store.ErrKeyLimit):
				refused++
			default:
				t.Errorf("CreateAPIKey = %v", err)
			}
		}()
	}
	wg.Wait()
	if created != limit || refused != tries-limit {
		t.Fatalf("%d concurrent creations with a cap of %d: %d created, %d refused", tries, limit, created, refused)
	}
	// Revoking one makes room for one.
	keys, _ := db.ListAPIKeys(ctx, u.ID, store.Page{Limit: 100})
	if _, err := db.RevokeAPIKey(ctx, u.ID, keys[0].ID, store.Actor{}); err != nil {
		t.Fatal(err)
	}
	k := &store.APIKey{UserID: u.ID, Name: "after", Prefix: "rst_abcd", Digest: make([]byte, 32)}
	rand.Read(k.Digest)
	if err := db.CreateAPIKey(ctx, k, time.Now(), limit, store.Actor{}); err != nil {
		t.Fatalf("CreateAPIKey after a revocation = %v, want room for one", err)
	}
}

// pairOnly limits failures per (username, address) only.
func pairOnly(max int, window time.Duration) store.LoginLimits {
	return store.LoginLimits{PerPair: max, Window: window}
}

func TestLoginThrottle(t *testing.T) {
	db := storetest.NewDB(t)
	const max, window = 3, time.Minute
	for i := 0; i < max; i++ {
		if r, err := db.BeginLogin(ctx, "victim", "192.0.2.1", pairOnly(max, window)); r.RetryAfter != 0 || err != nil {
			t.Fatalf("attempt %d: BeginLogin = %+v, %v, want admitted", i+1, r, err)
		}
	}
	r, err := db.BeginLogin(ctx, "victim", "192.0.2.1", pairOnly(max, window))
	if err != nil || r.RetryAfter <= window-5*time.Second || r.RetryAfter > window || r.ByAddress {
		t.Fatalf("attempt %d: BeginLogin = %+v, %v, want refused for about %v by the pair's budget", max+1, r, err, window)
	}
	// Another address, or another username, has its own budget.
	if r, err := db.BeginLogin(ctx, "victim", "198.51.100.7", pairOnly(max, window)); r.RetryAfter != 0 || err != nil {
		t.Fatalf("from another address: BeginLogin = %+v, %v, want admitted", r, err)
	}
	if r, err := db.BeginLogin(ctx, "other", "192.0.2.1", pairOnly(max, window)); r.RetryAfter != 0 || err != nil {
		t.Fatalf("for another username: BeginLogin = %+v, %v, want admitted", r, err)
	}
	// A success clears the pair's failures.
	if err := db.ClearLoginFailures(ctx, "victim", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if r, err := db.BeginLogin(ctx, "victim", "192.0.2.1", pairOnly(max, window)); r.RetryAfter != 0 || err != nil {
		t.Fatalf("after a success: BeginLogin = %+v, %v, want admitted", r, err)
	}
	// Zero turns the limits off and records nothing.
	for i := 0; i < 10; i++ {
		if r, err := db.BeginLogin(ctx, "free", "192.0.2.2", store.LoginLimits{Window: window}); r.RetryAfter != 0 || err != nil {
			t.Fatalf("limits 0: BeginLogin = %+v, %v", r, err)
		}
	}
	if r, _ := db.BeginLogin(ctx, "free", "192.0.2.2", store.LoginLimits{PerPair: 1, PerAddress: 1, Window: window}); r.RetryAfter != 0 {
		t.Fatalf("after 10 attempts with the limits off, a limit of 1 refuses: %+v, want nothing recorded", r)
	}
}

func TestLoginThrottlePerAddress(t *testing.T) {
	db := storetest.NewDB(t)
	lim := store.LoginLimits{PerPair: 3, PerAddress: 5, Window: time.Minute}
	// Five usernames from one address, one failure each: the address's
	// budget is spent although no pair's is.
	for i := 0; i < lim.PerAddress; i++ {
		if r, err := db.BeginLogin(ctx, fmt.Sprintf("user%d", i), "192.0.2.1", lim); r.RetryAfter != 0 || err != nil {
			t.Fatalf("attempt %d: BeginLogin = %+v, %v, want admitted", i+1, r, err)
		}
	}
	r, err := db.BeginLogin(ctx, "fresh", "192.0.2.1", lim)
	if err != nil || !r.ByAddress || r.RetryAfter <= lim.Window-5*time.Second || r.RetryAfter > lim.Window {
		t.Fatalf("a new username from a spent address: BeginLogin = %+v, %v, want refused by the address's budget for about %v", r, err, lim.Window)
	}
	// Another address is not affected, IPv6 prefixes included.
	for _, addr := range []string{"192.0.2.2", "2001:db8::/64"} {
		if r, err := db.BeginLogin(ctx, "fresh", addr, lim); r.RetryAfter != 0 || err != nil {
			t.Fatalf("from %s: BeginLogin = %+v, %v, want admitted", addr, r, err)
		}
	}
	// Zero turns the address's budget off; the pair's still holds.
	pair := store.LoginLimits{PerPair: 3, Window: time.Minute}
	if r, err := db.BeginLogin(ctx, "fresh", "192.0.2.1", pair); r.RetryAfter != 0 || err != nil {
		t.Fatalf("with the address limit off: BeginLogin = %+v, %v, want admitted", r, err)
	}
}

func TestLoginThrottleWindowSlides(t *testing.T) {
	db := storetest.NewDB(t)
	const window = 1500 * time.Millisecond
	for i := 0; i < 2; i++ {
		db.BeginLogin(ctx, "slide", "192.0.2.1", pairOnly(2, window))
	}
	if r, _ := db.BeginLogin(ctx, "slide", "192.0.2.1", pairOnly(2, window)); r.RetryAfter == 0 {
		t.Fatal("third attempt admitted with a limit of 2")
	}
	time.Sleep(window + 100*time.Millisecond)
	if r, err := db.BeginLogin(ctx, "slide", "192.0.2.1", pairOnly(2, window)); r.RetryAfter != 0 || err != nil {
		t.Fatalf("after the window: BeginLogin = %+v, %v, want admitted", r, err)
	}
	if n, err := db.ForgetLoginFailures(ctx, window); n != 2 || err != nil {
		t.Fatalf("ForgetLoginFailures = %d, %v, want the 2 old failures", n, err)
	}
}

// TestThrottlesHoldUnderConcurrency: concurrent attempts never overrun a
// budget, whichever limit binds.
func TestThrottlesHoldUnderConcurrency(t *testing.T) {
	db := storetest.NewDB(t)
	const tries = 40
	for _, tc := range []struct {
		name    string
		attempt func(i int) (time.Duration, error)
		want    int
	}{
		{"login per pair", func(int) (time.Duration, error) {
			r, err := db.BeginLogin(ctx, "burst", "192.0.2.9", store.LoginLimits{PerPair: 10, PerAddress: 100, Window: time.Minute})
			return r.RetryAfter, err
		}, 10},
		{"login per address", func(i int) (time.Duration, error) {
			r, err := db.BeginLogin(ctx, fmt.Sprintf("spray%d", i), "192.0.2.10", store.LoginLimits{PerPair: 10, PerAddress: 7, Window: time.Minute})
			return r.RetryAfter, err
		}, 7},
		{"registration", func(int) (time.Duration, error) {
			return db.BeginRegistration(ctx, "192.0.2.11", 5, time.Hour)
		}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				wg       sync.WaitGroup
				mu       sync.Mutex
				admitted int
			)
			for i := 0; i < tries; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					wait, err := tc.attempt(i)
					if err != nil {
						t.Error(err)
						return
					}
					if wait == 0 {
						mu.Lock()
						admitted++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if admitted != tc.want {
				t.Fatalf("%d concurrent attempts with a limit of %d: %d admitted", tries, tc.want, admitted)
			}
		})
	}
}

func TestRegistrationThrottle(t *testing.T) {
	db := storetest.NewDB(t)
	const max, window = 3, time.Hour
	for i := 0; i < max; i++ {
		if wait, err := db.BeginRegistration(ctx, "192.0.2.1", max, window); wait != 0 || err != nil {
			t.Fatalf("attempt %d: BeginRegistration = %v, %v, want admitted", i+1, wait, err)
		}
	}
	wait, err := db.BeginRegistration(ctx, "192.0.2.1", max, window)
	if err != nil || wait <= window-5*time.Second || wait > window {
		t.Fatalf("attempt %d: BeginRegistration = %v, %v, want refused for about %v", max+1, wait, err, window)
	}
	if wait, err := db.BeginRegistration(ctx, "192.0.2.2", max, window); wait != 0 || err != nil {
		t.Fatalf("from another address: BeginRegistration = %v, %v, want admitted", wait, err)
	}
	for i := 0; i < 10; i++ {
		if wait, err := db.BeginRegistration(ctx, "192.0.2.3", 0, window); wait != 0 || err != nil {
			t.Fatalf("limit 0: BeginRegistration = %v, %v, want admitted", wait, err)
		}
	}
	if wait, _ := db.BeginRegistration(ctx, "192.0.2.3", 1, window); wait != 0 {
		t.Fatalf("after 10 attempts with the limit off, a limit of 1 refuses (%v): want nothing recorded", wait)
	}
}

func TestRegistrationWindowSlides(t *testing.T) {
	db := storetest.NewDB(t)
	const window = 1500 * time.Millisecond
	for i := 0; i < 2; i++ {
		db.BeginRegistration(ctx, "192.0.2.1", 2, window)
	}
	if wait, _ := db.BeginRegistration(ctx, "192.0.2.1", 2, window); wait == 0 {
		t.Fatal("third attempt admitted with a limit of 2")
	}
	time.Sleep(window + 100*time.Millisecond)
	if wait, err := db.BeginRegistration(ctx, "192.0.2.1", 2, window); wait != 0 || err != nil {
		t.Fatalf("after the window: BeginRegistration = %v, %v, want admitted", wait, err)
	}
	if n, err := db.ForgetRegistrationAttempts(ctx, window); n != 2 || err != nil {
		t.Fatalf("ForgetRegistrationAttempts = %d, %v, want the 2 old attempts", n, err)
	}
}

func TestUnreachableDatabase(t *testing.T) {
	// A socket folder with no server in it: connection refused.
	url := "postgres://authapi@/authapi?host=" + t.TempDir() + "&sslmode=disable&connect_timeout=2"
	_, err := store.Open(ctx, url, store.Options{QueryTimeout: 2 * time.Second})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open(no server) = %v, want ErrUnavailable", err)
	}
}

// TestConcurrentMigrations starts several migrators at once on an empty
// database, as several instances starting together do: all succeed, and
// each migration is applied once. Under `make test-pgbouncer` they go
// through a transaction pooler, where a session-level lock would not hold.
func TestConcurrentMigrations(t *testing.T) {
	url := storetest.NewEmptyURL(t)
	const migrators = 4
	errs := make(chan error, migrators)
	for range migrators {
		go func() {
			db, err := store.Open(ctx, url, store.Options{MaxConns: 2})
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			mctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			errs <- db.Migrate(mctx)
		}()
	}
	for range migrators {
		if err := <-errs; err != nil {
			t.Errorf("Migrate() = %v", err)
		}
	}
	plain, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	var applied, distinct int
	if err := plain.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT version_id) FROM goose_db_version WHERE version_id > 0`).Scan(&applied, &distinct); err != nil {
		t.Fatal(err)
	}
	if applied != distinct || applied == 0 {
		t.Fatalf("goose_db_version: %d rows for %d migrations, want each applied once", applied, distinct)
	}
	db, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	MustCreateUser(t, db, "migrated")
}

// TestDeadlockIsUnavailable: the transaction PostgreSQL chooses to break a
// deadlock failed for no fault of its request, which may simply be sent
// again: ErrUnavailable (503 with Retry-After), not an internal error.
func TestDeadlockIsUnavailable(t *testing.T) {
	plain, err := sql.Open("postgres", storetest.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.ExecContext(ctx, `CREATE TABLE pair (id int PRIMARY KEY); INSERT INTO pair VALUES (1), (2)`); err != nil {
		t.Fatal(err)
	}
	// Two transactions lock the rows in opposite orders.
	errs := make(chan error, 2)
	ready := sync.WaitGroup{}
	ready.Add(2)
	for _, order := range [][2]int{{1, 2}, {2, 1}} {
		go func() {
			tx, err := plain.BeginTx(ctx, nil)
			if err != nil {
				ready.Done()
				errs <- err
				return
			}
			defer tx.Rollback()
			_, err = tx.ExecContext(ctx, `UPDATE pair SET id = id WHERE id = $1`, order[0])
			ready.Done()
			ready.Wait()
			if err == nil {
				_, err = tx.ExecContext(ctx, `UPDATE pair SET id = id WHERE id = $1`, order[1])
			}
			errs <- err
		}()
	}
	var deadlock error
	for range 2 {
		if err := <-errs; err != nil {
			deadlock = err
		}
	}
	if deadlock == nil {
		t.Fatal("no deadlock: both transactions went through")
	}
	if got := store.Classify(deadlock, "test"); !errors.Is(got, store.ErrUnavailable) {
		t.Fatalf("a deadlock (%v) is classified as %v, want ErrUnavailable", deadlock, got)
	}
}
