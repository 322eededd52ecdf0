package store_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"

	"authapi/store"
	"authapi/store/storetest"
)

// switchProxy forwards TCP connections to a PostgreSQL server until it is
// switched off: then it drops every connection and closes new ones at
// once, as a server that is down (or not yet promoted) does.
type switchProxy struct {
	ln      net.Listener
	network string
	target  string

	mu    sync.Mutex
	off   bool
	conns []net.Conn
}

func startSwitchProxy(t *testing.T, dbURL string) *switchProxy {
	t.Helper()
	cfg, err := pq.NewConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{network: "tcp", target: net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))}
	if len(cfg.Host) > 0 && cfg.Host[0] == '/' {
		p.network, p.target = "unix", cfg.Host+"/.s.PGSQL."+strconv.Itoa(int(cfg.Port))
	}
	if p.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.ln.Close(); p.set(true) })
	go func() {
		for {
			c, err := p.ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *switchProxy) serve(c net.Conn) {
	p.mu.Lock()
	off := p.off
	if !off {
		p.conns = append(p.conns, c)
	}
	p.mu.Unlock()
	if off {
		c.Close()
		return
	}
	s, err := net.Dial(p.network, p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, s)
	p.mu.Unlock()
	go func() { io.Copy(s, c); s.Close() }()
	io.Copy(c, s)
	c.Close()
}

// set switches the proxy off (dropping every connection) or on.
func (p *switchProxy) set(off bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.off = off
	if off {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// URL returns dbURL through the proxy.
func (p *switchProxy) URL(t *testing.T, dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Del("host")
	q.Del("port")
	u.RawQuery = q.Encode()
	u.Host = p.ln.Addr().String()
	return u.String()
}

// TestListenerBackSoonAfterOutage: when the database comes back after an
// outage of seconds (a failover: the old primary gone, the new one not yet
// promoted), change notifications are heard again, and the credential
// cache used, within about a second, not after reconnection attempts
// spaced ever wider apart.
func TestListenerBackSoonAfterOutage(t *testing.T) {
	direct := storetest.DirectURL(storetest.NewURL(t))
	db, err := store.Open(ctx, direct, store.Options{MaxConns: 2, QueryTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	proxy := startSwitchProxy(t, direct)
	rec := &changes{}
	sub := db.Changes(proxy.URL(t, direct), rec, slog.New(slog.DiscardHandler))
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { sub.Run(rctx); close(done) }()
	defer func() { cancel(); <-done }()
	listening := func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.listening) > 0 && rec.listening[len(rec.listening)-1]
	}
	waitUntil := func(what string, timeout time.Duration, cond func() bool) time.Duration {
		t.Helper()
		begin := time.Now()
		for !cond() {
			if time.Since(begin) > timeout {
				t.Fatalf("%s: not within %v", what, timeout)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return time.Since(begin)
	}
	waitUntil("listening", 10*time.Second, listening)

	const outage = 3200 * time.Millisecond
	proxy.set(true)
	waitUntil("the loss noticed", 5*time.Second, func() bool { return !listening() })
	time.Sleep(outage)
	proxy.set(false)
	took := waitUntil("listening again", 30*time.Second, listening)
	if took > 1500*time.Millisecond {
		t.Fatalf("notifications heard again %v after the database came back from a %v outage, want within 1.5s", took, outage)
	}
	t.Logf("notifications heard again %v after the database came back", took)
}
