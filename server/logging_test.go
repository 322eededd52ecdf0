package server_test

import (
	"strings"
	"testing"

	"authapi/server"
)

// TestQuietReads checks which requests are logged with and without
// QuietReads: authentication events, writes and failures always are.
func TestQuietReads(t *testing.T) {
	for _, quiet := range []bool{false, true} {
		e := newEnv(t, options{server: func(c *server.Config) { c.QuietReads = quiet }})
		u := e.MustLogin("reader")
		key := e.MustCreateKey(u, "k")
		before := len(e.Logs.String())
		e.do(true, "GET", "/v1/me", "", "X-API-Key", key.RawKey)
		e.do(true, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+u.Token)
		e.do(false, "GET", "/healthz", "")
		reads := e.Logs.String()[before:]
		e.do(true, "GET", "/v1/me", "", "X-API-Key", otherLast(key.RawKey))
		e.do(true, "POST", "/v1/auth/api-keys", `{"name":"k2"}`, "Authorization", "Bearer "+u.Token)
		e.do(true, "POST", "/v1/auth/login", `{"username":"reader","password":"wrong password"}`)
		e.do(false, "GET", "/nope", "")
		rest := e.Logs.String()[before+len(reads):]

		if got := strings.Count(reads, `"msg":"request"`); (got == 0) != quiet || !quiet && got != 3 {
			t.Errorf("QuietReads %v: %d lines for 3 successful reads:\n%s", quiet, got, reads)
		}
		for _, want := range []string{`"event":"auth_failed"`, `"route":"/v1/auth/api-keys","path":"/v1/auth/api-keys","status":200`, `"event":"login_failed"`, `"status":404`} {
			if !strings.Contains(rest, want) {
				t.Errorf("QuietReads %v: the log lacks %s:\n%s", quiet, want, rest)
			}
		}
	}
}

// otherLast returns raw with its last character changed.
func otherLast(raw string) string {
	last := "x"
	if strings.HasSuffix(raw, last) {
		last = "y"
	}
	return raw[:len(raw)-1] + last
}
