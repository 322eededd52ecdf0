package server_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// TestRequestIDInLogsAndProblems follows one request ID from the request
// to the response header, the problem body and the request's log line: the
// caller's when well-formed, else a generated one.
func TestRequestIDInLogsAndProblems(t *testing.T) {
	e := newEnv(t)
	generated := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for _, tc := range []struct {
		name, sent string
		want       func(string) bool
	}{
		{"well-formed", "trace-42.abc:Z_9", func(id string) bool { return id == "trace-42.abc:Z_9" }},
		{"absent", "", generated.MatchString},
		{"malformed", "no spaces allowed", generated.MatchString},
		{"too long", strings.Repeat("a", 129), generated.MatchString},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(true, "POST", "/v1/auth/login", `{"username":"nobody","password":"wrong password"}`, "X-Request-ID", tc.sent)
			id := r.Header.Get("X-Request-ID")
			if !tc.want(id) {
				t.Fatalf("X-Request-ID %q sent, %q in the response", tc.sent, id)
			}
			if p := r.Problem(); r.Status != 401 || p.RequestID == nil || *p.RequestID != id {
				t.Fatalf("problem %d %s, want 401 with request_id %q", r.Status, r.Body, id)
			}
			line := requestLine(t, e.Logs.String(), id)
			if line["status"] != float64(401) || line["route"] != "/v1/auth/login" || line["event"] != "login_failed" {
				t.Fatalf("log line of request %s = %v, want the failed login", id, line)
			}
		})
	}
}

// requestLine returns the request's log line (msg "request") whose
// request_id is id; there must be exactly one.
func requestLine(t *testing.T, logs, id string) map[string]any {
	t.Helper()
	var found []map[string]any
	for line := range strings.Lines(logs) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["request_id"] == id && m["msg"] == "request" {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d request log lines with request_id %q, want 1:\n%s", len(found), id, logs)
	}
	return found[0]
}
