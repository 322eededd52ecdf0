package store_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

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
	if err := db.CreateAPIKey(ctx, k, 0); err != nil {
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
	if ok, err := db.UserExists(ctx, u.ID); !ok || err != nil {
		t.Fatalf("UserExists(registered) = %v, %v", ok, err)
	}
	if ok, err := db.UserExists(ctx, uuid.New()); ok || err != nil {
		t.Fatalf("UserExists(random) = %v, %v", ok, err)
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
		want error
	}{
		{"NUL in full name", store.User{Username: "nul", Email: "nul@example.com", FullName: "a\x00b", PasswordHash: hash}, store.ErrInvalidText},
		{"invalid UTF-8", store.User{Username: "utf", Email: "utf@example.com", FullName: "a\xffb", PasswordHash: hash}, store.ErrInvalidText},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := db.CreateUser(ctx, &tc.user); !errors.Is(err, tc.want) {
				t.Fatalf("CreateUser = %v, want %v", err, tc.want)
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

	keys, err := db.ListAPIKeys(ctx, alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].ID != second.ID || keys[1].ID != first.ID {
		t.Fatalf("ListAPIKeys(alice) = %+v, want second then first", keys)
	}
	if !keys[0].Active() || keys[0].Name != "second" || keys[0].Prefix != "rst_abcd" {
		t.Fatalf("ListAPIKeys(alice)[0] = %+v", keys[0])
	}

	owner, err := db.APIKeyOwner(ctx, first.Digest)
	if err != nil || owner.KeyID != first.ID || owner.User.ID != alice.ID || owner.User.Email != "alice@example.com" {
		t.Fatalf("APIKeyOwner(first) = %+v, %v, want first and alice", owner, err)
	}
	if owner.User.PasswordHash != "" {
		t.Fatal("APIKeyOwner returned the password hash, which nothing behind an API key needs")
	}

	// Another user's key is not found, and stays active.
	if _, err := db.RevokeAPIKey(ctx, alice.ID, bobs.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RevokeAPIKey(alice, bob's key) = %v, want ErrNotFound", err)
	}
	if _, err := db.APIKeyOwner(ctx, bobs.Digest); err != nil {
		t.Fatalf("bob's key stopped working after alice tried to revoke it: %v", err)
	}
	if _, err := db.RevokeAPIKey(ctx, alice.ID, uuid.New()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RevokeAPIKey(unknown) = %v, want ErrNotFound", err)
	}

	digest, err := db.RevokeAPIKey(ctx, alice.ID, first.ID)
	if err != nil || string(digest) != string(first.Digest) {
		t.Fatalf("RevokeAPIKey(first) = %x, %v, want its digest", digest, err)
	}
	if _, err := db.APIKeyOwner(ctx, first.Digest); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("APIKeyOwner(revoked) = %v, want ErrNotFound", err)
	}
	keys, _ = db.ListAPIKeys(ctx, alice.ID)
	if len(keys) != 2 || keys[1].Active() || keys[1].RevokedAt == nil {
		t.Fatalf("after revoking, ListAPIKeys = %+v, want the revoked key kept, inactive, with its time", keys)
	}
	revokedAt := *keys[1].RevokedAt

	// Revoking again succeeds and keeps the first revocation time.
	time.Sleep(5 * time.Millisecond)
	if _, err := db.RevokeAPIKey(ctx, alice.ID, first.ID); err != nil {
		t.Fatalf("RevokeAPIKey(revoked) = %v, want nil", err)
	}
	keys, _ = db.ListAPIKeys(ctx, alice.ID)
	if !keys[1].RevokedAt.Equal(revokedAt) {
		t.Fatalf("revocation time moved from %v to %v", revokedAt, keys[1].RevokedAt)
	}

	if keys, _ := db.ListAPIKeys(ctx, uuid.New()); keys == nil || len(keys) != 0 {
		t.Fatalf("ListAPIKeys(nobody) = %#v, want an empty, non-nil list", keys)
	}
}

func TestAPIKeyDigestsAreUnique(t *testing.T) {
	db := storetest.NewDB(t)
	u := MustCreateUser(t, db, "dup")
	k := MustCreateKey(t, db, u.ID, "one")
	again := &store.APIKey{UserID: u.ID, Name: "two", Prefix: "rst_abcd", Digest: k.Digest}
	if err := db.CreateAPIKey(ctx, again, 0); err == nil {
		t.Fatal("two keys with one digest were stored")
	}
}

func TestCreateAPIKeyForMissingUser(t *testing.T) {
	db := storetest.NewDB(t)
	k := &store.APIKey{UserID: uuid.New(), Name: "x", Prefix: "rst_abcd", Digest: make([]byte, 32)}
	if err := db.CreateAPIKey(ctx, k, 0); !errors.Is(err, store.ErrNotFound) {
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
			err := db.CreateAPIKey(ctx, k, limit)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case errors.Is(err, store.ErrConflict):
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
	keys, _ := db.ListAPIKeys(ctx, u.ID)
	if _, err := db.RevokeAPIKey(ctx, u.ID, keys[0].ID); err != nil {
		t.Fatal(err)
	}
	k := &store.APIKey{UserID: u.ID, Name: "after", Prefix: "rst_abcd", Digest: make([]byte, 32)}
	rand.Read(k.Digest)
	if err := db.CreateAPIKey(ctx, k, limit); err != nil {
		t.Fatalf("CreateAPIKey after a revocation = %v, want room for one", err)
	}
}

func TestLoginThrottle(t *testing.T) {
	db := storetest.NewDB(t)
	const max, window = 3, time.Minute
	for i := 0; i < max; i++ {
		if wait, err := db.BeginLogin(ctx, "victim", "192.0.2.1", max, window); wait != 0 || err != nil {
			t.Fatalf("attempt %d: BeginLogin = %v, %v, want admitted", i+1, wait, err)
		}
	}
	wait, err := db.BeginLogin(ctx, "victim", "192.0.2.1", max, window)
	if err != nil || wait <= window-5*time.Second || wait > window {
		t.Fatalf("attempt %d: BeginLogin = %v, %v, want refused for about %v", max+1, wait, err, window)
	}
	// Another address, or another username, has its own budget.
	if wait, err := db.BeginLogin(ctx, "victim", "198.51.100.7", max, window); wait != 0 || err != nil {
		t.Fatalf("from another address: BeginLogin = %v, %v, want admitted", wait, err)
	}
	if wait, err := db.BeginLogin(ctx, "other", "192.0.2.1", max, window); wait != 0 || err != nil {
		t.Fatalf("for another username: BeginLogin = %v, %v, want admitted", wait, err)
	}
	// A success clears the pair's failures.
	if err := db.LoginSucceeded(ctx, "victim", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if wait, err := db.BeginLogin(ctx, "victim", "192.0.2.1", max, window); wait != 0 || err != nil {
		t.Fatalf("after a success: BeginLogin = %v, %v, want admitted", wait, err)
	}
	// Zero turns the limit off and records nothing.
	for i := 0; i < 10; i++ {
		if wait, err := db.BeginLogin(ctx, "free", "192.0.2.1", 0, window); wait != 0 || err != nil {
			t.Fatalf("limit 0: BeginLogin = %v, %v", wait, err)
		}
	}
}

func TestLoginThrottleWindowSlides(t *testing.T) {
	db := storetest.NewDB(t)
	const window = 1500 * time.Millisecond
	for i := 0; i < 2; i++ {
		db.BeginLogin(ctx, "slide", "192.0.2.1", 2, window)
	}
	if wait, _ := db.BeginLogin(ctx, "slide", "192.0.2.1", 2, window); wait == 0 {
		t.Fatal("third attempt admitted with a limit of 2")
	}
	time.Sleep(window + 100*time.Millisecond)
	if wait, err := db.BeginLogin(ctx, "slide", "192.0.2.1", 2, window); wait != 0 || err != nil {
		t.Fatalf("after the window: BeginLogin = %v, %v, want admitted", wait, err)
	}
	if n, err := db.ForgetLoginFailures(ctx, window); n != 2 || err != nil {
		t.Fatalf("ForgetLoginFailures = %d, %v, want the 2 old failures", n, err)
	}
}

func TestLoginThrottleHoldsUnderConcurrency(t *testing.T) {
	db := storetest.NewDB(t)
	const max, tries = 10, 40
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		admitted int
	)
	for i := 0; i < tries; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait, err := db.BeginLogin(ctx, "burst", "192.0.2.9", max, time.Minute)
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
	if admitted != max {
		t.Fatalf("%d concurrent attempts with a limit of %d: %d admitted", tries, max, admitted)
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
