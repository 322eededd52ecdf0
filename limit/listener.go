package limit

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"
)

// AddressKey is the unit a client address counts as: an IPv4 address, or
// an IPv6 /64, which one subscriber usually holds whole.
func AddressKey(addr netip.Addr) string {
	addr = addr.Unmap()
	if addr.Is4() {
		return addr.String()
	}
	p, _ := addr.Prefix(64)
	return p.String()
}

// Listener lets at most n of a client address's connections be busy with
// a request at once (the TCP peer's address, by AddressKey): a connection
// whose address has n busy has its next request read from the network,
// then waits, parked, for a turn (at most wait, after which the connection
// is closed). However many connections one client opens, at most n of
// their requests take the CPU at once, and everyone else's requests are
// not queued behind them. The http.Server's ConnState must call
// Listener.ConnState, which ends a connection's turn when it goes idle.
type Listener struct {
	net.Listener
	wait   time.Duration
	exempt func(netip.Addr) bool
	turns  Gate
}

// NewListener limits ln's connections to n busy per address; exempt
// addresses (proxies, which speak for many clients) are not limited.
func NewListener(ln net.Listener, n int, wait time.Duration, exempt func(netip.Addr) bool) *Listener {
	return &Listener{Listener: ln, wait: wait, exempt: exempt, turns: Gate{Size: n}}
}

// Accept returns the next connection, limited unless its address is
// exempt.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil || l.exempt != nil && l.exempt(ap.Addr().Unmap()) {
		return c, nil
	}
	return &limitedConn{Conn: c, l: l, key: AddressKey(ap.Addr())}, nil
}

// ConnState is the http.Server's ConnState hook: a connection's turn ends
// when its request is answered (idle), or the connection goes.
func (l *Listener) ConnState(c net.Conn, state http.ConnState) {
	if lc, ok := c.(*limitedConn); ok && (state == http.StateIdle || state == http.StateClosed || state == http.StateHijacked) {
		lc.leave()
	}
}

// Busy returns how many addresses have a connection busy or waiting.
func (l *Listener) Busy() int { return l.turns.Len() }

type limitedConn struct {
	net.Conn
	l   *Listener
	key string

	mu   sync.Mutex
	turn func() // leaves the turn, while the connection holds one
}

// Read reads, then takes a turn if the connection holds none: a
// connection waiting for its client's next request holds no turn, one
// whose request has come holds one until it is answered.
func (c *limitedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n == 0 {
		return n, err
	}
	c.mu.Lock()
	holding := c.turn != nil
	c.mu.Unlock()
	if holding {
		return n, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.l.wait)
	defer cancel()
	leave, werr := c.l.turns.Enter(ctx, c.key)
	if werr != nil {
		// No turn in time: the client has that many requests waiting.
		c.Conn.Close()
		return 0, os.ErrDeadlineExceeded
	}
	c.mu.Lock()
	if c.turn != nil { // a concurrent read took one meanwhile
		c.mu.Unlock()
		leave()
	} else {
		c.turn = leave
		c.mu.Unlock()
	}
	return n, err
}

func (c *limitedConn) leave() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.turn != nil {
		c.turn()
		c.turn = nil
	}
}

func (c *limitedConn) Close() error {
	c.leave()
	return c.Conn.Close()
}
