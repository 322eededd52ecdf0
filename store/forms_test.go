package store_test

import (
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/pressly/goose/v3"

	"authapi/account"
	"authapi/migrations"
	"authapi/store"
	"authapi/store/storetest"
)

// TestStoreAppliesTheAccountRules: whatever reaches the store, it writes
// nothing the API would refuse.
func TestStoreAppliesTheAccountRules(t *testing.T) {
	db := storetest.NewDB(t)
	owner := MustCreateUser(t, db, "ruled")
	for _, tc := range []struct {
		name  string
		user  store.User
		field string
	}{
		{"a blank full name", store.User{Username: "blank", Email: "blank@example.com", FullName: "   ", PasswordHash: hash}, "full_name"},
		{"a look-alike email", store.User{Username: "cyr", Email: "cyr@ex\u0430mple.com", FullName: "C", PasswordHash: hash}, "email"},
		{"a quoted local part", store.User{Username: "quoted", Email: `"x@example.com"@evil.test`, FullName: "Q", PasswordHash: hash}, "email"},
		{"a non-ASCII username", store.User{Username: "tw\u00efn", Email: "twin@example.com", FullName: "T", PasswordHash: hash}, "username"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rule *account.Error
			if err := db.CreateUser(ctx, &tc.user); !errors.As(err, &rule) || rule.Field != tc.field {
				t.Fatalf("CreateUser = %v, want an account rule on %s", err, tc.field)
			}
		})
	}
	for _, tc := range []struct {
		name   string
		key    *store.APIKey
		field  string
		scopes []string
	}{
		{"duplicate scopes", newDigestKey(owner.ID), "scopes", []string{"me:read", "me:read"}},
		{"an unknown scope", newDigestKey(owner.ID), "scopes", []string{"me:admin"}},
		{"an empty name", newDigestKey(owner.ID), "name", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.key.Name, tc.key.Scopes = "k", tc.scopes
			if tc.field == "name" {
				tc.key.Name = ""
			}
			var rule *account.Error
			if err := db.CreateAPIKey(ctx, tc.key, tc.key.CreatedAt, 0, store.Actor{}); !errors.As(err, &rule) || rule.Field != tc.field {
				t.Fatalf("CreateAPIKey = %v, want an account rule on %s", err, tc.field)
			}
		})
	}
}

// TestStoredFormsMigration: rows stored before the rules are repaired where
// that is unambiguous; an email that cannot be repaired leaves its
// constraint NOT VALID, and the constraints hold for every new write,
// whatever path it takes.
func TestStoredFormsMigration(t *testing.T) {
	url := storetest.NewEmptyURL(t)
	plain, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, plain, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := plain.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// What the twin-member bug let through.
	blank, bad := uuid.New(), uuid.New()
	exec(`INSERT INTO users (id, username, email, full_name, password_hash) VALUES
		($1, 'blank', 'blank@example.com', '   ', $3), ($2, 'badmail', '"x@y.z"@evil.test', 'B', $3)`, blank, bad, hash)
	exec(`INSERT INTO api_keys (user_id, name, prefix, digest, scopes) VALUES ($1, 'k', 'rst_abcd', $2, '{me:read,me:write,me:read}')`,
		blank, make([]byte, 32))

	db, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("Migrate over rows that break the rules = %v, want it done", err)
	}
	var fullName, scopes string
	if err := plain.QueryRowContext(ctx, `SELECT full_name FROM users WHERE id = $1`, blank).Scan(&fullName); err != nil || fullName != "blank" {
		t.Fatalf("blank full name after the migration = %q (%v), want the username", fullName, err)
	}
	if err := plain.QueryRowContext(ctx, `SELECT scopes::text FROM api_keys WHERE user_id = $1`, blank).Scan(&scopes); err != nil || scopes != "{me:read,me:write}" {
		t.Fatalf("scopes after the migration = %q (%v), want each once", scopes, err)
	}
	validated := map[string]bool{}
	rows, err := plain.QueryContext(ctx, `SELECT conname, convalidated FROM pg_constraint
		WHERE conname IN ('users_email_shape', 'users_full_name_not_blank', 'api_keys_scopes_distinct')`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		var ok bool
		if err := rows.Scan(&name, &ok); err != nil {
			t.Fatal(err)
		}
		validated[name] = ok
	}
	rows.Close()
	if len(validated) != 3 || validated["users_email_shape"] || !validated["users_full_name_not_blank"] || !validated["api_keys_scopes_distinct"] {
		t.Fatalf("constraints validated: %v, want all but the email's, which a stored row breaks", validated)
	}
	// Every new write is held to the forms, even one that skips the store.
	for _, q := range []string{
		`INSERT INTO users (username, email, full_name, password_hash) VALUES ('new1', 'a@b', 'N', '` + hash + `')`,
		`INSERT INTO users (username, email, full_name, password_hash) VALUES ('new2', 'new2@example.com', E'\u3000', '` + hash + `')`,
		`UPDATE api_keys SET scopes = '{me:write,me:write}'`,
	} {
		if _, err := plain.ExecContext(ctx, q); err == nil || !strings.Contains(err.Error(), "check constraint") {
			t.Errorf("%s = %v, want a check violation", q, err)
		}
	}
	// Updating the row that breaks a rule is a refusal naming the field,
	// not a failure of the server's.
	var rule *account.Error
	if err := db.SetPasswordHash(ctx, bad, hash); !errors.As(err, &rule) || rule.Field != "email" {
		t.Fatalf("SetPasswordHash on a row with a bad email = %v, want an account rule on email", err)
	}
}
