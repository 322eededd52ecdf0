package server_test

import (
	"context"
	"testing"
	"time"

	"authapi/server"
	"authapi/store/storetest"
)

// What the request benchmarks turn on that older versions of the server
// lack; this file is what differs when the benchmarks are run on them.

func benchConfig(c *server.Config) { c.CredentialCacheSize = 1000 }

func benchListen(b *testing.B, srv *server.Server, dbURL string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	changes := srv.ChangeListener(storetest.DirectURL(dbURL))
	go func() { changes.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); !srv.CacheListening(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the credential cache did not start listening")
		}
	}
}
