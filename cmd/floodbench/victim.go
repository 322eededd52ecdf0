package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"authapi/internal/bench"
)

// client speaks to the server from one loopback address, over kept-alive
// connections.
type client struct {
	hc *http.Client
}

// newClient returns a client whose connections (at most conns) leave from
// addr: the server counts each address as a client of its own.
func newClient(addr string, conns int) *client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}, Timeout: 10 * time.Second}
	return &client{hc: &http.Client{
		Transport: &http.Transport{
			DialContext:         d.DialContext,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
		// Only keeps a broken server from hanging the bench: a hash waits
		// at most 10 s for a worker, a statement 5 s.
		Timeout: 30 * time.Second,
	}}
}

// do sends a request and returns the response's status and body.
func (c *client) do(ctx context.Context, method, url, auth, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if k, v, ok := strings.Cut(auth, ": "); ok {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// call sends a request that must succeed (200) and decodes its body into out.
func (c *client) call(url, method, path, auth, body string, out any) error {
	status, b, err := c.do(context.Background(), method, url+path, auth, body)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("%s %s = %d %s", method, path, status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func (c *client) register(url, name, password string) error {
	return c.call(url, "POST", "/v1/auth/register", "", loginBody(name, password, `,"email":"`+name+`@example.com","full_name":"Flood bench"`), nil)
}

func (c *client) login(url, name, password string) (string, error) {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err := c.call(url, "POST", "/v1/auth/login", "", loginBody(name, password, ""), &tok)
	return tok.AccessToken, err
}

func (c *client) createKey(url, token string) (string, error) {
	var k struct {
		RawKey string `json:"raw_key"`
	}
	err := c.call(url, "POST", "/v1/auth/api-keys", "Authorization: Bearer "+token, `{"name":"flood-victim"}`, &k)
	return k.RawKey, err
}

// loginBody is a login's JSON body; more adds members (for registration).
func loginBody(name, password, more string) string {
	return `{"username":"` + name + `","password":"` + password + `"` + more + `}`
}

// metrics are the server's Prometheus samples: name{labels} -> value.
type metrics map[string]float64

func (m metrics) value(name string) float64 { return m[name] }

// metrics reads GET /metrics: the text format, one sample a line.
func (c *client) metrics(url string) (metrics, error) {
	status, b, err := c.do(context.Background(), "GET", url+"/metrics", "", "")
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics = %d", status)
	}
	m := metrics{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m, nil
}

// The victim's operations, as the report names them.
const (
	opCreateKey = "POST /v1/auth/api-keys"
	opLogin     = "POST /v1/auth/login"
	opMe        = "GET /v1/me"
)

// sample is one request of the victim.
type sample struct {
	start time.Time
	took  time.Duration
	ok    bool // the answer it should get (200); a refusal or an error is not
}

// victim sends paced, sequential requests from its own address.
type victim struct {
	*client
	url string
}

func newVictim(url string) *victim { return &victim{client: newClient(victimAddr, 2), url: url} }

// timed sends a request and records how long it took, and whether it got
// its 200.
func (v *victim) timed(ctx context.Context, method, path, auth, body string, out *[]sample) {
	start := time.Now()
	status, _, err := v.do(ctx, method, v.url+path, auth, body)
	if ctx.Err() != nil {
		return // interrupted: not a sample
	}
	*out = append(*out, sample{start: start, took: time.Since(start), ok: err == nil && status == http.StatusOK})
}

// paced calls round every `every` until until (back to back when a round
// takes longer), and ctx's end.
func paced(ctx context.Context, until time.Time, every time.Duration, round func()) {
	for next := time.Now(); ctx.Err() == nil; {
		if d := time.Until(next); d > 0 {
			sleep(ctx, d)
		}
		if !time.Now().Before(until) || ctx.Err() != nil {
			return
		}
		round()
		next = next.Add(every)
		if now := time.Now(); next.Before(now) {
			next = now
		}
	}
}

// loginsAndKeys logs the victim in and creates a key, one after the other,
// every `every`.
func (v *victim) loginsAndKeys(ctx context.Context, until time.Time, every time.Duration, who account, keyUsers []account) map[string][]sample {
	var logins, keys []sample
	body := loginBody(who.name, who.password, "")
	paced(ctx, until, every, func() {
		v.timed(ctx, "POST", "/v1/auth/login", "", body, &logins)
		v.newKey(ctx, keyUsers, &keys)
	})
	return map[string][]sample{opLogin: logins, opCreateKey: keys}
}

// newKey creates a key with the token of each of keyUsers in turn,
// keysPerUser keys each (their active keys are capped).
func (v *victim) newKey(ctx context.Context, keyUsers []account, keys *[]sample) {
	u := keyUsers[min(len(*keys)/keysPerUser, len(keyUsers)-1)]
	v.timed(ctx, "POST", "/v1/auth/api-keys", "Authorization: Bearer "+u.token, `{"name":"flood-victim"}`, keys)
}

// meAndKeys calls GET /v1/me with key every meEvery and, at the same
// time, creates a key every keyEvery.
func (v *victim) meAndKeys(ctx context.Context, until time.Time, meEvery, keyEvery time.Duration, key string, keyUsers []account) map[string][]sample {
	var me, keys []sample
	var wg sync.WaitGroup
	wg.Go(func() {
		paced(ctx, until, keyEvery, func() { v.newKey(ctx, keyUsers, &keys) })
	})
	paced(ctx, until, meEvery, func() {
		v.timed(ctx, "GET", "/v1/me", "X-API-Key: "+key, "", &me)
	})
	wg.Wait()
	return map[string][]sample{opMe: me, opCreateKey: keys}
}

// phase is the victim's requests over one phase (idle or flooded), and the
// server's state meanwhile.
type phase struct {
	start, end time.Time
	samples    map[string][]sample
	// From /metrics, scraped every 200 ms from the set-up address.
	maxInUse, maxHashQueue float64
	poolWaits, poolWaitSec float64 // increase over the phase
	keysRefused            float64 // API keys refused: by the flood, unknown keys looked up
	logins                 map[string]float64
	// CPU time over the phase, from /proc.
	cpuServer, cpuDB, cpuFlooder time.Duration
	// The server's own time for each of the victim's requests, by
	// operation, from its access log (countLogs).
	server map[string][]time.Duration
}

// measure runs the victim for d while scraping the server's metrics.
func (s *server) measure(victim func(until time.Time) map[string][]sample, d time.Duration) phase {
	var p phase
	first, _ := s.setup.metrics(s.url)
	srv0, db0 := bench.CPUTimes(s.Pid())
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if m, err := s.setup.metrics(s.url); err == nil {
				p.maxInUse = max(p.maxInUse, m.value("authapi_db_pool_in_use_connections"))
				p.maxHashQueue = max(p.maxHashQueue, m.value("authapi_password_hash_queue_length"))
			}
		}
	})
	p.start = time.Now()
	p.samples = victim(p.start.Add(d))
	p.end = time.Now()
	close(done)
	wg.Wait()
	srv1, db1 := bench.CPUTimes(s.Pid())
	p.cpuServer, p.cpuDB = srv1-srv0, max(db1-db0, 0)
	if last, err := s.setup.metrics(s.url); err == nil && first != nil {
		delta := func(name string) float64 { return last.value(name) - first.value(name) }
		p.poolWaits = delta("authapi_db_pool_waits_total")
		p.poolWaitSec = delta("authapi_db_pool_wait_seconds_total")
		p.keysRefused = delta(`authapi_api_key_verifications_total{result="refused"}`)
		p.logins = map[string]float64{}
		for _, o := range []string{"succeeded", "failed", "throttled"} {
			p.logins[o] = delta(`authapi_logins_total{outcome="` + o + `"}`)
		}
	}
	return p
}

// durations returns the times of op's samples; with before set, only of
// those that started before it.
func (p *phase) durations(op string, before time.Time) []time.Duration {
	var d []time.Duration
	for _, s := range p.samples[op] {
		if before.IsZero() || s.start.Before(before) {
			d = append(d, s.took)
		}
	}
	return d
}

// failed counts op's samples that did not get their 200.
func (p *phase) failed(op string) int {
	n := 0
	for _, s := range p.samples[op] {
		if !s.ok {
			n++
		}
	}
	return n
}

func (p *phase) summary(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-5s", name)
	for _, op := range []string{opCreateKey, opLogin, opMe} {
		if d := p.durations(op, time.Time{}); len(d) > 0 {
			fmt.Fprintf(&b, "  %s: n=%d p50 %s p90 %s p99 %s refused %d;", op, len(d), bench.Round(bench.Median(d)),
				bench.Round(bench.Percentile(d, 90)), bench.Round(bench.Percentile(d, 99)), p.failed(op))
		}
	}
	fmt.Fprintf(&b, "  pool in use ≤ %.0f, waits +%.0f, hash queue ≤ %.0f; CPU: server %v, PostgreSQL %v",
		p.maxInUse, p.poolWaits, p.maxHashQueue, p.cpuServer, p.cpuDB)
	return b.String()
}
