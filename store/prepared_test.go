package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"authapi/store"
	"authapi/store/storetest"
)

var preparedNames = []string{"authapi_key_owner", "authapi_list_keys_page", "authapi_user_tokens"}

// TestPreparedReads runs the prepared reads on a database migrated before
// the store opened and on one migrated after (whose first connection
// predates the tables), then pulls the statements from under them as a
// pooler in transaction mode might: the reads still answer, unprepared.
func TestPreparedReads(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		url     func(testing.TB) string
		migrate bool
	}{
		{"migrated before", storetest.NewURL, false},
		{"migrated after", storetest.NewEmptyURL, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One connection, so that what it has prepared can be seen and
			// DEALLOCATEd; prepared statements need sessions, never a
			// transaction pooler (make test-pgbouncer).
			db, err := store.Open(ctx, storetest.DirectURL(tc.url(t)), store.Options{MaxConns: 1, QueryTimeout: 5 * time.Second, Prepare: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			if tc.migrate {
				if err := db.Migrate(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if names, err := db.PreparedNames(ctx); err != nil || !slices.Equal(names, preparedNames) {
				t.Fatalf("prepared statements = %v, %v, want %v", names, err, preparedNames)
			}
			u := &store.User{Username: "prepared", Email: "prepared@example.com", FullName: "P", PasswordHash: "$argon2id$x"}
			if err := db.CreateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
			k := MustCreateKey(t, db, u.ID, "k")
			check := func(t *testing.T) {
				t.Helper()
				if o, err := db.APIKeyOwner(ctx, k.Digest); err != nil || o.KeyID != k.ID || o.User.ID != u.ID || o.User.Email != u.Email || o.User.CreatedAt.IsZero() {
					t.Fatalf("APIKeyOwner = %+v, %v", o, err)
				}
				if _, err := db.APIKeyOwner(ctx, make([]byte, 32)); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("APIKeyOwner(unknown) = %v, want ErrNotFound", err)
				}
				if st, err := db.UserTokens(ctx, u.ID); err != nil || st.Generation != 0 || len(st.Ended) != 0 {
					t.Fatalf("UserTokens = %+v, %v", st, err)
				}
				if _, err := db.UserTokens(ctx, uuid.New()); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("UserTokens(unknown) = %v, want ErrNotFound", err)
				}
				if keys, err := db.ListAPIKeys(ctx, u.ID, store.Page{Limit: 100}); err != nil || len(keys) != 1 || keys[0].ID != k.ID || string(keys[0].Digest) != string(k.Digest) || keys[0].RevokedAt != nil {
					t.Fatalf("ListAPIKeys = %+v, %v", keys, err)
				}
			}
			check(t)
			if names, err := db.UsedPrepared(ctx); err != nil || !slices.Equal(names, preparedNames) {
				t.Fatalf("prepared statements that ran = %v, %v, want %v", names, err, preparedNames)
			}
			if err := db.Exec(ctx, "DEALLOCATE ALL"); err != nil {
				t.Fatal(err)
			}
			check(t)
		})
	}
}
