// Package account holds the rules every stored account and API key obeys,
// whatever the HTTP layer lets through: the store checks them before each
// write, and the database's CHECK constraints hold the same forms. They
// are the field rules of openapi.yaml, which a test keeps in step.
package account

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// Error is a field that breaks a rule.
type Error struct {
	Field   string // as named in the API: username, email, full_name, name, scopes
	Message string // for a person; never the value
}

func (e *Error) Error() string { return "account: " + e.Field + " " + e.Message }

// Scopes are every scope an API key can have, in order.
var Scopes = []string{"me:read", "me:write"}

// MaxScopes bounds a key's scope list (the spec's maxItems).
const MaxScopes = 10

var (
	usernameShape = regexp.MustCompile(`^[A-Za-z0-9]{3,50}$`)
	// A dot-atom local part, then a domain of at least two labels (the
	// spec's pattern).
	emailShape = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
)

// CheckUsername: 3 to 50 ASCII letters and digits.
func CheckUsername(s string) error {
	if !usernameShape.MatchString(s) {
		return &Error{"username", "must be 3 to 50 ASCII letters and digits"}
	}
	return nil
}

// CheckEmail: an address local@domain, at most 254 characters, with a
// local part of at most 64 (RFC 5321).
func CheckEmail(s string) error {
	local, _, _ := strings.Cut(s, "@")
	if len(s) > 254 || len(local) > 64 || !emailShape.MatchString(s) {
		return &Error{"email", "must be a valid email address"}
	}
	return nil
}

// CheckFullName: 1 to 200 characters, not only white space, no NUL.
func CheckFullName(s string) error {
	if err := checkText("full_name", s, 200); err != nil {
		return err
	}
	if strings.TrimFunc(s, IsSpace) == "" {
		return &Error{"full_name", "must contain a character other than white space"}
	}
	return nil
}

// CheckKeyName: 1 to 100 characters, no NUL.
func CheckKeyName(s string) error { return checkText("name", s, 100) }

// CheckScopes: at least one and at most MaxScopes known scopes, none twice.
func CheckScopes(scopes []string) error {
	if len(scopes) == 0 || len(scopes) > MaxScopes {
		return &Error{"scopes", fmt.Sprintf("must list 1 to %d scopes", MaxScopes)}
	}
	for i, sc := range scopes {
		if !slices.Contains(Scopes, sc) {
			return &Error{"scopes", "must be one of: " + strings.Join(Scopes, ", ")}
		}
		if slices.Contains(scopes[:i], sc) {
			return &Error{"scopes", "must not list a scope twice"}
		}
	}
	return nil
}

// checkText: valid UTF-8, 1 to max code points, no NUL.
func checkText(field, s string, max int) error {
	if n := utf8.RuneCountInString(s); n < 1 || n > max {
		return &Error{field, fmt.Sprintf("must be 1 to %d characters", max)}
	}
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return &Error{field, "contains text that cannot be stored (NUL or invalid UTF-8)"}
	}
	return nil
}

// IsSpace reports whether r is white space as the spec's full_name
// pattern counts it: Unicode's White_Space characters, and the byte order
// mark (U+FEFF), which shows as nothing.
func IsSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF:
		return true
	}
	return 0x2000 <= r && r <= 0x200A
}
