package limit_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"authapi/limit"
)

// busyServer serves on a Listener limited to n busy connections per
// address; each request is busy for hold, and the most requests busy at
// once, per client address, are recorded.
type busyServer struct {
	url  string
	mu   sync.Mutex
	busy map[string]int
	most map[string]int
}

func startBusy(t *testing.T, n int, wait, hold time.Duration, exempt func(netip.Addr) bool) *busyServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := limit.NewListener(ln, n, wait, exempt)
	b := &busyServer{url: "http://" + ln.Addr().String(), busy: map[string]int{}, most: map[string]int{}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if limit.Refused(r.Context()) {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		addr, _, _ := net.SplitHostPort(r.RemoteAddr)
		b.mu.Lock()
		b.busy[addr]++
		b.most[addr] = max(b.most[addr], b.busy[addr])
		b.mu.Unlock()
		time.Sleep(hold)
		b.mu.Lock()
		b.busy[addr]--
		b.mu.Unlock()
		io.WriteString(w, "ok")
	})}
	l.Attach(srv)
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return b
}

// from is a client whose connections leave from addr.
func from(addr string, keepAlive bool) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 100}}
}

func get(c *http.Client, url string) error {
	_, err := status(c, url)
	return err
}

// status sends a GET and returns its answer's status code, or an error
// when none is 200 or 429.
func status(c *http.Client, url string) (int, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err = io.ReadAll(resp.Body); err != nil {
		return 0, err
	}
	if resp.StatusCode != 200 && resp.StatusCode != 429 {
		return 0, errors.New(resp.Status)
	}
	return resp.StatusCode, nil
}

// burst sends n requests at once from c and returns how many were
// served (200).
func burst(c *http.Client, url string, n int) int {
	return burstStatus(c, url, n)[200]
}

// burstStatus sends n requests at once from c and counts their answers'
// status codes (0: no answer).
func burstStatus(c *http.Client, url string, n int) map[int]int {
	var mu sync.Mutex
	got := map[int]int{}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			code, _ := status(c, url)
			mu.Lock()
			got[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return got
}

func TestListenerBoundsBusyConnectionsPerAddress(t *testing.T) {
	b := startBusy(t, 2, 5*time.Second, 100*time.Millisecond, nil)
	if ok := burst(from("127.0.0.1", false), b.url, 8); ok != 8 {
		t.Fatalf("%d of 8 requests answered, want all (the others wait their turn)", ok)
	}
	if got := b.most["127.0.0.1"]; got != 2 {
		t.Fatalf("at most %d requests of one address busy at once, want 2", got)
	}
	// Another address is not behind the first one's queue.
	var wg sync.WaitGroup
	wg.Go(func() { burst(from("127.0.0.1", false), b.url, 10) }) // 500ms of turns
	time.Sleep(10 * time.Millisecond)
	start := time.Now()
	if err := get(from("127.0.0.2", false), b.url); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 350*time.Millisecond {
		t.Fatalf("another address's request took %v behind the first's 10, want about one hold (100ms), not their 500ms", took)
	}
	wg.Wait()
}

func TestListenerExempt(t *testing.T) {
	b := startBusy(t, 2, 5*time.Second, 100*time.Millisecond, func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.1") })
	burst(from("127.0.0.1", false), b.url, 6)
	if got := b.most["127.0.0.1"]; got < 3 {
		t.Fatalf("an exempt address had at most %d busy at once, want more than the limit of 2", got)
	}
}

// TestListenerIdleConnectionsHoldNoTurn: kept-alive connections waiting
// for their client's next request hold no turn.
func TestListenerIdleConnectionsHoldNoTurn(t *testing.T) {
	b := startBusy(t, 1, 200*time.Millisecond, time.Millisecond, nil)
	c := from("127.0.0.1", true)
	if ok := burst(c, b.url, 4); ok != 4 { // four connections, now idle in c's pool
		t.Fatalf("%d of 4 answered", ok)
	}
	for i := range 5 {
		if err := get(from("127.0.0.1", false), b.url); err != nil {
			t.Fatalf("request %d on a new connection, with idle ones open: %v", i, err)
		}
	}
}

// TestListenerGivesUp: a request that waits longer than the limit's wait
// for a turn goes on without one, and its handler is told to refuse it:
// it gets an answer, never a closed connection. The connection's next
// request waits for a turn again, and is served once one is free.
func TestListenerGivesUp(t *testing.T) {
	b := startBusy(t, 1, 50*time.Millisecond, 500*time.Millisecond, nil)
	if got := burstStatus(from("127.0.0.1", true), b.url, 3); got[200] != 1 || got[429] != 2 {
		t.Fatalf("3 requests with one turn busy for 500ms and a 50ms wait: %v answers by status (0: none), want one 200 and two 429", got)
	}
	if got := b.most["127.0.0.1"]; got != 1 {
		t.Fatalf("at most %d requests served at once, want 1: a refused one was served", got)
	}

	// One kept-alive connection, refused while another holds the turn,
	// then asked again on the same connection once the turn is free.
	one := from("127.0.0.1", true)
	one.Transport.(*http.Transport).MaxConnsPerHost = 1
	var reused []bool
	trace := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) },
	})
	ask := func() int {
		req, _ := http.NewRequestWithContext(trace, "GET", b.url, nil)
		resp, err := one.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	held := make(chan error)
	go func() { held <- get(from("127.0.0.1", false), b.url) }()
	time.Sleep(100 * time.Millisecond)
	if code := ask(); code != 429 {
		t.Fatalf("with the turn held, the request = %d, want 429", code)
	}
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if code := ask(); code != 200 || !slices.Equal(reused, []bool{false, true}) {
		t.Fatalf("with the turn free, the refused connection's next request = %d (connections reused: %v), want 200 on the same connection", code, reused)
	}
}

func TestAddressKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":            "192.0.2.1",
		"::ffff:192.0.2.1":     "192.0.2.1",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
	} {
		if got := limit.AddressKey(netip.MustParseAddr(in)); got != want {
			t.Errorf("AddressKey(%s) = %s, want %s", in, got, want)
		}
	}
}
