package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzRequest sends arbitrary requests (method, path, headers, body)
// through the whole server, against a real database, and holds every
// answer to the contract: never a 500, and every error a problem document.
// In headers, path and body, $TOKEN, $KEY and $KEYID stand for a valid
// access token, API key and key ID, so that inputs reach past
// authentication. Headers are "Name: value" lines.
//
// The seed corpus is in testdata/fuzz/FuzzRequest; make fuzz runs it
// for a while.
func FuzzRequest(f *testing.F) {
	e := newEnv(f)
	u := e.MustLogin("fuzzer")
	key := e.MustCreateKey(u, "fuzz")
	creds := strings.NewReplacer("$TOKEN", u.Token, "$KEYID", key.ID.String(), "$KEY", key.RawKey)
	client := &http.Client{Timeout: 30 * time.Second}

	f.Fuzz(func(t *testing.T, method, path, headers string, body []byte) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest(method, e.URL+creds.Replace(path), bytes.NewReader([]byte(creds.Replace(string(body)))))
		if err != nil {
			return // not a request net/http can send: invalid method or URL
		}
		for _, line := range strings.Split(creds.Replace(headers), "\n") {
			if name, value, ok := strings.Cut(line, ":"); ok {
				req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			if strings.Contains(err.Error(), "net/http: invalid header field") {
				return // refused by the client, never sent
			}
			t.Fatalf("%s %q: %v (did the server drop the connection?)", method, path, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%s %q with headers %q = %d %s\nlog tail:\n%s", method, path, headers, resp.StatusCode, got, tail(e.Logs.String(), 2000))
		}
		if resp.StatusCode < 400 {
			return
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("%s %q = %d with Content-Type %q, want application/problem+json", method, path, resp.StatusCode, ct)
		}
		if req.Method == http.MethodHead {
			return
		}
		var p struct {
			Type   string `json:"type"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal(got, &p); err != nil || p.Status != resp.StatusCode || !strings.HasPrefix(p.Type, "urn:authapi:problem:") {
			t.Fatalf("%s %q = %d with body %q, want a problem document of that status", method, path, resp.StatusCode, got)
		}
	})
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
