package store_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/url"
	"strconv"
	"testing"
	"time"

	"authapi/store"
)

// stalledServer accepts PostgreSQL connections and then stops answering,
// as a frozen database host or a network partition does: after the startup
// packet (handshake false) or after completing the handshake (true). It
// returns a URL for it.
func stalledServer(t *testing.T, handshake bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go serveStalled(c, handshake)
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return (&url.URL{Scheme: "postgres", User: url.User("authapi"), Host: "127.0.0.1:" + port, Path: "/authapi",
		RawQuery: "sslmode=disable"}).String()
}

func serveStalled(c net.Conn, handshake bool) {
	var n [4]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return
	}
	if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(n[:]))-4); err != nil {
		return
	}
	if handshake {
		// AuthenticationOk, then ReadyForQuery (idle).
		c.Write([]byte{'R', 0, 0, 0, 8, 0, 0, 0, 0, 'Z', 0, 0, 0, 5, 'I'})
	}
	io.Copy(io.Discard, c) // read whatever comes, answer nothing
}

// TestStalledDatabaseFailsFast checks that a database that stops answering
// fails the caller shortly after the statement timeout, rather than holding
// it (and an HTTP request) until the operating system gives up on the
// connection, which for a frozen host can be never.
func TestStalledDatabaseFailsFast(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, handshake := range []bool{false, true} {
		t.Run("handshake="+strconv.FormatBool(handshake), func(t *testing.T) {
			// stalledServer may call t.Fatal, which must not run in the
			// goroutine below.
			stalled := stalledServer(t, handshake)
			start := time.Now()
			done := make(chan error, 1)
			go func() {
				db, err := store.Open(ctx, stalled, store.Options{QueryTimeout: timeout})
				if err == nil {
					db.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, store.ErrUnavailable) {
					t.Fatalf("Open(stalled server) = %v, want ErrUnavailable", err)
				}
				if took := time.Since(start); took > timeout+2*time.Second {
					t.Fatalf("Open(stalled server) took %v, want about the statement timeout %v", took, timeout)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("Open(stalled server) still waiting after 15s, with a statement timeout of %v", timeout)
			}
		})
	}
}
