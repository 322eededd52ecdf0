package server_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// registration builds a register body from valid defaults and overrides.
// A value of nil drops the field.
func registration(n int, overrides map[string]any) string {
	body := map[string]any{
		"username":  fmt.Sprintf("user%d", n),
		"email":     fmt.Sprintf("user%d@example.com", n),
		"password":  "secureP@ss123",
		"full_name": "Hershel Moshkovitz",
	}
	for k, v := range overrides {
		if v == nil {
			delete(body, k)
		} else {
			body[k] = v
		}
	}
	b, _ := json.Marshal(body)
	return string(b)
}

// TestRegisterFieldRules puts each field rule of the contract on both sides
// of its boundary.
func TestRegisterFieldRules(t *testing.T) {
	e := newEnv(t)
	for i, tc := range []struct {
		name  string
		field string
		value any
		ok    bool
	}{
		{"username 3", "username", "abc", true},
		{"username 2", "username", "ab", false},
		{"username 50", "username", strings.Repeat("u", 50), true},
		{"username 51", "username", strings.Repeat("u", 51), false},
		{"username digits", "username", "123456", true},
		{"username with _", "username", "user_name", false},
		{"username with space", "username", "user name", false},
		{"username with é", "username", "usér", false},
		{"username with full-width digits", "username", "user１２", false},
		{"username empty", "username", "", false},
		{"username number", "username", 12345, false},
		{"username missing", "username", nil, false},

		{"email plain", "email", "hershel.m+tag@mail.example.com", true},
		{"email 254", "email", strings.Repeat("a", 64) + "@" + strings.Repeat("d", 63) + "." + strings.Repeat("d", 63) + "." + strings.Repeat("d", 57) + ".com", true},
		{"email 255", "email", strings.Repeat("a", 64) + "@" + strings.Repeat("d", 63) + "." + strings.Repeat("d", 63) + "." + strings.Repeat("d", 58) + ".com", false},
		{"email local part 65", "email", strings.Repeat("a", 65) + "@example.com", false},
		{"email without @", "email", "hershel.example.com", false},
		{"email without domain", "email", "hershel@", false},
		{"email without local part", "email", "@example.com", false},
		{"email with two @", "email", "a@b@example.com", false},
		{"email with display name", "email", "Hershel <hershel@example.com>", false},
		{"email with space", "email", "hers hel@example.com", false},
		{"email without a dot in the domain", "email", "hershel@localhost", false},
		{"email with a trailing dot", "email", "hershel@example.com.", false},
		{"email with consecutive dots", "email", "hers..hel@example.com", false},
		{"email with a NUL", "email", "hers\x00hel@example.com", false},
		{"email missing", "email", nil, false},

		{"password 8", "password", "12345678", true},
		{"password 7", "password", "1234567", false},
		{"password 128", "password", strings.Repeat("p", 128), true},
		{"password 129", "password", strings.Repeat("p", 129), false},
		{"password 128 two-byte", "password", strings.Repeat("é", 128), true},
		{"password 128 three-byte", "password", strings.Repeat("密", 128), true},
		{"password 128 four-byte", "password", strings.Repeat("😀", 128), true},
		{"password 129 four-byte", "password", strings.Repeat("😀", 129), false},
		{"password 8 four-byte", "password", strings.Repeat("😀", 8), true},
		{"password 7 four-byte (14 UTF-16 units)", "password", strings.Repeat("😀", 7), false},
		{"password of spaces", "password", "        ", true},
		{"password with a NUL", "password", "1234\x005678", false},
		{"password number", "password", 12345678, false},

		{"full_name 1", "full_name", "H", true},
		{"full_name 0", "full_name", "", false},
		{"full_name 200", "full_name", strings.Repeat("n", 200), true},
		{"full_name 201", "full_name", strings.Repeat("n", 201), false},
		{"full_name 200 four-byte", "full_name", strings.Repeat("😀", 200), true},
		{"full_name blank", "full_name", "   ", false},
		{"full_name tab and newline", "full_name", "\t\n", false},
		{"full_name Unicode spaces", "full_name", "\u00a0\u2003\u3000", false},
		{"full_name padded", "full_name", "  Hershel  ", true},
		{"full_name with a NUL", "full_name", "Hers\x00hel", false},
		{"full_name null", "full_name", json.RawMessage("null"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.ok, "POST", "/v1/auth/register", registration(i, map[string]any{tc.field: tc.value}))
			if tc.ok {
				if r.Status != 200 {
					t.Fatalf("register with %s = %d %s, want 200", tc.name, r.Status, r.Body)
				}
				if tc.field != "password" && tc.field != "email" && r.JSON[tc.field] != tc.value {
					t.Fatalf("register echoed %s = %q, want it as sent", tc.field, r.JSON[tc.field])
				}
				return
			}
			if r.Status != 422 || !slices.Contains(r.Fields(), tc.field) {
				t.Fatalf("register with %s = %d %s, want 422 naming %s", tc.name, r.Status, r.Body, tc.field)
			}
			if s, ok := tc.value.(string); ok && len(s) > 3 && strings.Contains(string(r.Body), s) {
				t.Fatalf("the 422 echoes the submitted value: %s", r.Body)
			}
		})
	}
}

func TestEveryInvalidFieldAtOnce(t *testing.T) {
	e := newEnv(t)
	r := e.do(false, "POST", "/v1/auth/register", `{"username":"x","email":"nope","password":"short","full_name":"  ","extra":1}`)
	if r.Status != 422 || !slices.Equal(sorted(uniq(r.Fields())), []string{"email", "full_name", "password", "username"}) {
		t.Fatalf("four invalid fields = %d %s, want 422 naming all four", r.Status, r.Body)
	}
	if d := r.Problem().Detail; d != "4 fields are invalid." {
		t.Fatalf("detail = %q", d)
	}
	r = e.do(false, "POST", "/v1/auth/register", `{}`)
	if r.Status != 422 || len(uniq(r.Fields())) != 4 {
		t.Fatalf("empty object = %d %s, want 422 naming all four fields", r.Status, r.Body)
	}
	for _, body := range []string{`[]`, `"x"`, `42`, `null`, `true`} {
		if r := e.do(false, "POST", "/v1/auth/register", body); r.Status != 422 {
			t.Errorf("body %s = %d %s, want 422", body, r.Status, r.Body)
		}
	}
}

func uniq(s []string) []string { slices.Sort(s); return slices.Compact(s) }

func TestPasswordsDifferingNearTheEnd(t *testing.T) {
	e := newEnv(t)
	base := strings.Repeat("correct horse battery staple ", 4)[:99]
	for i, tc := range []struct{ registered, tried string }{
		{base + "A" + strings.Repeat("z", 28), base + "B" + strings.Repeat("z", 28)}, // the 100th character
		{strings.Repeat("é", 127) + "a", strings.Repeat("é", 127) + "b"},             // the 128th, multibyte
		{strings.Repeat("x", 127) + "😀", strings.Repeat("x", 127) + "😁"},             // the 128th, four bytes
	} {
		name := fmt.Sprintf("near%d", i)
		r := e.do(true, "POST", "/v1/auth/register", registration(100+i, map[string]any{"username": name, "password": tc.registered}))
		if r.Status != 200 {
			t.Fatalf("register = %d %s", r.Status, r.Body)
		}
		login := func(pw string) int {
			b, _ := json.Marshal(map[string]string{"username": name, "password": pw})
			return e.do(true, "POST", "/v1/auth/login", string(b)).Status
		}
		if got := login(tc.tried); got != 401 {
			t.Errorf("case %d: login with a password differing only at the end = %d, want 401", i, got)
		}
		if got := login(tc.registered); got != 200 {
			t.Errorf("case %d: login with the registered password = %d, want 200", i, got)
		}
	}
}

func TestTextPostgreSQLCannotStore(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("texter")
	for _, tc := range []struct {
		name, path, body, field string
	}{
		{"invalid UTF-8 in full_name", "/v1/auth/register", "{\"username\":\"bad1\",\"email\":\"bad1@example.com\",\"password\":\"secureP@ss123\",\"full_name\":\"a\xffb\"}", "full_name"},
		{"invalid UTF-8 in username", "/v1/auth/register", "{\"username\":\"bad\xc3\",\"email\":\"bad2@example.com\",\"password\":\"secureP@ss123\",\"full_name\":\"ab\"}", "username"},
		{"escaped NUL in full_name", "/v1/auth/register", `{"username":"bad3","email":"bad3@example.com","password":"secureP@ss123","full_name":"a\u0000b"}`, "full_name"},
		{"lone surrogate in password", "/v1/auth/register", `{"username":"bad4","email":"bad4@example.com","password":"secureP@ss123\udc00","full_name":"ab"}`, "password"},
		{"reversed surrogates", "/v1/auth/register", `{"username":"bad5","email":"bad5@example.com","password":"secureP@ss123\udc00\ud800","full_name":"ab"}`, "password"},
		{"NUL in a login username", "/v1/auth/login", `{"username":"tex\u0000ter","password":"secureP@ss123"}`, "username"},
		{"invalid UTF-8 in a login password", "/v1/auth/login", "{\"username\":\"texter\",\"password\":\"\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe\"}", "password"},
		{"NUL in a key name", "/v1/auth/api-keys", `{"name":"a\u0000"}`, "name"},
		{"invalid UTF-8 in a key name", "/v1/auth/api-keys", "{\"name\":\"\xed\xa0\x80\"}", "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(false, "POST", tc.path, tc.body, "Authorization", "Bearer "+u.Token)
			if r.Status != 422 || !slices.Contains(r.Fields(), tc.field) {
				t.Fatalf("%s = %d %s, want 422 naming %s", tc.name, r.Status, r.Body, tc.field)
			}
		})
	}
	// A correctly escaped pair is a real character, and fine.
	r := e.do(true, "POST", "/v1/auth/register", `{"username":"pair","email":"pair@example.com","password":"secureP@ss123","full_name":"\ud83d\ude00"}`)
	if r.Status != 200 || r.JSON["full_name"] != "😀" {
		t.Fatalf("an escaped surrogate pair = %d %s, want 200 with the emoji", r.Status, r.Body)
	}
}

func TestKeyNameRules(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("namer")
	for _, tc := range []struct {
		name string
		body string
		ok   bool
	}{
		{"1", `{"name":"k"}`, true},
		{"100", `{"name":"` + strings.Repeat("k", 100) + `"}`, true},
		{"100 four-byte", `{"name":"` + strings.Repeat("🔑", 100) + `"}`, true},
		{"101", `{"name":"` + strings.Repeat("k", 101) + `"}`, false},
		{"empty", `{"name":""}`, false},
		{"missing", `{}`, false},
		{"number", `{"name":5}`, false},
		{"duplicate names are fine", `{"name":"k"}`, true},
		{"unknown fields are ignored", `{"name":"k2","colour":"blue","user_id":"someone else"}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.ok, "POST", "/v1/auth/api-keys", tc.body, "Authorization", "Bearer "+u.Token)
			if tc.ok && r.Status != 200 || !tc.ok && (r.Status != 422 || !slices.Equal(r.Fields(), []string{"name"})) {
				t.Fatalf("create key %s = %d %s", tc.body, r.Status, r.Body)
			}
		})
	}
}

func TestLoginFieldRules(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ body string }{
		{`{"password":"secureP@ss123"}`},
		{`{"username":"someone"}`},
		{`{"username":"","password":"secureP@ss123"}`},
		{`{"username":"someone","password":""}`},
		{`{"username":5,"password":"secureP@ss123"}`},
		{`{"username":"someone","password":"` + strings.Repeat("p", 129) + `"}`},
	} {
		if r := e.do(false, "POST", "/v1/auth/login", tc.body); r.Status != 422 {
			t.Errorf("login %s = %d %s, want 422", tc.body, r.Status, r.Body)
		}
	}
}
