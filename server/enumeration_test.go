package server_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestRegistrationRevealsOnlyTheConflict: a 409 names the taken field and
// nothing of the account that holds it.
func TestRegistrationRevealsOnlyTheConflict(t *testing.T) {
	e := newEnv(t)
	holder := e.MustRegister("holder")
	for _, tc := range []struct {
		name, username, email string
		fields                []string
	}{
		{"email taken", "newcomer", "HOLDER@example.com", []string{"email"}},
		{"username taken", "Holder", "newcomer@example.com", []string{"username"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(true, "POST", "/v1/auth/register", fmt.Sprintf(`{"username":%q,"email":%q,"password":"secureP@ss123","full_name":"New Comer"}`, tc.username, tc.email))
			if r.Status != 409 || !slices.Equal(r.Fields(), tc.fields) {
				t.Fatalf("register %s = %d %s, want 409 naming %v", tc.name, r.Status, r.Body, tc.fields)
			}
			body := strings.ToLower(string(r.Body))
			secrets := []string{holder.ID, "full name of holder", "argon2"}
			if tc.fields[0] == "email" {
				secrets = append(secrets, `"holder"`) // the holder's username
			} else {
				secrets = append(secrets, "holder@example.com")
			}
			for _, s := range secrets {
				if strings.Contains(body, s) {
					t.Fatalf("the 409 for %s reveals %q of the account holding it: %s", tc.name, s, r.Body)
				}
			}
		})
	}
}
