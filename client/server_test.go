package client_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"authapi/server"
	"authapi/server/servertest"
	"authapi/store"
	"authapi/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// MustServer starts a real authapi on a free port with its own database
// and returns its base URL. cfg, if given, adjusts the server's settings.
func MustServer(tb testing.TB, cfg ...func(*server.Config)) string {
	tb.Helper()
	return MustStart(tb, cfg...).URL
}

// running is an authapi started for a test.
type running struct {
	URL    string
	Server *server.Server // for KeyUses, which the binary writes every few seconds
	Clock  *clock         // the server's clock for key expiry, grace and last use
}

// clock is a settable time source. Access tokens keep real time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// MustStart is MustServer that also returns the server and its clock.
func MustStart(tb testing.TB, cfg ...func(*server.Config)) *running {
	tb.Helper()
	db, err := store.Open(context.Background(), storetest.NewURL(tb), store.Options{MaxConns: 10, QueryTimeout: 10 * time.Second})
	if err != nil {
		tb.Fatalf("store.Open = %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	c := &clock{t: time.Now()}
	scfg := servertest.Config(tb, db, nil)
	scfg.LoginMaxFailures, scfg.LoginWindow, scfg.MaxActiveKeys = 10, 15*time.Minute, 100
	scfg.KeyMaxLifetime, scfg.Now = 365*24*time.Hour, c.Now
	for _, f := range cfg {
		f(&scfg)
	}
	srv, err := server.New(scfg)
	if err != nil {
		tb.Fatalf("server.New = %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	tb.Cleanup(ts.Close)
	return &running{URL: ts.URL, Server: srv, Clock: c}
}

// exampleTB lends storetest a testing.TB for Examples, which have none.
// Only the methods NewURL calls are implemented; a failure panics, which
// fails the example.
type exampleTB struct {
	testing.TB
	cleanups []func()
}

func (e *exampleTB) Helper()                      {}
func (e *exampleTB) Failed() bool                 { return false }
func (e *exampleTB) Logf(string, ...any)          {}
func (e *exampleTB) Cleanup(f func())             { e.cleanups = append(e.cleanups, f) }
func (e *exampleTB) Fatal(args ...any)            { panic(fmt.Sprint(args...)) }
func (e *exampleTB) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
func (e *exampleTB) Skipf(f string, args ...any)  { panic(fmt.Sprintf(f, args...)) }

// exampleServer starts an authapi for an Example and returns its URL and
// a function that stops it.
func exampleServer() (string, func()) {
	tb := &exampleTB{}
	url := MustServer(tb)
	return url, func() {
		for i := len(tb.cleanups) - 1; i >= 0; i-- {
			tb.cleanups[i]()
		}
	}
}
