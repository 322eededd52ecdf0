package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

// TestRefusalMemo: a kept refusal answers only the same question, under
// the same request ID, from a trusted proxy, within its time; the memo
// forgets the oldest beyond its size.
func TestRefusalMemo(t *testing.T) {
	m := newRefusalMemo([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	ask := func(from, key string) (*requestInfo, *http.Request) {
		r := httptest.NewRequest("GET", verifyPath, nil)
		r.RemoteAddr = from + ":4000"
		r.Header.Set(apiKeyHeader, key)
		r.Header.Set("X-Forwarded-Uri", "/v1/me/x")
		return &requestInfo{id: "gw-1", idSent: true}, r
	}
	refused := newProblem(401, "invalid-api-key", "Invalid API key", "no")
	now := time.Now()
	info, r := ask("10.1.2.3", "rst_a")
	m.put(info, r, refused, now)
	for _, tc := range []struct {
		name string
		from string
		key  string
		id   string
		at   time.Duration
		kept bool
	}{
		{"the same question", "10.1.2.3", "rst_a", "gw-1", time.Second, true},
		{"another key", "10.1.2.3", "rst_b", "gw-1", time.Second, false},
		{"another request ID", "10.1.2.3", "rst_a", "gw-2", time.Second, false},
		{"a peer that is no proxy", "192.0.2.1", "rst_a", "gw-1", time.Second, false},
		{"after its time", "10.1.2.3", "rst_a", "gw-1", refusalMemoTTL + time.Millisecond, false},
	} {
		info, r := ask(tc.from, tc.key)
		info.id = tc.id
		if got := m.get(info, r, now.Add(tc.at)) != nil; got != tc.kept {
			t.Errorf("%s: kept = %v, want %v", tc.name, got, tc.kept)
		}
	}
	// A client's own request ID (no trusted peer) is never kept.
	info, r = ask("192.0.2.1", "rst_c")
	info.id = "mine"
	m.put(info, r, refused, now)
	if m.get(info, r, now) != nil {
		t.Error("a refusal asked by a client was kept")
	}
	// Bounded: the oldest go first.
	for i := range refusalMemoSize + 10 {
		info, r := ask("10.1.2.3", "rst_a")
		info.id = fmt.Sprint("fill-", i)
		m.put(info, r, refused, now)
	}
	if len(m.m) > refusalMemoSize || len(m.order) != len(m.m) {
		t.Fatalf("memo holds %d entries (order %d), want at most %d", len(m.m), len(m.order), refusalMemoSize)
	}
	info, r = ask("10.1.2.3", "rst_a")
	if m.get(info, r, now) != nil {
		t.Error("the oldest refusal survived the memo's bound")
	}
	info.id = fmt.Sprint("fill-", refusalMemoSize+9)
	if m.get(info, r, now) == nil {
		t.Error("the newest refusal was forgotten")
	}
}
