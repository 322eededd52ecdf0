//go:build ha

package ha_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"authapi/internal/authproc"
)

// instance is one authapi process, with a client of its own.
type instance struct {
	*authproc.Process
	name string
	hc   *http.Client
}

// result is one request's outcome.
type result struct {
	Instance string
	Op       string
	Start    time.Time
	Took     time.Duration
	Status   int // 0 when no answer came
	Err      error
	Header   http.Header
	Body     []byte
}

func (r result) str(name string) string {
	var m map[string]any
	json.Unmarshal(r.Body, &m)
	s, _ := m[name].(string)
	return s
}

// unavailable reports whether r is the answer an outage must give: 503,
// problem+json of type unavailable, with Retry-After.
func (r result) unavailable() bool {
	retry, _ := strconv.Atoi(r.Header.Get("Retry-After"))
	return r.Status == http.StatusServiceUnavailable &&
		r.Header.Get("Content-Type") == "application/problem+json" &&
		r.str("type") == "urn:authapi:problem:unavailable" && retry >= 1
}

func (r result) String() string {
	if r.Err != nil {
		return fmt.Sprintf("%s %s: %v after %v", r.Instance, r.Op, r.Err, r.Took.Round(time.Millisecond))
	}
	return fmt.Sprintf("%s %s: %d after %v %s", r.Instance, r.Op, r.Status, r.Took.Round(time.Millisecond), bytes.TrimSpace(r.Body))
}

// do sends one request; header holds name, value pairs.
func (in *instance) do(ctx context.Context, op, method, path, body string, header ...string) result {
	r := result{Instance: in.name, Op: op, Start: time.Now()}
	req, err := authproc.NewRequest(ctx, method, in.URL+path, body, header...)
	if err != nil {
		r.Err = err
		return r
	}
	resp, err := in.hc.Do(req)
	if err == nil {
		r.Body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		r.Status, r.Header = resp.StatusCode, resp.Header
	}
	r.Took, r.Err = time.Since(r.Start), err
	return r
}

func (in *instance) Register(ctx context.Context, name, password string) result {
	body, _ := json.Marshal(map[string]string{"username": name, "email": name + "@example.com", "password": password, "full_name": "User " + name})
	return in.do(ctx, "register", "POST", "/v1/auth/register", string(body))
}

func (in *instance) Login(ctx context.Context, name, password string) result {
	body, _ := json.Marshal(map[string]string{"username": name, "password": password})
	return in.do(ctx, "login", "POST", "/v1/auth/login", string(body))
}

func (in *instance) CreateKey(ctx context.Context, token string) result {
	return in.do(ctx, "create key", "POST", "/v1/auth/api-keys", `{"name":"k"}`, "Authorization", "Bearer "+token)
}

func (in *instance) Revoke(ctx context.Context, token, id string) result {
	return in.do(ctx, "revoke", "DELETE", "/v1/auth/api-keys/"+id, "", "Authorization", "Bearer "+token)
}

func (in *instance) Me(ctx context.Context, key string) result {
	return in.do(ctx, "me", "GET", "/v1/me", "", "X-API-Key", key)
}

// metric reads one sample of /metrics: name{labels} (labels as written
// there, or "" for none).
func (in *instance) metric(t *testing.T, name, labels string) float64 {
	t.Helper()
	v, err := in.metricValue(name, labels)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (in *instance) metricValue(name, labels string) (float64, error) {
	r := in.do(context.Background(), "metrics", "GET", "/metrics", "")
	if r.Status != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", r)
	}
	sel := name
	if labels != "" {
		sel += "{" + labels + "}"
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sel) + ` (\S+)$`).FindSubmatch(r.Body)
	if m == nil {
		return 0, nil
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// listenWatch records when an instance stopped hearing change
// notifications (its credential cache bypassed) and when it heard them
// again, polling its metrics.
type listenWatch struct {
	mu         sync.Mutex
	lost, back time.Time
	stop       chan struct{}
	done       chan struct{}
}

func watchListening(in *instance) *listenWatch {
	w := &listenWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			v, err := in.metricValue("authapi_credential_cache_listening", "")
			now := time.Now()
			w.mu.Lock()
			switch {
			case err == nil && v == 0 && w.lost.IsZero():
				w.lost = now
			case err == nil && v == 1 && !w.lost.IsZero() && w.back.IsZero():
				w.back = now
			}
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return w
}

// Lost returns when notifications were lost (zero: not yet).
func (w *listenWatch) Lost() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lost
}

// Stop ends the watch and returns when notifications were lost and heard
// again (zero when not seen).
func (w *listenWatch) Stop() (lost, back time.Time) {
	close(w.stop)
	<-w.done
	return w.lost, w.back
}

// key is an API key the load created.
type key struct {
	raw, id, owner, token string
}

// load drives registrations, logins, key creations, uses and revocations
// through the instances, and remembers every acknowledged write.
type load struct {
	instances []*instance

	mu      sync.Mutex
	users   map[string]string // acknowledged registrations: username -> password
	keys    map[string]key    // acknowledged creations, by raw key
	revoked map[string]time.Time
	tried   map[string]bool // keys whose revocation was sent, acknowledged or not
	results []result

	stop chan struct{}
	wg   sync.WaitGroup
}

// startLoad starts workers per instance. Usernames start with prefix.
func startLoad(t *testing.T, prefix string, instances []*instance, workers int) *load {
	l := &load{instances: instances, users: map[string]string{}, keys: map[string]key{},
		revoked: map[string]time.Time{}, tried: map[string]bool{}, stop: make(chan struct{})}
	// Stop lets the requests on their way finish; the deadline only
	// keeps a broken test from running on.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	for i := range instances {
		for w := range workers {
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				l.work(ctx, fmt.Sprintf("%s%dw%d", prefix, i, w), i)
			}()
		}
	}
	t.Cleanup(func() { l.Stop(); cancel() })
	return l
}

// Stop ends the load and waits for the workers.
func (l *load) Stop() {
	l.mu.Lock()
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.mu.Unlock()
	l.wg.Wait()
}

func (l *load) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// work is one worker, through instance own: a round registers a user,
// logs in, creates a key and uses it and an earlier one through every
// instance (so that each caches them); every third round revokes one of
// the worker's earlier keys, chosen at random, which every instance may
// hold in its cache.
func (l *load) work(ctx context.Context, prefix string, own int) {
	in := l.instances[own]
	var mine []key
	for n := 0; !l.stopped(); n++ {
		if len(mine) > 0 && n%3 == 2 {
			i := rand.IntN(len(mine))
			k := mine[i]
			mine = slices.Delete(mine, i, i+1)
			l.mu.Lock()
			l.tried[k.raw] = true
			l.mu.Unlock()
			if r := l.record(in.Revoke(ctx, k.token, k.id)); r.Status == http.StatusNoContent {
				l.mu.Lock()
				l.revoked[k.raw] = r.Start.Add(r.Took)
				l.mu.Unlock()
			}
			continue
		}
		name := fmt.Sprintf("%sx%d", prefix, n)
		password := "pw-" + name + "-Secret!"
		if r := l.record(in.Register(ctx, name, password)); r.Status != http.StatusOK {
			l.pause()
			continue
		}
		l.mu.Lock()
		l.users[name] = password
		l.mu.Unlock()
		token := l.record(in.Login(ctx, name, password)).str("access_token")
		if token == "" {
			l.pause()
			continue
		}
		r := l.record(in.CreateKey(ctx, token))
		k := key{raw: r.str("raw_key"), id: r.str("id"), owner: name, token: token}
		if k.raw == "" {
			l.pause()
			continue
		}
		l.mu.Lock()
		l.keys[k.raw] = k
		l.mu.Unlock()
		mine = append(mine, k)
		// The new key once, and an earlier one again (from the caches).
		earlier := mine[rand.IntN(len(mine))]
		for _, other := range l.instances {
			l.record(other.Me(ctx, k.raw))
			l.record(other.Me(ctx, earlier.raw))
		}
	}
}

// pause keeps a worker from spinning on fast failures.
func (l *load) pause() {
	select {
	case <-l.stop:
	case <-time.After(20 * time.Millisecond):
	}
}

func (l *load) record(r result) result {
	l.mu.Lock()
	l.results = append(l.results, r)
	l.mu.Unlock()
	return r
}

// Results returns the outcomes so far.
func (l *load) Results() []result {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.results)
}

// expected reports whether r is an answer the load may get: its
// operation's success, or the outage's 503. Anything else (a 500, a 401
// for a key that was never revoked, no answer at all) is a failure.
func expected(r result) bool {
	if r.Err != nil {
		return false
	}
	switch r.Op {
	case "register", "login", "create key", "me":
		return r.Status == http.StatusOK || r.unavailable()
	case "revoke":
		return r.Status == http.StatusNoContent || r.unavailable()
	}
	return false
}

// firstWriteAfter returns the first acknowledged registration or key
// creation through instance that started after at.
func (l *load) firstWriteAfter(instance string, at time.Time) (result, bool) {
	var first result
	found := false
	for _, r := range l.Results() {
		if r.Instance == instance && (r.Op == "register" || r.Op == "create key") && r.Status == http.StatusOK &&
			r.Start.After(at) && (!found || r.Start.Before(first.Start)) {
			first, found = r, true
		}
	}
	return first, found
}

// lastWriteBefore returns the end of the last acknowledged op (any
// instance) that ended before at.
func (l *load) lastWriteBefore(at time.Time, op string) (time.Time, bool) {
	var last time.Time
	for _, r := range l.Results() {
		end := r.Start.Add(r.Took)
		if r.Op == op && (r.Status == http.StatusOK || r.Status == http.StatusNoContent) && end.Before(at) && end.After(last) {
			last = end
		}
	}
	return last, !last.IsZero()
}

// writeGap returns the longest time through instance between the ends of
// two acknowledged writes (registrations, key creations, revocations)
// that follow each other: how long writes stopped.
func (l *load) writeGap(instance string) time.Duration {
	var ends []time.Time
	for _, r := range l.Results() {
		if r.Instance == instance && (r.Op == "register" || r.Op == "create key" || r.Op == "revoke") &&
			(r.Status == http.StatusOK || r.Status == http.StatusNoContent) {
			ends = append(ends, r.Start.Add(r.Took))
		}
	}
	slices.SortFunc(ends, time.Time.Compare)
	var gap time.Duration
	for i := 1; i < len(ends); i++ {
		gap = max(gap, ends[i].Sub(ends[i-1]))
	}
	return gap
}

// MustVerify checks through every instance that each acknowledged user
// logs in, each acknowledged key that no one tried to revoke
// authenticates as its owner, and each key whose revocation was
// acknowledged is refused. It returns how many of each it checked.
func (l *load) MustVerify(t *testing.T) (users, keys, revoked int) {
	t.Helper()
	l.mu.Lock()
	type check struct {
		user, password string
		k              key
		wantRevoked    bool
	}
	var checks []check
	for u, p := range l.users {
		checks = append(checks, check{user: u, password: p})
	}
	for raw, k := range l.keys {
		if _, ok := l.revoked[raw]; ok {
			checks = append(checks, check{k: k, wantRevoked: true})
			revoked++
		} else if !l.tried[raw] {
			checks = append(checks, check{k: k})
			keys++
		}
	}
	users = len(l.users)
	l.mu.Unlock()
	errs := parallel(8, len(checks), func(i int) error {
		ch := checks[i]
		ctx := context.Background()
		// Logins alternate between the instances; keys go to both.
		if ch.user != "" {
			in := l.instances[i%len(l.instances)]
			if r := in.Login(ctx, ch.user, ch.password); r.Status != http.StatusOK {
				return fmt.Errorf("acknowledged user %s cannot log in: %s", ch.user, r)
			}
			return nil
		}
		for _, in := range l.instances {
			r := in.Me(ctx, ch.k.raw)
			switch {
			case ch.wantRevoked && r.Status != http.StatusUnauthorized:
				return fmt.Errorf("key of %s whose revocation was acknowledged: %s", ch.k.owner, r)
			case !ch.wantRevoked && (r.Status != http.StatusOK || r.str("username") != ch.k.owner):
				return fmt.Errorf("acknowledged key of %s does not authenticate: %s", ch.k.owner, r)
			}
		}
		return nil
	})
	for _, err := range errs[:min(len(errs), 10)] {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.Fatalf("%d of %d checks of acknowledged writes failed", len(errs), len(checks))
	}
	return users, keys, revoked
}

// parallel runs f(0..n-1) on workers goroutines and returns the errors.
func parallel(workers, n int, f func(i int) error) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errs
}
