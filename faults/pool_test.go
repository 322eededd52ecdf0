//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPoolExhaustion keeps every database connection of authapi busy: an
// outside session locks the users table, which every request below needs,
// and the pool has two connections. New requests must wait at most about
// AUTH_DB_TIMEOUT and then get 503 problem+json, and once the lock is gone
// the pool must serve again, none of its connections lost.
func TestPoolExhaustion(t *testing.T) {
	const dbTimeout = time.Second
	db := MustStartDatabase(t)
	a := MustStartAuthAPI(t, baseEnv(map[string]string{
		"AUTH_DATABASE_URL": db.URL, "AUTH_DB_MAX_CONNS": "2", "AUTH_DB_TIMEOUT": dbTimeout.String(),
	}))
	c := a.Client()
	ctx := context.Background()
	if r := c.Register(ctx, "holder", "secureP@ss123"); r.Status != http.StatusOK {
		t.Fatalf("register = %s", r)
	}
	token := c.Login(ctx, "holder", "secureP@ss123").Str("access_token")

	// Requests that all need the users table: registration, login, and
	// bearer authentication (the token's user must still exist).
	requests := func(n int) []result {
		out := make([]result, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				switch i % 3 {
				case 0:
					out[i] = c.Register(ctx, fmt.Sprintf("crowd%d", i), "secureP@ss123")
				case 1:
					out[i] = c.Login(ctx, "holder", "secureP@ss123")
				default:
					out[i] = c.do(ctx, "list keys", "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+token)
				}
			})
		}
		wg.Wait()
		return out
	}

	lock := MustOpenSQL(t, db.URL)
	tx, err := lock.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`LOCK TABLE users IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	const n = 30
	var readyz, healthz result
	var probes sync.WaitGroup
	probes.Go(func() {
		time.Sleep(100 * time.Millisecond) // once the crowd holds the pool
		healthz = c.Get(ctx, "/healthz")
		readyz = c.Get(ctx, "/readyz")
	})
	blocked := requests(n)
	probes.Wait()
	var took []time.Duration
	for _, r := range blocked {
		took = append(took, r.Took)
		if !r.Unavailable() {
			t.Errorf("with the pool exhausted: %s, want 503 problem+json", r)
		}
		if r.Took > dbTimeout+time.Second {
			t.Errorf("with the pool exhausted, a request waited %v, want at most AUTH_DB_TIMEOUT (%v) + 1s", r.Took, dbTimeout)
		}
	}
	// /readyz waits for a connection like any request; it may get one as
	// the crowd times out, so only its bound is checked.
	if healthz.Status != http.StatusOK || readyz.Took > dbTimeout+time.Second {
		t.Errorf("with the pool exhausted: /healthz %s, /readyz %s; want 200 and an answer within AUTH_DB_TIMEOUT + 1s", healthz, readyz)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}

	freed := requests(n)
	var freedTook []time.Duration
	for _, r := range freed {
		freedTook = append(freedTook, r.Took)
		if r.Status != http.StatusOK {
			t.Errorf("after the lock was released: %s, want 200", r)
		}
	}
	report(t, "2 connections, AUTH_DB_TIMEOUT=%v, users table locked: %d concurrent requests all got 503 problem+json in p50 %s, max %s; /healthz %d in %s, /readyz %d after %s; after release the same %d requests all 200, max %s",
		dbTimeout, n, ms(percentile(took, 50)), ms(percentile(took, 100)), healthz.Status, ms(healthz.Took), readyz.Status, ms(readyz.Took), n, ms(percentile(freedTook, 100)))
}

// TestSlowLoris opens a few hundred connections that trickle a request's
// headers a byte at a time, and keeps reopening them, while a well-behaved
// client goes on using the API: it must be served throughout, and the
// server must drop each slow connection once its ReadHeaderTimeout (5s in
// cmd/authapi) has passed.
func TestSlowLoris(t *testing.T) {
	const (
		slow      = 300
		phase     = 8 * time.Second
		headerMax = 5 * time.Second // http.Server.ReadHeaderTimeout in cmd/authapi
	)
	db := MustStartDatabase(t)
	a := MustStartAuthAPI(t, baseEnv(map[string]string{"AUTH_DATABASE_URL": db.URL}))
	c := a.Client()
	ctx := context.Background()
	if r := c.Register(ctx, "patient", "secureP@ss123"); r.Status != http.StatusOK {
		t.Fatalf("register = %s", r)
	}
	addr := strings.TrimPrefix(a.URL, "http://")

	var (
		mu        sync.Mutex
		lifetimes []time.Duration
		opened    int
		dialErrs  int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range slow {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				conn, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					mu.Lock()
					dialErrs++
					mu.Unlock()
					time.Sleep(100 * time.Millisecond)
					continue
				}
				mu.Lock()
				opened++
				mu.Unlock()
				life, closedByServer := trickle(conn, stop)
				if closedByServer {
					mu.Lock()
					lifetimes = append(lifetimes, life)
					mu.Unlock()
				}
			}
		})
	}

	// The well-behaved client, meanwhile.
	var served []time.Duration
	var failures []result
	for start := time.Now(); time.Since(start) < phase; {
		for _, r := range []result{
			c.Login(ctx, "patient", "secureP@ss123"),
			c.Get(ctx, "/readyz"),
		} {
			served = append(served, r.Took)
			if r.Status != http.StatusOK {
				failures = append(failures, r)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	for _, r := range failures[:min(10, len(failures))] {
		t.Errorf("a well-behaved request among slow clients: %s, want 200", r)
	}
	if len(lifetimes) < slow {
		t.Errorf("the server dropped %d slow connections in %v, want each of the %d dropped at least once", len(lifetimes), phase, slow)
	}
	if worst := percentile(lifetimes, 100); worst > headerMax+2*time.Second {
		t.Errorf("a slow connection lived %v, want it dropped soon after ReadHeaderTimeout (%v)", worst, headerMax)
	}
	if dialErrs > 0 {
		t.Errorf("%d connection attempts failed", dialErrs)
	}
	report(t, "%d slow-loris connections at a time (%d opened in %v): the server dropped each after p50 %s, max %s; the well-behaved client got %d of %d requests served, p50 %s, p99 %s, max %s",
		slow, opened, phase, ms(percentile(lifetimes, 50)), ms(percentile(lifetimes, 100)),
		len(served)-len(failures), len(served), ms(percentile(served, 50)), ms(percentile(served, 99)), ms(percentile(served, 100)))
}

// trickle sends a request's headers a byte every 100ms, never finishing
// them, until the server closes the connection or stop closes. It returns
// how long the connection lived and whether the server ended it.
func trickle(conn net.Conn, stop <-chan struct{}) (time.Duration, bool) {
	defer conn.Close()
	start := time.Now()
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, conn) // returns when the server closes
		close(closed)
	}()
	head := "POST /v1/auth/login HTTP/1.1\r\nHost: authapi\r\nContent-Type: application/json\r\nX-Padding: "
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-closed:
			return time.Since(start), true
		case <-stop:
			return time.Since(start), false
		case <-tick.C:
			b := byte('a')
			if i < len(head) {
				b = head[i]
			}
			if _, err := conn.Write([]byte{b}); err != nil {
				return time.Since(start), true // reset by the server
			}
		}
	}
}
