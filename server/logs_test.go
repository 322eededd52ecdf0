package server_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"authapi/apikey"
	"authapi/server"
	"authapi/server/servertest"
)

// logLine is one request line of the server's JSON log.
type logLine map[string]any

func (l logLine) str(k string) string { s, _ := l[k].(string); return s }

// requestLines parses the log and indexes its request lines by request ID.
func requestLines(t *testing.T, logs string) map[string]logLine {
	t.Helper()
	byID := make(map[string]logLine)
	for _, raw := range strings.Split(strings.TrimSpace(logs), "\n") {
		var l logLine
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("a log line is not JSON: %q", raw)
		}
		if l.str("msg") == "request" {
			byID[l.str("request_id")] = l
		}
	}
	return byID
}

// TestAuthenticationLog runs the reference flow and the usual failures, then
// checks that every authentication attempt left a line with its outcome,
// the user when known, the client address and the request ID, and that no
// password, token, key, digest, hash or server secret appears anywhere.
func TestAuthenticationLog(t *testing.T) {
	e := newEnv(t, trustLoopbackProxy, options{server: func(c *server.Config) { c.LoginMaxFailures = 2 }})
	pepper := string(servertest.Pepper)
	n := 0
	send := func(method, path, body string, header ...string) (string, *response) {
		n++
		id := fmt.Sprintf("log-test-%d", n)
		return id, e.do(false, method, path, body, append([]string{"X-Request-ID", id, "X-Forwarded-For", "203.0.113.50"}, header...)...)
	}
	type want struct {
		id, event, reason, user string
		status                  int
	}
	var wants []want
	expect := func(id string, r *response, status int, event, reasonPrefix, user string) {
		t.Helper()
		if r.Status != status {
			t.Fatalf("request %s = %d %s, want %d", id, r.Status, r.Body, status)
		}
		wants = append(wants, want{id, event, reasonPrefix, user, status})
	}

	// The reference flow.
	password := "secureP@ss123"
	id, r := send("POST", "/v1/auth/register", `{"username":"hershel","email":"hershel@example.com","password":"`+password+`","full_name":"Hershel Moshkovitz"}`)
	userID, _ := r.JSON["id"].(string)
	expect(id, r, 200, "registered", "", userID)
	id, r = send("POST", "/v1/auth/login", `{"username":"hershel","password":"`+password+`"}`)
	expect(id, r, 200, "login_succeeded", "", userID)
	tok, _ := r.JSON["access_token"].(string)
	id, r = send("POST", "/v1/auth/api-keys", `{"name":"my-app-key"}`, "Authorization", "Bearer "+tok)
	expect(id, r, 200, "", "", userID)
	rawKey, _ := r.JSON["raw_key"].(string)
	keyID, _ := r.JSON["id"].(string)
	id, r = send("GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+tok)
	expect(id, r, 200, "", "", userID)
	id, r = send("GET", "/v1/me", "", "X-API-Key", rawKey)
	expect(id, r, 200, "", "", userID)
	id, r = send("DELETE", "/v1/auth/api-keys/"+keyID, "", "Authorization", "Bearer "+tok)
	expect(id, r, 204, "", "", userID)

	// Failures.
	id, r = send("GET", "/v1/me", "", "X-API-Key", rawKey)
	expect(id, r, 401, "auth_failed", "apiKeyAuth: unknown or revoked", "")
	id, r = send("GET", "/v1/me", "", "X-API-Key", rawKey[:20])
	expect(id, r, 401, "auth_failed", "apiKeyAuth: malformed", "")
	id, r = send("GET", "/v1/me", "")
	expect(id, r, 401, "auth_failed", "apiKeyAuth: missing", "")
	id, r = send("GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+tok[:len(tok)-4]+"AAAA")
	expect(id, r, 401, "auth_failed", "bearerAuth: invalid", "")
	id, r = send("GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+rawKey)
	expect(id, r, 401, "auth_failed", "bearerAuth: invalid", "")
	id, r = send("POST", "/v1/auth/login", `{"username":"nobody","password":"guess one"}`)
	expect(id, r, 401, "login_failed", "unknown username", "")
	for i := range 2 {
		id, r = send("POST", "/v1/auth/login", fmt.Sprintf(`{"username":"Hershel","password":"wrong guess %d"}`, i))
		expect(id, r, 401, "login_failed", "wrong password", userID)
	}
	id, r = send("POST", "/v1/auth/login", `{"username":"hershel","password":"`+password+`"}`)
	expect(id, r, 429, "login_throttled", "too many failures", "")

	logs := e.Logs.String()
	lines := requestLines(t, logs)
	for _, w := range wants {
		l, ok := lines[w.id]
		if !ok {
			t.Errorf("no log line for request %s (%s)", w.id, w.event)
			continue
		}
		if l.str("client") != "203.0.113.50" || l["status"] != float64(w.status) {
			t.Errorf("request %s: client %q, status %v; want 203.0.113.50 and %d", w.id, l.str("client"), l["status"], w.status)
		}
		if l.str("event") != w.event || !strings.HasPrefix(l.str("reason"), w.reason) {
			t.Errorf("request %s: event %q, reason %q; want %q, %q…", w.id, l.str("event"), l.str("reason"), w.event, w.reason)
		}
		if l.str("user_id") != w.user {
			t.Errorf("request %s (%s): user_id %q, want %q", w.id, w.event, l.str("user_id"), w.user)
		}
	}

	// What must never be logged.
	db, err := sql.Open("postgres", e.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var hash string
	if err := db.QueryRowContext(context.Background(), `SELECT password_hash FROM users WHERE id = $1`, userID).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	digest := apikey.NewDigester([]byte(pepper)).Digest(rawKey)
	secrets := map[string]string{
		"the password":                password,
		"a wrong guess":               "wrong guess",
		"a guess":                     "guess one",
		"the token":                   tok,
		"the token's signature":       tok[strings.LastIndex(tok, ".")+1:],
		"the raw key":                 rawKey,
		"the key's secret part":       rawKey[8:],
		"a key fragment":              rawKey[:20],
		"the key digest (hex)":        hex.EncodeToString(digest),
		"the key digest (base64)":     base64.StdEncoding.EncodeToString(digest),
		"the key digest (raw base64)": base64.RawStdEncoding.EncodeToString(digest),
		"the password hash":           hash,
		"the hash's key":              hash[strings.LastIndex(hash, "$")+1:],
		"the JWT secret":              string(testSecret),
		"the pepper":                  pepper,
	}
	for what, s := range secrets {
		if s == "" || strings.Contains(logs, s) {
			t.Errorf("the log contains %s (%q)", what, s)
		}
	}
}
