package store

import (
	"context"
	"net"
	"time"
)

// listenDialer dials the notification connection. Its reads wait for
// notifications for as long as there are none, so it cannot have the
// pool's deadlines (deadlineDialer). Instead, on TCP, data left
// unacknowledged for listenUserTimeout (the pings, sent every second)
// ends it (TCP_USER_TIMEOUT, where the system has it): a connection that
// was dropped silently is noticed and replaced within seconds, not after
// the kernel's retransmissions, a quarter of an hour.
type listenDialer struct{ d net.Dialer }

const (
	listenUserTimeout = 10 * time.Second
	listenDialTimeout = 10 * time.Second
)

func newListenDialer() listenDialer {
	return listenDialer{d: net.Dialer{Timeout: listenDialTimeout, Control: setUserTimeout(listenUserTimeout)}}
}

func (d listenDialer) Dial(network, address string) (net.Conn, error) {
	return d.d.Dial(network, address)
}

func (d listenDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.d.DialContext(ctx, network, address)
}
