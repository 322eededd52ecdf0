package limit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"authapi/limit"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func TestBucketsAllow(t *testing.T) {
	b := limit.New(10, time.Minute, 0)
	for i := range 10 {
		if ok, _ := b.Allow("a", t0); !ok {
			t.Fatalf("Allow #%d = false, want the burst of 10 admitted", i+1)
		}
	}
	ok, wait := b.Allow("a", t0)
	if ok || wait < 5*time.Second || wait > 6*time.Second {
		t.Fatalf("Allow #11 = %v, %v, want refused for about 6s (a token every 6s)", ok, wait)
	}
	if ok, _ := b.Allow("b", t0); !ok {
		t.Fatal("another key was refused: buckets are per key")
	}
	if ok, _ := b.Allow("a", t0.Add(wait)); !ok {
		t.Fatal("Allow after the wait it named = false")
	}
	if ok, _ := b.Allow("a", t0.Add(wait)); ok {
		t.Fatal("a refused Allow took no token, yet two were admitted at once")
	}
}

func TestBucketsOff(t *testing.T) {
	for _, b := range []*limit.Buckets{nil, limit.New(0, time.Second, 0), limit.New(5, 0, 0)} {
		for range 100 {
			if ok, _ := b.Allow("a", t0); !ok {
				t.Fatal("a limit of 0 refused")
			}
			b.Take("a", t0)
			if empty, _ := b.Empty("a", t0); empty {
				t.Fatal("a limit of 0 is empty")
			}
		}
	}
}

func TestBucketsEmptyAndTake(t *testing.T) {
	b := limit.New(3, time.Minute, 0)
	for i := range 3 {
		if empty, _ := b.Empty("a", t0); empty {
			t.Fatalf("Empty after %d failures = true, want room for 3", i)
		}
		b.Take("a", t0)
	}
	empty, wait := b.Empty("a", t0)
	if !empty || wait < 19*time.Second || wait > 20*time.Second {
		t.Fatalf("Empty after 3 = %v, %v, want true for 20s", empty, wait)
	}
	if empty, _ := b.Empty("a", t0.Add(20*time.Second)); empty {
		t.Fatal("Empty after a token came back = true")
	}
}

// TestBucketsBounded: however many keys, at most maxKeys are remembered;
// below the bound, every key keeps its count.
func TestBucketsBounded(t *testing.T) {
	const max = 1600
	b := limit.New(2, time.Hour, max)
	for i := range 100_000 {
		b.Allow(fmt.Sprint("addr", i), t0)
	}
	if n := b.Len(); n > max {
		t.Fatalf("%d keys remembered, want at most %d", n, max)
	}
	b = limit.New(1, time.Hour, 100_000)
	for i := range 1000 {
		b.Allow(fmt.Sprint("addr", i), t0)
	}
	for i := range 1000 {
		if ok, _ := b.Allow(fmt.Sprint("addr", i), t0); ok {
			t.Fatalf("addr%d got a second token: its bucket was forgotten", i)
		}
	}
}

func TestBucketsConcurrent(t *testing.T) {
	b := limit.New(100, time.Hour, 0)
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if ok, _ := b.Allow("a", t0); ok {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := admitted.Load(); n != 100 {
		t.Fatalf("%d of 1600 concurrent requests admitted, want exactly the 100 of the bucket", n)
	}
}

func TestGate(t *testing.T) {
	var g limit.Gate
	ctx := context.Background()
	leave, err := g.Enter(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if other, err := g.Enter(ctx, "b"); err != nil {
		t.Fatal("another key waited")
	} else {
		other()
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := g.Enter(wctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Enter while held = %v, want to wait until the deadline", err)
	}
	got := make(chan func(), 1)
	go func() {
		l, err := g.Enter(ctx, "a")
		if err != nil {
			l = nil
		}
		got <- l
	}()
	select {
	case <-got:
		t.Fatal("a second holder got in")
	case <-time.After(20 * time.Millisecond):
	}
	leave()
	l := <-got
	if l == nil {
		t.Fatal("the waiter did not get in once the holder left")
	}
	l()
	if n := g.Len(); n != 0 {
		t.Fatalf("%d keys remembered with nobody in or waiting, want 0", n)
	}
}

// TestBucketsHold: work in flight holds its token, so that concurrent
// work cannot spend more than the bucket has; a token given back is free
// again, a token spent is gone.
func TestBucketsHold(t *testing.T) {
	b := limit.New(3, time.Minute, 0)
	var dones []func(bool, time.Time)
	for i := range 3 {
		done, ok, _ := b.Hold("a", t0)
		if !ok {
			t.Fatalf("Hold #%d = false, want 3 held at once", i+1)
		}
		dones = append(dones, done)
	}
	if _, ok, wait := b.Hold("a", t0); ok || wait <= 0 {
		t.Fatalf("a fourth Hold with three in flight = %v (wait %v), want refused", ok, wait)
	}
	if empty, _ := b.Empty("a", t0); !empty {
		t.Fatal("Empty with every token held = false")
	}
	dones[0](false, t0) // given back
	if done, ok, _ := b.Hold("a", t0); !ok {
		t.Fatal("Hold after one was given back = false")
	} else {
		done(false, t0)
	}
	dones[1](true, t0) // spent
	dones[2](true, t0)
	if _, ok, _ := b.Hold("a", t0); !ok {
		t.Fatal("the token given back is gone")
	}
	b2 := limit.New(1, time.Hour, 0)
	done, _, _ := b2.Hold("b", t0)
	done(true, t0)
	if ok, _ := b2.Allow("b", t0); ok {
		t.Fatal("a spent token is still there")
	}
	var nilb *limit.Buckets
	if done, ok, _ := nilb.Hold("c", t0); !ok {
		t.Fatal("a nil Buckets refused a hold")
	} else {
		done(true, t0)
	}
}
