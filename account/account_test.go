package account_test

import (
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"authapi"
	"authapi/account"
)

// TestRulesMatchTheSpec puts values on both sides of each rule and checks
// that the account package and openapi.yaml's schema agree on every one:
// the domain's rules and the contract cannot drift apart.
func TestRulesMatchTheSpec(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(authapi.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	prop := func(schema, name string) *openapi3.Schema {
		s := *doc.Components.Schemas[schema].Value.Properties[name].Value
		s.Format = "" // formats are the server's to check; the shape is the schema's
		return &s
	}
	long := func(n int) string { return strings.Repeat("a", n) }
	for _, tc := range []struct {
		field  string
		schema *openapi3.Schema
		check  func(string) error
		values []string
	}{
		{"username", prop("RegisterRequest", "username"), account.CheckUsername, []string{
			"abc", "ab", long(50), long(51), "user_name", "usér", "user１２", "", "Hershel99",
		}},
		{"email", prop("RegisterRequest", "email"), account.CheckEmail, []string{
			"a@b.co", "hershel.m+tag@mail.example.com", "a@b", "@b.co", "a@", "a b@c.de", "a..b@c.de", ".a@c.de",
			"\"x@example.com\"@evil.test", "w\u0430@example.com", "a@-b.co", "a@b-.co", "a@b.c-",
			"Hershel <h@example.com>", long(64) + "@" + long(63) + "." + long(63) + "." + long(57) + ".com",
			long(64) + "@" + long(63) + "." + long(63) + "." + long(58) + ".com",
		}},
		{"full_name", prop("RegisterRequest", "full_name"), account.CheckFullName, []string{
			"W", "", " ", "   ", "\t\n", "\u00a0", "\u3000", "\ufeff", "\u2003x", " a ", long(200), long(201),
			strings.Repeat("😀", 200), strings.Repeat("😀", 201), "a\x00b", "\u200b",
		}},
		{"name", prop("CreateAPIKeyRequest", "name"), account.CheckKeyName, []string{
			"k", "", " ", long(100), long(101), strings.Repeat("密", 100), "a\x00",
		}},
	} {
		for _, v := range tc.values {
			specOK := tc.schema.VisitJSON(v) == nil
			gotErr := tc.check(v)
			if (gotErr == nil) != specOK {
				t.Errorf("%s %q: account says %v, the spec says ok=%v", tc.field, v, gotErr, specOK)
			}
			if e, ok := gotErr.(*account.Error); gotErr != nil && (!ok || e.Field != tc.field || len(v) > 3 && strings.Contains(e.Message, v)) {
				t.Errorf("%s %q: error %#v, want an *account.Error naming %s without the value", tc.field, v, gotErr, tc.field)
			}
		}
	}
}

// TestEmailLocalPart: RFC 5321's 64 characters, which the spec states in
// words and the server's email format checks.
func TestEmailLocalPart(t *testing.T) {
	for local, ok := range map[string]bool{strings.Repeat("a", 64): true, strings.Repeat("a", 65): false} {
		if err := account.CheckEmail(local + "@example.com"); (err == nil) != ok {
			t.Errorf("CheckEmail(%d-character local part) = %v, want ok %v", len(local), err, ok)
		}
	}
}

func TestCheckScopes(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(authapi.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	schema := doc.Components.Schemas["CreateAPIKeyRequest"].Value.Properties["scopes"].Value
	for _, tc := range [][]string{
		{"me:read"}, {"me:read", "me:write"}, {"me:write", "me:read"}, {}, {"me:read", "me:read"}, {"me:admin"},
		{"ME:READ"}, {"me:read", "me:write", "me:read"},
	} {
		list := make([]any, len(tc))
		for i, s := range tc {
			list[i] = s
		}
		specOK := schema.VisitJSON(list) == nil
		if err := account.CheckScopes(tc); (err == nil) != specOK {
			t.Errorf("CheckScopes(%q) = %v, the spec says ok=%v", tc, err, specOK)
		}
	}
	if err := account.CheckScopes(make([]string, account.MaxScopes+1)); err == nil {
		t.Error("CheckScopes(too many) = nil")
	}
}
