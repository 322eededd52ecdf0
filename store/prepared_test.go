package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"authapi/store"
	"authapi/store/storetest"
)

// TestPreparedReads runs the prepared reads, then pulls the statements
// from under them as a pooler in transaction mode would: the reads still
// answer, unprepared from then on.
func TestPreparedReads(t *testing.T) {
	ctx := context.Background()
	// One connection, so that DEALLOCATE reaches the one that prepared.
	// Prepared statements need sessions: never through a transaction
	// pooler (make test-pgbouncer).
	db, err := store.Open(ctx, storetest.DirectURL(storetest.NewURL(t)), store.Options{MaxConns: 1, QueryTimeout: 5 * time.Second, Prepare: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if !db.PreparedOn() {
		t.Fatal("Open with Prepare did not prepare")
	}
	u := &store.User{Username: "prepared", Email: "prepared@example.com", FullName: "P", PasswordHash: "$argon2id$x"}
	if err := db.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	k := MustCreateKey(t, db, u.ID, "k")

	check := func(t *testing.T) {
		t.Helper()
		if o, err := db.APIKeyOwner(ctx, k.Digest); err != nil || o.KeyID != k.ID || o.User.ID != u.ID {
			t.Fatalf("APIKeyOwner = %+v, %v", o, err)
		}
		if _, err := db.APIKeyOwner(ctx, make([]byte, 32)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("APIKeyOwner(unknown) = %v, want ErrNotFound", err)
		}
		if ok, err := db.UserExists(ctx, u.ID); !ok || err != nil {
			t.Fatalf("UserExists = %v, %v", ok, err)
		}
		if ok, err := db.UserExists(ctx, uuid.New()); ok || err != nil {
			t.Fatalf("UserExists(unknown) = %v, %v", ok, err)
		}
		if keys, err := db.ListAPIKeys(ctx, u.ID); err != nil || len(keys) != 1 || keys[0].ID != k.ID {
			t.Fatalf("ListAPIKeys = %+v, %v", keys, err)
		}
	}
	check(t)
	if !db.PreparedOn() {
		t.Fatal("prepared statements were turned off without cause")
	}
	if err := db.Exec(ctx, "DEALLOCATE ALL"); err != nil {
		t.Fatal(err)
	}
	check(t)
	if db.PreparedOn() {
		t.Fatal("prepared statements stayed on after they vanished")
	}
}
