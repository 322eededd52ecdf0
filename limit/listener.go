package limit

import (
	"context"
	"net"
	"net/http"
	"net/netip"
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
// then waits, parked, for a turn (at most wait, after which the request
// goes on without one and Refused tells its handler to refuse it).
// However many connections one client opens, at most n of their requests
// take the CPU at once, and everyone else's requests are not queued
// behind them. The http.Server must take the Listener's hooks (Attach):
// ConnState ends a connection's turn when it goes idle, ConnContext lets
// Refused find the connection.
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

// Attach sets srv's ConnState and ConnContext hooks to the Listener's.
func (l *Listener) Attach(srv *http.Server) {
	srv.ConnState, srv.ConnContext = l.ConnState, l.ConnContext
}

// ConnContext is the http.Server's ConnContext hook, which lets Refused
// find a request's connection.
func (l *Listener) ConnContext(ctx context.Context, c net.Conn) context.Context {
	if lc, ok := c.(*limitedConn); ok {
		return context.WithValue(ctx, connKey{}, lc)
	}
	return ctx
}

type connKey struct{}

// Refused reports whether the request of ctx waited for a turn in vain:
// its address had n requests in service all the while. Its handler
// answers it at once without serving it.
func Refused(ctx context.Context) bool {
	c, ok := ctx.Value(connKey{}).(*limitedConn)
	if !ok {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refused
}

// Busy returns how many addresses have a connection busy or waiting.
func (l *Listener) Busy() int { return l.turns.Len() }

type limitedConn struct {
	net.Conn
	l   *Listener
	key string

	mu      sync.Mutex
	turn    func() // leaves the turn, while the connection holds one
	refused bool   // its request waited for a turn in vain
}

// Read reads, then takes a turn if the connection holds none: a
// connection waiting for its client's next request holds no turn, one
// whose request has come holds one until it is answered, or is refused.
func (c *limitedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n == 0 {
		return n, err
	}
	c.mu.Lock()
	settled := c.turn != nil || c.refused
	c.mu.Unlock()
	if settled {
		return n, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.l.wait)
	defer cancel()
	leave, werr := c.l.turns.Enter(ctx, c.key)
	c.mu.Lock()
	if werr != nil {
		// No turn in time: the request goes on, to be refused (429) rather
		// than met with a closed connection.
		c.refused = true
		c.mu.Unlock()
		return n, err
	}
	if c.turn != nil || c.refused { // a concurrent read settled it meanwhile
		c.mu.Unlock()
		leave()
	} else {
		c.turn = leave
		c.mu.Unlock()
	}
	return n, err
}

// leave ends the request's turn, or its refusal.
func (c *limitedConn) leave() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refused = false
	if c.turn != nil {
		c.turn()
		c.turn = nil
	}
}

func (c *limitedConn) Close() error {
	c.leave()
	return c.Conn.Close()
}
