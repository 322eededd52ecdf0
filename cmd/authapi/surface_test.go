package main

import (
	"errors"
	"io"
	"net"
	"net/http"
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
