package server

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// A gateway's auth_request keeps only the status of a verification, so a
// gateway asks again, under the same request ID, for the body of a
// refusal (deploy/nginx). The second question must get the first answer:
// asked afresh it would count a second failure against the client, and a
// limit that refilled in between would let it through, telling the
// client 200 with nothing behind it. So a refusal of GET /v1/auth/verify
// asked by a trusted proxy under a request ID of its own is kept for
// refusalMemoTTL, and the same question under that ID gets it again
// before any limit or lookup. Only refusals are kept: replaying one can
// never admit a request. The gateway asks again at once; the short TTL
// keeps a client that retries under the same request ID (through a
// gateway that passes it on) from meeting an old refusal.
type refusalMemo struct {
	trusted []netip.Prefix
	mu      sync.Mutex
	m       map[string]memoEntry
	order   []string // insertion order, to forget the oldest first
}

type memoEntry struct {
	question string // the headers the answer was for
	p        *Problem
	at       time.Time
}

const (
	refusalMemoTTL  = 2 * time.Second
	refusalMemoSize = 4096
)

func newRefusalMemo(trusted []netip.Prefix) *refusalMemo {
	return &refusalMemo{trusted: trusted, m: make(map[string]memoEntry)}
}

// applies reports whether a request may have its refusal kept or
// replayed: it names its request ID and comes from a trusted proxy.
func (m *refusalMemo) applies(info *requestInfo, req *http.Request) bool {
	if !info.idSent || len(m.trusted) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(req.RemoteAddr)
	if err != nil {
		return false
	}
	for _, p := range m.trusted {
		if p.Contains(ap.Addr().Unmap()) {
			return true
		}
	}
	return false
}

// question is what a verification's answer depends on.
func question(req *http.Request) string {
	h := req.Header
	return strings.Join([]string{h.Get(apiKeyHeader), h.Get("X-Forwarded-Method"), h.Get("X-Original-Method"),
		h.Get("X-Forwarded-Uri"), h.Get("X-Original-URI")}, "\x00")
}

// put keeps p, the answer to req, under the request ID the request
// carried (none: nothing to keep).
func (m *refusalMemo) put(info *requestInfo, req *http.Request, p *Problem, now time.Time) {
	if info.replayed || !m.applies(info, req) {
		return
	}
	id := info.id
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.m[id]; !ok {
		for len(m.order) >= refusalMemoSize || len(m.order) > 0 && now.Sub(m.m[m.order[0]].at) > refusalMemoTTL {
			delete(m.m, m.order[0])
			m.order = m.order[1:]
		}
		m.order = append(m.order, id)
	}
	m.m[id] = memoEntry{question: question(req), p: p, at: now}
}

// get returns the refusal kept for the request's ID and question, if any.
func (m *refusalMemo) get(info *requestInfo, req *http.Request, now time.Time) *Problem {
	if !m.applies(info, req) {
		return nil
	}
	m.mu.Lock()
	e, ok := m.m[info.id]
	m.mu.Unlock()
	if !ok || now.Sub(e.at) > refusalMemoTTL || e.question != question(req) {
		return nil
	}
	return e.p
}
