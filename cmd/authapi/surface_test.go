package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"authapi/store/storetest"
)

// TestStalledClientsAreCutOff: a client that never finishes its headers,
// all at once or trickled, loses its connection once the read-header
// timeout passes, without a response.
func TestStalledClientsAreCutOff(t *testing.T) {
	url := storetest.NewURL(t)
	s := MustRun(t, fastEnv(map[string]string{
		"AUTH_DATABASE_URL": url, "AUTH_DATABASE_LISTEN_URL": storetest.DirectURL(url), "AUTH_JWT_SECRET": secret, "AUTH_READ_HEADER_TIMEOUT": "300ms",
	}))
	addr := strings.TrimPrefix(s.URL, "http://")
	for _, tc := range []struct {
		name  string
		write func(c net.Conn)
	}{
		{"stalled", func(c net.Conn) { io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n") }},
		{"trickled", func(c net.Conn) {
			// One byte every 50 ms: each read makes progress, the total does not.
			for _, b := range []byte("POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			go tc.write(c)
			// Without the timeout the read below would wait the full 10 s.
			// net/http hangs up without a word, or with a 400 when the
			// timeout strikes inside the request line.
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the %s connection was still open after %v", tc.name, time.Since(start).Round(time.Millisecond))
			}
			if len(got) > 0 && !strings.HasPrefix(string(got), "HTTP/1.1 400 ") {
				t.Fatalf("the %s connection got %q, want it closed, at most with a 400", tc.name, got)
			}
		})
	}
}

// TestHeaderLimitsOfTheBinary: headers over the server's limit get a 431
// problem; headers too large for net/http to read at all (over twice the
// limit) get its own plain-text 431, the documented hard stop.
func TestHeaderLimitsOfTheBinary(t *testing.T) {
	url := storetest.NewURL(t)
	s := MustRun(t, fastEnv(map[string]string{"AUTH_DATABASE_URL": url, "AUTH_DATABASE_LISTEN_URL": storetest.DirectURL(url), "AUTH_JWT_SECRET": secret}))
	for _, tc := range []struct {
		size  int
		ctype string
	}{
		{4 << 10, ""}, // served
		{12 << 10, "application/problem+json"},
		{40 << 10, "text/plain; charset=utf-8"},
	} {
		req, _ := http.NewRequest("GET", s.URL+"/healthz", nil)
		req.Header.Set("X-Padding", strings.Repeat("a", tc.size))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := 431
		if tc.ctype == "" {
			want = 200
		}
		if resp.StatusCode != want || (tc.ctype != "" && resp.Header.Get("Content-Type") != tc.ctype) {
			t.Errorf("%d KiB of headers = %d %q, want %d %q", tc.size>>10, resp.StatusCode, resp.Header.Get("Content-Type"), want, tc.ctype)
		}
	}
}

// TestParkedRequestsAreAnswered: with AUTH_CONCURRENCY_PER_ADDRESS
// requests of an address in service, its next request waits for a turn,
// and when none comes within the read-header timeout it is answered 429
// problem+json with Retry-After, never met with a closed connection.
// Health checks are served all the same; once the turn is free, the
// address is served again.
func TestParkedRequestsAreAnswered(t *testing.T) {
	url := storetest.NewURL(t)
	s := MustRun(t, fastEnv(map[string]string{
		"AUTH_DATABASE_URL": url, "AUTH_DATABASE_LISTEN_URL": storetest.DirectURL(url), "AUTH_JWT_SECRET": secret,
		"AUTH_CONCURRENCY_PER_ADDRESS": "1", "AUTH_READ_HEADER_TIMEOUT": "300ms",
	}))
	// A login whose body is still coming holds the address's one turn.
	holder, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	body := `{"username":"nobody","password":"not-the-password"}`
	io.WriteString(holder, "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body[:10])
	time.Sleep(100 * time.Millisecond)

	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	resp, err := c.Get(s.URL + "/v1/me")
	if err != nil {
		t.Fatalf("a parked request: %v, want an answer", err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if took := time.Since(start); resp.StatusCode != 429 || resp.Header.Get("Content-Type") != "application/problem+json" ||
		resp.Header.Get("Retry-After") == "" || !strings.Contains(string(got), "urn:authapi:problem:rate-limited") || took < 250*time.Millisecond {
		t.Fatalf("a parked request = %d %v %s after %v, want a 429 rate-limited problem with Retry-After after the 300ms wait", resp.StatusCode, resp.Header, got, took)
	}
	if resp, err := c.Get(s.URL + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("a parked health check = %v %v, want 200", resp, err)
	}

	io.WriteString(holder, body[10:])
	holder.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(holder).ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 401 ") {
		t.Fatalf("the login holding the turn = %q %v, want its 401", line, err)
	}
	if resp, err := c.Get(s.URL + "/v1/me"); err != nil || resp.StatusCode != 401 {
		t.Fatalf("with the turn free, GET /v1/me without a key = %v %v, want 401", resp, err)
	}
}
