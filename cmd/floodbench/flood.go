package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"authapi/apikey"
	"authapi/internal/bench"
	"authapi/internal/deathsig"
)

// floodConfig is what the flood process is told.
type floodConfig struct {
	URL      string
	From     string // loopback address to send from
	Conns    int
	Kind     string // "logins" or "keys"
	Username string // an existing account, whose password the flood gets wrong
}

// floodResult is what the flood process reports.
type floodResult struct {
	Start, End time.Time
	Requests   int            // answered
	Answers    map[string]int // "401", "429 rate-limited", "error" ...
	// LastPast is the end of the last answer that was not a 429: a login
	// that reached the password check, a key that reached the database.
	LastPast time.Time
	// Timeline counts the answers by kind in each second from Start.
	Timeline []map[string]int
	CPU      time.Duration // the flood process's own
	Error    string        // the first transport error, if any
}

// flood is a running flood process.
type flood struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// startFlood starts the flood process and returns once it sends.
func startFlood(ctx context.Context, c floodConfig) (*flood, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "flood", "-url", c.URL, "-from", c.From, "-conns", strconv.Itoa(c.Conns),
		"-kind", c.Kind, "-username", c.Username)
	cmd.Stderr = os.Stderr
	// Should this process die, the flood dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	deathsig.Set(cmd.SysProcAttr, syscall.SIGKILL)
	f := &flood{cmd: cmd}
	if f.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	f.out = bufio.NewReader(stdout)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := f.out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "sending" {
		f.kill()
		return nil, fmt.Errorf("the flood did not start: %q, %v", line, err)
	}
	if ctx.Err() != nil {
		f.kill()
		return nil, ctx.Err()
	}
	return f, nil
}

// stop tells the flood to stop and returns what it reports.
func (f *flood) stop() (floodResult, error) {
	var r floodResult
	f.stdin.Close()
	line, err := f.out.ReadString('\n')
	if err != nil {
		f.kill()
		return r, fmt.Errorf("the flood's report: %v", err)
	}
	if err := f.cmd.Wait(); err != nil {
		return r, fmt.Errorf("the flood: %v", err)
	}
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		return r, fmt.Errorf("the flood's report %q: %v", line, err)
	}
	return r, nil
}

func (f *flood) kill() {
	f.cmd.Process.Kill()
	f.cmd.Wait()
}

// mix is the flood's answers, the most frequent first, as shares.
func (r floodResult) mix() string {
	var parts []string
	for _, k := range r.answerKinds() {
		parts = append(parts, fmt.Sprintf("%s %.1f%%", k, r.share(k)))
	}
	return strings.Join(parts, ", ")
}

func (r floodResult) answerKinds() []string {
	var kinds []string
	for k := range r.Answers {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int { return r.Answers[b] - r.Answers[a] })
	return kinds
}

// share is the percentage of the flood's answers whose kind starts with
// prefix ("429" for every 429).
func (r floodResult) share(prefix string) float64 {
	n := 0
	for k, v := range r.Answers {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return 100 * float64(n) / float64(max(r.Requests, 1))
}

func (r floodResult) rate() float64 { return float64(r.Requests) / r.End.Sub(r.Start).Seconds() }

// floodMain is the flood process: conns goroutines, each with a kept-alive
// connection from the flood's address, send as fast as answers come until
// standard input closes; then the report goes to standard output as one
// JSON line.
func floodMain(args []string) error {
	var c floodConfig
	fs := flag.NewFlagSet("flood", flag.ContinueOnError)
	fs.StringVar(&c.URL, "url", "", "server")
	fs.StringVar(&c.From, "from", "", "loopback address to send from")
	fs.IntVar(&c.Conns, "conns", 300, "connections")
	fs.StringVar(&c.Kind, "kind", "", "logins or keys")
	fs.StringVar(&c.Username, "username", "", "an existing account")
	if err := fs.Parse(args); err != nil {
		return err
	}
	next, err := requests(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	// An answer: the status, and for a problem the last part of its type.
	classify := func(status int, body []byte) string {
		if status == http.StatusTooManyRequests {
			if _, t, ok := bytes.Cut(body, []byte(`"type":"urn:authapi:problem:`)); ok {
				if t, _, ok := bytes.Cut(t, []byte(`"`)); ok {
					return "429 " + string(t)
				}
			}
		}
		return strconv.Itoa(status)
	}

	hc := newClient(c.From, c.Conns).hc
	r := floodResult{Answers: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	fmt.Println("sending")
	r.Start = time.Now()
	for g := range c.Conns {
		wg.Go(func() {
			answers := map[string]int{}
			var timeline []map[string]int
			var lastPast time.Time
			var firstErr error
			buf := bytes.NewBuffer(make([]byte, 0, 1024))
			for i := g; ctx.Err() == nil; i += c.Conns {
				req := next(ctx, i)
				resp, err := hc.Do(req)
				if err == nil {
					buf.Reset()
					_, err = buf.ReadFrom(resp.Body)
					resp.Body.Close()
				}
				if ctx.Err() != nil {
					break // cut by the end: not an answer
				}
				if err != nil {
					answers["error"]++
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				kind := classify(resp.StatusCode, buf.Bytes())
				answers[kind]++
				now := time.Now()
				for sec := int(now.Sub(r.Start) / time.Second); len(timeline) <= sec; {
					timeline = append(timeline, map[string]int{})
				}
				timeline[len(timeline)-1][kind]++
				if resp.StatusCode != http.StatusTooManyRequests {
					lastPast = now
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for k, v := range answers {
				r.Answers[k] += v
				r.Requests += v
			}
			for sec, m := range timeline {
				for len(r.Timeline) <= sec {
					r.Timeline = append(r.Timeline, map[string]int{})
				}
				for k, v := range m {
					r.Timeline[sec][k] += v
				}
			}
			if lastPast.After(r.LastPast) {
				r.LastPast = lastPast
			}
			if firstErr != nil && r.Error == "" {
				r.Error = firstErr.Error()
			}
		})
	}
	wg.Wait()
	r.End = time.Now()
	r.CPU = bench.SelfCPU()
	return json.NewEncoder(os.Stdout).Encode(r)
}

// requests returns the flood's i-th request.
func requests(c floodConfig) (func(ctx context.Context, i int) *http.Request, error) {
	switch c.Kind {
	case "logins":
		// Half for an existing account with wrong passwords, half for
		// unknown usernames: both cost a hash when they get through.
		var bodies []string
		for i := range 64 {
			var pw [8]byte
			rand.Read(pw[:])
			name := c.Username
			if i%2 == 1 {
				name = fmt.Sprintf("nobody%x", pw[:4])
			}
			bodies = append(bodies, loginBody(name, fmt.Sprintf("wrong-%x", pw), ""))
		}
		return func(ctx context.Context, i int) *http.Request {
			req, _ := http.NewRequestWithContext(ctx, "POST", c.URL+"/v1/auth/login", strings.NewReader(bodies[i%len(bodies)]))
			req.Header.Set("Content-Type", "application/json")
			return req
		}, nil
	case "keys":
		// A new well-formed key each time (its checksum holds), so that
		// none is refused for its shape or answered from a cache.
		return func(ctx context.Context, i int) *http.Request {
			req, _ := http.NewRequestWithContext(ctx, "GET", c.URL+"/v1/me", nil)
			req.Header.Set("X-API-Key", apikey.MustGenerate())
			return req
		}, nil
	}
	return nil, errors.New("-kind: want logins or keys")
}
