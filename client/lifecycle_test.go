package client_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"authapi/client"
)

// expectProblem checks err is a *client.Problem of status and type naming
// exactly fields, in order.
func expectProblem(tb testing.TB, what string, err error, status int, typ string, fields ...string) {
	tb.Helper()
	var p *client.Problem
	if !errors.As(err, &p) {
		tb.Fatalf("%s = %v (%T), want a *client.Problem", what, err, err)
	}
	var got []string
	for _, f := range p.Errors {
		got = append(got, f.Field)
	}
	if p.Status != status || p.Type != typ || !reflect.DeepEqual(got, fields) {
		tb.Fatalf("%s = %d %s fields %v, want %d %s fields %v", what, p.Status, p.Type, got, status, typ, fields)
	}
}

// MustListed returns the caller's key id as listed.
func MustListed(tb testing.TB, c *client.Client, id uuid.UUID) client.APIKey {
	tb.Helper()
	keys, err := c.ListAPIKeys(ctx)
	if err != nil {
		tb.Fatalf("ListAPIKeys = %v", err)
	}
	for _, k := range keys {
		if k.ID == id {
			return k
		}
	}
	tb.Fatalf("key %s is not listed", id)
	return client.APIKey{}
}

func sameTime(a, b *time.Time) bool {
	return a == nil && b == nil || a != nil && b != nil && a.Equal(*b)
}

func TestKeyExpiry(t *testing.T) {
	s := MustStart(t)
	c := MustLogin(t, MustClient(t, s.URL), "expiring")
	end := s.Clock.Now().Add(time.Hour).Truncate(time.Second)
	key, err := c.CreateAPIKey(ctx, "short", client.WithExpiry(end))
	if err != nil {
		t.Fatalf("CreateAPIKey(WithExpiry(%v)) = %v", end, err)
	}
	if !sameTime(key.ExpiresAt, &end) {
		t.Fatalf("CreateAPIKey(WithExpiry(%v)).ExpiresAt = %v", end, key.ExpiresAt)
	}
	me := c.UsingAPIKey(key.RawKey)
	if _, err := me.GetCurrentUser(ctx); err != nil {
		t.Fatalf("GetCurrentUser before the key expires = %v", err)
	}
	if k := MustListed(t, c, key.ID); !sameTime(k.ExpiresAt, &end) || !k.IsActive {
		t.Fatalf("listed before expiry: ExpiresAt %v, IsActive %v; want %v, true", k.ExpiresAt, k.IsActive, end)
	}

	s.Clock.Add(time.Hour)
	_, err = me.GetCurrentUser(ctx)
	expectProblem(t, "GetCurrentUser once the key expired", err, 401, client.TypeAPIKeyExpired)
	if k := MustListed(t, c, key.ID); k.IsActive {
		t.Fatal("an expired key is listed as active")
	}

	forever, err := c.CreateAPIKey(ctx, "forever")
	if err != nil || forever.ExpiresAt != nil {
		t.Fatalf("CreateAPIKey without an expiry = %+v, %v, want ExpiresAt nil", forever, err)
	}
	for _, tc := range []struct {
		name string
		at   time.Time
	}{
		{"in the past", s.Clock.Now().Add(-time.Minute)},
		{"beyond a year", s.Clock.Now().Add(366 * 24 * time.Hour)},
	} {
		_, err := c.CreateAPIKey(ctx, "k", client.WithExpiry(tc.at))
		expectProblem(t, "CreateAPIKey expiring "+tc.name, err, 422, client.TypeValidationFailed, "expires_at")
	}
}

func TestKeyScopes(t *testing.T) {
	c := MustLogin(t, MustClient(t, MustServer(t)), "scoper")
	all := []client.Scope{client.ScopeMeRead, client.ScopeMeWrite}
	for _, tc := range []struct {
		name   string
		opts   []client.KeyOption
		scopes []client.Scope
		me     int // GetCurrentUser's refusal, or 0
	}{
		{"every scope by default", nil, all, 0},
		{"read only", []client.KeyOption{client.WithScopes(client.ScopeMeRead)}, []client.Scope{client.ScopeMeRead}, 0},
		{"write only", []client.KeyOption{client.WithScopes(client.ScopeMeWrite)}, []client.Scope{client.ScopeMeWrite}, 403},
		{"both, the last option winning", []client.KeyOption{client.WithScopes(client.ScopeMeWrite), client.WithScopes(all...)}, all, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := c.CreateAPIKey(ctx, tc.name, tc.opts...)
			if err != nil {
				t.Fatalf("CreateAPIKey = %v", err)
			}
			if !reflect.DeepEqual(key.Scopes, tc.scopes) {
				t.Fatalf("CreateAPIKey.Scopes = %v, want %v", key.Scopes, tc.scopes)
			}
			if got := MustListed(t, c, key.ID).Scopes; !reflect.DeepEqual(got, tc.scopes) {
				t.Fatalf("listed Scopes = %v, want %v", got, tc.scopes)
			}
			_, err = c.UsingAPIKey(key.RawKey).GetCurrentUser(ctx)
			if tc.me == 0 && err != nil {
				t.Fatalf("GetCurrentUser = %v, want the user", err)
			}
			if tc.me != 0 {
				expectProblem(t, "GetCurrentUser", err, tc.me, client.TypeInsufficientScope)
			}
		})
	}
	for _, tc := range []struct {
		name   string
		scopes []client.Scope
		field  string
	}{
		{"no scope", nil, "scopes"},
		{"an unknown scope", []client.Scope{client.ScopeMeRead, "admin"}, "scopes.1"},
		{"a scope twice", []client.Scope{client.ScopeMeRead, client.ScopeMeRead}, "scopes"},
	} {
		_, err := c.CreateAPIKey(ctx, "k", client.WithScopes(tc.scopes...))
		expectProblem(t, "CreateAPIKey with "+tc.name, err, 422, client.TypeValidationFailed, tc.field)
	}
}

func TestRotateAPIKey(t *testing.T) {
	s := MustStart(t)
	c := MustLogin(t, MustClient(t, s.URL), "rotator")
	works := func(key string) error {
		_, err := c.UsingAPIKey(key).GetCurrentUser(ctx)
		return err
	}
	old, err := c.CreateAPIKey(ctx, "deploy", client.WithScopes(client.ScopeMeRead))
	if err != nil {
		t.Fatal(err)
	}
	next, err := c.RotateAPIKey(ctx, old.ID, time.Hour)
	if err != nil {
		t.Fatalf("RotateAPIKey(grace 1h) = %v", err)
	}
	if next.Name != "deploy" || !reflect.DeepEqual(next.Scopes, []client.Scope{client.ScopeMeRead}) || next.ID == old.ID || next.RawKey == old.RawKey || !next.IsActive {
		t.Fatalf("RotateAPIKey = %+v, want a new active key named deploy with scope me:read", next)
	}
	for name, key := range map[string]string{"old": old.RawKey, "new": next.RawKey} {
		if err := works(key); err != nil {
			t.Fatalf("the %s key during the grace period = %v, want it working", name, err)
		}
	}
	graceEnd := s.Clock.Now().Add(time.Hour).Truncate(time.Microsecond)
	if k := MustListed(t, c, old.ID); !sameTime(k.ExpiresAt, &graceEnd) || !k.IsActive {
		t.Fatalf("the old key is listed with ExpiresAt %v, IsActive %v; want %v, true", k.ExpiresAt, k.IsActive, graceEnd)
	}

	s.Clock.Add(time.Hour)
	expectProblem(t, "the old key after its grace", works(old.RawKey), 401, client.TypeAPIKeyExpired)
	if err := works(next.RawKey); err != nil {
		t.Fatalf("the new key after the old one's grace = %v", err)
	}

	// Without grace the old key stops at once; a fraction of a second is
	// sent rounded up.
	third, err := c.RotateAPIKey(ctx, next.ID, 0)
	if err != nil {
		t.Fatalf("RotateAPIKey(grace 0) = %v", err)
	}
	expectProblem(t, "a key rotated without grace", works(next.RawKey), 401, client.TypeAPIKeyExpired)
	if err := works(third.RawKey); err != nil {
		t.Fatalf("the key that replaced it = %v", err)
	}
	if _, err := c.RotateAPIKey(ctx, third.ID, 1500*time.Millisecond); err != nil {
		t.Fatalf("RotateAPIKey(grace 1.5s) = %v", err)
	}
	if k, want := MustListed(t, c, third.ID), s.Clock.Now().Add(2*time.Second).Truncate(time.Microsecond); !sameTime(k.ExpiresAt, &want) {
		t.Fatalf("after a grace of 1.5 s the key ends at %v, want %v", k.ExpiresAt, want)
	}

	revoked, err := c.CreateAPIKey(ctx, "revoked")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RevokeAPIKey(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	mallory := MustLogin(t, MustClient(t, s.URL), "mallory")
	live, err := c.CreateAPIKey(ctx, "live")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		c      *client.Client
		id     uuid.UUID
		grace  time.Duration
		status int
		typ    string
		fields []string
	}{
		{"an expired key", c, old.ID, 0, 404, client.TypeNotFound, nil},
		{"a revoked key", c, revoked.ID, 0, 404, client.TypeNotFound, nil},
		{"an unknown key", c, uuid.New(), 0, 404, client.TypeNotFound, nil},
		{"another user's key", mallory, live.ID, 0, 404, client.TypeNotFound, nil},
		{"with a grace over 7 days", c, live.ID, 7*24*time.Hour + time.Second, 422, client.TypeValidationFailed, []string{"grace_seconds"}},
		{"with a grace beyond int32", c, live.ID, 1 << 62, 422, client.TypeValidationFailed, []string{"grace_seconds"}},
		{"with a negative grace", c, live.ID, -time.Second, 422, client.TypeValidationFailed, []string{"grace_seconds"}},
		{"without a token", MustClient(t, s.URL), live.ID, 0, 401, client.TypeUnauthenticated, nil},
	} {
		_, err := tc.c.RotateAPIKey(ctx, tc.id, tc.grace)
		expectProblem(t, "RotateAPIKey of "+tc.name, err, tc.status, tc.typ, tc.fields...)
	}
	if err := works(live.RawKey); err != nil {
		t.Fatalf("a key whose rotations were all refused = %v, want it working", err)
	}
}

func TestKeyLastUse(t *testing.T) {
	s := MustStart(t)
	c := MustLogin(t, MustClient(t, s.URL), "user")
	key, err := c.CreateAPIKey(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	lastUsed := func() *time.Time {
		t.Helper()
		// What the server does every few seconds in the background.
		if err := s.Server.KeyUses().Write(ctx); err != nil {
			t.Fatalf("KeyUses().Write = %v", err)
		}
		return MustListed(t, c, key.ID).LastUsedAt
	}
	if got := lastUsed(); got != nil {
		t.Fatalf("LastUsedAt before any use = %v, want nil", got)
	}
	for i := range 2 {
		if _, err := c.UsingAPIKey(key.RawKey).GetCurrentUser(ctx); err != nil {
			t.Fatal(err)
		}
		minute := s.Clock.Now().UTC().Truncate(time.Minute)
		if got := lastUsed(); !sameTime(got, &minute) {
			t.Fatalf("LastUsedAt after use %d = %v, want %v (to the minute)", i+1, got, minute)
		}
		s.Clock.Add(3 * time.Minute)
	}
}

// TestKeyPages: a page at a time, or every page through the iterator.
func TestKeyPages(t *testing.T) {
	s := MustStart(t)
	c := MustLogin(t, MustClient(t, s.URL), "pagedgo")
	var ids []uuid.UUID // newest first
	for i := range 5 {
		k, err := c.CreateAPIKey(ctx, fmt.Sprint("k", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append([]uuid.UUID{k.ID}, ids...)
	}
	var paged []uuid.UUID
	cursor, pages := "", 0
	for {
		p, err := c.ListAPIKeysPage(ctx, 2, cursor)
		if err != nil {
			t.Fatalf("ListAPIKeysPage(2, %q) = %v", cursor, err)
		}
		for _, k := range p.Keys {
			paged = append(paged, k.ID)
		}
		pages++
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	if pages != 3 || !slices.Equal(paged, ids) {
		t.Fatalf("pages of 2: %d pages, %v; want 3 pages of %v", pages, paged, ids)
	}
	var iterated []uuid.UUID
	for k, err := range c.APIKeys(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		iterated = append(iterated, k.ID)
	}
	if !slices.Equal(iterated, ids) {
		t.Fatalf("APIKeys yields %v, want %v", iterated, ids)
	}
	_, err := c.ListAPIKeysPage(ctx, 0, "not-a-cursor")
	expectProblem(t, "a cursor that is not one", err, 422, "urn:authapi:problem:validation-failed", "cursor")
}
