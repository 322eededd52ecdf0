package store_test

import (
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"authapi/store"
	"authapi/store/storetest"
)

func newDigestKey(user uuid.UUID) *store.APIKey {
	k := &store.APIKey{UserID: user, Prefix: "rst_abcd", Digest: make([]byte, 32)}
	rand.Read(k.Digest)
	return k
}

func TestKeyScopesAndExpiryPersist(t *testing.T) {
	db := storetest.NewDB(t)
	u := MustCreateUser(t, db, "scoped")
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	k := newDigestKey(u.ID)
	k.Name, k.Scopes, k.ExpiresAt = "ro", pq.StringArray{"me:read"}, &exp
	if err := db.CreateAPIKey(ctx, k, time.Now(), 0, store.Actor{}); err != nil {
		t.Fatal(err)
	}
	o, err := db.APIKeyOwner(ctx, k.Digest)
	if err != nil || !slices.Equal(o.Scopes, []string{"me:read"}) || o.ExpiresAt == nil || !o.ExpiresAt.Equal(exp) {
		t.Fatalf("APIKeyOwner = %+v, %v, want scope me:read and expiry %v", o, err, exp)
	}
	bad := newDigestKey(u.ID)
	bad.Name, bad.Scopes = "x", pq.StringArray{"admin"}
	if err := db.CreateAPIKey(ctx, bad, time.Now(), 0, store.Actor{}); err == nil {
		t.Fatal("a key with an unknown scope was stored")
	}
	// An expired key is still found: the caller tells "expired" from "unknown".
	past := time.Now().Add(-time.Hour)
	old := newDigestKey(u.ID)
	old.Name, old.ExpiresAt = "old", &past
	db.CreateAPIKey(ctx, old, time.Now(), 0, store.Actor{})
	if o, err := db.APIKeyOwner(ctx, old.Digest); err != nil || o.ExpiresAt == nil {
		t.Fatalf("APIKeyOwner(expired) = %v, %v, want it found with its expiry", o, err)
	}
}

// rotation is a Rotation at a fixed time.
func rotation(at time.Time, grace time.Duration, maxActive int, lifetime func(*store.APIKey, time.Time) *time.Time) store.Rotation {
	return store.Rotation{Now: func() time.Time { return at }, Grace: grace, MaxActive: maxActive, Lifetime: lifetime}
}

func TestRotateAPIKey(t *testing.T) {
	db := storetest.NewDB(t)
	u, other := MustCreateUser(t, db, "rotor"), MustCreateUser(t, db, "other")
	now := time.Now().UTC().Truncate(time.Microsecond)
	exp := now.Add(30 * 24 * time.Hour)
	old := newDigestKey(u.ID)
	life := int64(30 * 24 * 3600)
	old.Name, old.Scopes, old.ExpiresAt, old.LifetimeSeconds = "ci", pq.StringArray{"me:read"}, &exp, &life
	if err := db.CreateAPIKey(ctx, old, time.Now(), 0, store.Actor{}); err != nil {
		t.Fatal(err)
	}
	var seen *store.APIKey // what renew was given
	renew := func(o *store.APIKey, at time.Time) *time.Time {
		seen = o
		t := at.Add(time.Duration(*o.LifetimeSeconds) * time.Second)
		return &t
	}

	next := newDigestKey(u.ID)
	got, err := db.RotateAPIKey(ctx, old.ID, next, rotation(now, time.Hour, 0, renew))
	if err != nil {
		t.Fatal(err)
	}
	if seen == nil || seen.LifetimeSeconds == nil || *seen.LifetimeSeconds != life || next.LifetimeSeconds == nil || *next.LifetimeSeconds != life {
		t.Fatalf("the lifetime was not carried over: old %+v, new %+v", seen, next)
	}
	if next.Name != "ci" || !slices.Equal(next.Scopes, []string{"me:read"}) || next.ExpiresAt == nil || !next.ExpiresAt.Equal(exp) {
		t.Fatalf("the new key = %+v, want the old name and scopes and a renewed lifetime", next)
	}
	if got.ExpiresAt == nil || !got.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("the old key now ends at %v, want the end of grace %v", got.ExpiresAt, now.Add(time.Hour))
	}
	// Again within the grace period: allowed, and the end never moves later.
	third := newDigestKey(u.ID)
	got, err = db.RotateAPIKey(ctx, old.ID, third, rotation(now.Add(time.Minute), 2*time.Hour-time.Minute, 0, renew))
	if err != nil || !got.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("second rotation = %v, %v, want the first end of grace kept", got.ExpiresAt, err)
	}
	// A shorter grace shortens it.
	fourth := newDigestKey(u.ID)
	got, _ = db.RotateAPIKey(ctx, old.ID, fourth, rotation(now.Add(time.Minute), 9*time.Minute, 0, renew))
	if !got.ExpiresAt.Equal(now.Add(10 * time.Minute)) {
		t.Fatalf("rotation with a shorter grace ends at %v, want %v", got.ExpiresAt, now.Add(10*time.Minute))
	}
	for _, tc := range []struct {
		name string
		user uuid.UUID
		key  uuid.UUID
		at   time.Time
	}{
		{"another user's key", other.ID, next.ID, now},
		{"an unknown key", u.ID, uuid.New(), now},
		{"a key past its end", u.ID, old.ID, now.Add(11 * time.Minute)},
	} {
		k := newDigestKey(tc.user)
		if _, err := db.RotateAPIKey(ctx, tc.key, k, rotation(tc.at, 0, 0, renew)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("rotating %s = %v, want ErrNotFound", tc.name, err)
		}
	}
	db.RevokeAPIKey(ctx, u.ID, next.ID, store.Actor{})
	if _, err := db.RotateAPIKey(ctx, next.ID, newDigestKey(u.ID), rotation(now, 0, 0, renew)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("rotating a revoked key = %v, want ErrNotFound", err)
	}
}

func TestRotationRespectsTheCap(t *testing.T) {
	db := storetest.NewDB(t)
	u := MustCreateUser(t, db, "full")
	a, b := newDigestKey(u.ID), newDigestKey(u.ID)
	a.Name, b.Name = "a", "b"
	db.CreateAPIKey(ctx, a, time.Now(), 0, store.Actor{})
	db.CreateAPIKey(ctx, b, time.Now(), 0, store.Actor{})
	now := time.Now()
	// At the cap, replacing a key is still allowed: the old one is not counted.
	if _, err := db.RotateAPIKey(ctx, a.ID, newDigestKey(u.ID), rotation(now, 0, 2, nil)); err != nil {
		t.Fatalf("rotation at the cap = %v, want it allowed", err)
	}
	// With a grace period the old key stays active; with a cap of 1 and two
	// other active keys there is no room for a replacement.
	if _, err := db.RotateAPIKey(ctx, b.ID, newDigestKey(u.ID), rotation(now, time.Hour, 1, nil)); !errors.Is(err, store.ErrKeyLimit) {
		t.Fatalf("rotation past the cap = %v, want a conflict", err)
	}
}

// TestCapCountsWorkingKeys: an expired key leaves room, from the very
// instant it expires and not a nanosecond earlier, as the server's clock
// tells it (PostgreSQL would round a nanosecond to the next microsecond).
func TestCapCountsWorkingKeys(t *testing.T) {
	db := storetest.NewDB(t)
	u := MustCreateUser(t, db, "expiring")
	end := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	a, b := newDigestKey(u.ID), newDigestKey(u.ID)
	a.Name, a.ExpiresAt, b.Name = "a", &end, "b"
	for _, k := range []*store.APIKey{a, b} {
		if err := db.CreateAPIKey(ctx, k, time.Now(), 0, store.Actor{}); err != nil {
			t.Fatal(err)
		}
	}
	named := func(name string) *store.APIKey { k := newDigestKey(u.ID); k.Name = name; return k }
	justBefore := end.Add(-time.Nanosecond)
	if err := db.CreateAPIKey(ctx, named("c"), justBefore, 2, store.Actor{}); !errors.Is(err, store.ErrKeyLimit) {
		t.Fatalf("CreateAPIKey a nanosecond before a key expires, at the cap = %v, want a conflict", err)
	}
	if err := db.CreateAPIKey(ctx, named("c"), end, 2, store.Actor{}); err != nil {
		t.Fatalf("CreateAPIKey once a key has expired = %v, want room for it", err)
	}
	if _, err := db.RotateAPIKey(ctx, a.ID, named("d"), rotation(justBefore, 0, 0, nil)); err != nil {
		t.Fatalf("RotateAPIKey a nanosecond before the key expires = %v, want it rotated", err)
	}
}

func TestRecordKeyUses(t *testing.T) {
	db := storetest.NewDB(t)
	u := MustCreateUser(t, db, "user")
	k := MustCreateKey(t, db, u.ID, "k")
	lastUsed := func() *time.Time {
		keys, _ := db.ListAPIKeys(ctx, u.ID, store.Page{Limit: 100})
		return keys[0].LastUsedAt
	}
	if lastUsed() != nil {
		t.Fatal("a new key has a last use")
	}
	at := time.Date(2026, 3, 1, 10, 30, 45, 0, time.UTC)
	owners, _, err := db.RecordKeyUses(ctx, map[uuid.UUID]time.Time{k.ID: at, uuid.New(): at})
	if err != nil || len(owners) != 1 || owners[0] != u.ID {
		t.Fatalf("RecordKeyUses = %v, %v, want the owner of the one known key", owners, err)
	}
	if got := lastUsed(); got == nil || !got.Equal(at.Truncate(time.Minute)) {
		t.Fatalf("last_used_at = %v, want %v (to the minute)", got, at.Truncate(time.Minute))
	}
	// An older report (another instance, late) never moves it back, and
	// changes no listing.
	if owners, _, _ := db.RecordKeyUses(ctx, map[uuid.UUID]time.Time{k.ID: at.Add(-time.Hour)}); len(owners) != 0 {
		t.Fatalf("an older use reported owners %v, want none", owners)
	}
	if got := lastUsed(); !got.Equal(at.Truncate(time.Minute)) {
		t.Fatalf("an older use moved last_used_at back to %v", got)
	}
	db.RecordKeyUses(ctx, map[uuid.UUID]time.Time{k.ID: at.Add(time.Minute)})
	if got := lastUsed(); !got.Equal(at.Add(time.Minute).Truncate(time.Minute)) {
		t.Fatalf("a later use left last_used_at at %v", got)
	}
}

// TestDeleteRetiredKeys: keys revoked or expired longer ago than the
// retention are deleted, a batch at a time; the others stay.
func TestDeleteRetiredKeys(t *testing.T) {
	db := storetest.NewDB(t)
	u := MustCreateUser(t, db, "retiree")
	keep := map[string]bool{}
	mk := func(name string) *store.APIKey { return MustCreateKey(t, db, u.ID, name) }
	for _, name := range []string{"active", "recently revoked", "recently expired"} {
		keep[mk(name).ID.String()] = true
	}
	const old = 2500 // more than one batch
	for i := range old {
		mk(fmt.Sprint("old", i))
	}
	if err := db.Exec(ctx, `UPDATE api_keys SET revoked_at = now() - interval '40 days' WHERE name LIKE 'old%' AND name::text < 'old2'`); err != nil {
		t.Fatal(err)
	}
	if err := db.Exec(ctx, `UPDATE api_keys SET expires_at = now() - interval '31 days' WHERE name LIKE 'old%' AND revoked_at IS NULL`); err != nil {
		t.Fatal(err)
	}
	if err := db.Exec(ctx, `UPDATE api_keys SET revoked_at = now() - interval '29 days' WHERE name = 'recently revoked';
		UPDATE api_keys SET expires_at = now() - interval '1 day' WHERE name = 'recently expired'`); err != nil {
		t.Fatal(err)
	}
	n, err := db.DeleteRetiredKeys(ctx, 30*24*time.Hour)
	if err != nil || n != old {
		t.Fatalf("DeleteRetiredKeys = %d, %v, want the %d retired keys", n, err, old)
	}
	keys, err := db.ListAPIKeys(ctx, u.ID, store.Page{Limit: 100})
	if err != nil || len(keys) != 3 {
		t.Fatalf("keys left = %d, %v, want 3", len(keys), err)
	}
	for _, k := range keys {
		if !keep[k.ID.String()] {
			t.Fatalf("%s was deleted or kept wrongly", k.Name)
		}
	}
	if n, err := db.DeleteRetiredKeys(ctx, 30*24*time.Hour); n != 0 || err != nil {
		t.Fatalf("DeleteRetiredKeys again = %d, %v, want nothing to do", n, err)
	}
}

// TestListAPIKeysPages: pages by (created_at, id), newest first, with one
// key more than asked for while more remain; ties of time break by ID.
func TestListAPIKeysPages(t *testing.T) {
	db := storetest.NewDB(t)
	u := MustCreateUser(t, db, "pages")
	for i := range 5 {
		MustCreateKey(t, db, u.ID, fmt.Sprint("k", i))
	}
	// Two keys created at the very same instant.
	if err := db.Exec(ctx, `UPDATE api_keys SET created_at = (SELECT min(created_at) FROM api_keys) WHERE name IN ('k3', 'k4')`); err != nil {
		t.Fatal(err)
	}
	all, err := db.ListAPIKeys(ctx, u.ID, store.Page{Limit: 100})
	if err != nil || len(all) != 5 {
		t.Fatalf("ListAPIKeys = %d, %v", len(all), err)
	}
	var got []uuid.UUID
	page := store.Page{Limit: 2}
	for {
		keys, err := db.ListAPIKeys(ctx, u.ID, page)
		if err != nil {
			t.Fatal(err)
		}
		more := len(keys) > page.Limit
		keys = keys[:min(len(keys), page.Limit)]
		for _, k := range keys {
			got = append(got, k.ID)
		}
		if !more {
			break
		}
		last := keys[len(keys)-1]
		page.After = &store.Position{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	var want []uuid.UUID
	for _, k := range all {
		want = append(want, k.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages of 2 = %v, want %v", got, want)
	}
}

// TestRecordKeyUsesInBatches: many uses are written in statements of a
// bounded size, each under the statement timeout, so that none outlasts
// it on a large table; uses not written are handed back.
func TestRecordKeyUsesInBatches(t *testing.T) {
	url := storetest.NewURL(t)
	db, err := store.Open(ctx, url, store.Options{MaxConns: 2, QueryTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u := MustCreateUser(t, db, "busy")
	plain, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	const n = 2500
	rows, err := plain.QueryContext(ctx, `INSERT INTO api_keys (user_id, name, prefix, digest)
		SELECT $1, 'k', 'rst_abcd', decode(md5(g::text) || md5((-g)::text), 'hex') FROM generate_series(1, $2::int) g
		RETURNING id`, u.ID, n)
	if err != nil {
		t.Fatal(err)
	}
	uses := map[uuid.UUID]time.Time{}
	at := time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		uses[id] = at
	}
	if err := rows.Err(); err != nil || len(uses) != n {
		t.Fatalf("%d keys inserted (%v), want %d", len(uses), err, n)
	}
	// Counts the statements that update api_keys.
	for _, stmt := range []string{
		`CREATE TABLE update_statements (n int NOT NULL)`,
		`INSERT INTO update_statements VALUES (0)`,
		`CREATE FUNCTION count_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE update_statements SET n = n + 1; RETURN NULL; END $$`,
		`CREATE TRIGGER count_update AFTER UPDATE ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION count_update()`,
	} {
		if _, err := plain.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}

	owners, unwritten, err := db.RecordKeyUses(ctx, uses)
	if err != nil || len(owners) != n || len(unwritten) != 0 {
		t.Fatalf("RecordKeyUses(%d uses) = %d owners, %d unwritten, %v; want %d, 0, nil", n, len(owners), len(unwritten), err, n)
	}
	var statements, written int
	if err := plain.QueryRowContext(ctx, `SELECT (SELECT n FROM update_statements), (SELECT count(*) FROM api_keys WHERE last_used_at = $1)`, at).Scan(&statements, &written); err != nil {
		t.Fatal(err)
	}
	if statements != 3 || written != n {
		t.Fatalf("%d uses written in %d statements (%d keys show them), want 3 statements of at most 1,000 and %d keys", n, statements, written, n)
	}

	// On a failure, what was not written comes back.
	db.Close()
	later := map[uuid.UUID]time.Time{}
	for id := range uses {
		later[id] = at.Add(time.Minute)
	}
	if _, unwritten, err := db.RecordKeyUses(ctx, later); err == nil || len(unwritten) != n {
		t.Fatalf("RecordKeyUses on a closed pool = %d unwritten, %v; want all %d and an error", len(unwritten), err, n)
	}
}
