package store_test

import (
	"crypto/rand"
	"testing"
	"time"

	"authapi/store"
	"authapi/store/storetest"
)

// BenchmarkAPIKeyLookup measures the statement behind every API-key
// request, on a direct connection and, under `make test-pgbouncer`,
// through PgBouncer, side by side in one run:
//
//	go run ./cmd/testpg -pgbouncer -- go test -run '^$' -bench APIKeyLookup -count 5 ./store/
func BenchmarkAPIKeyLookup(b *testing.B) {
	pooled := storetest.NewURL(b)
	paths := []struct{ name, url string }{{"direct", storetest.DirectURL(pooled)}}
	if direct := storetest.DirectURL(pooled); direct != pooled {
		paths = append(paths, struct{ name, url string }{"pgbouncer", pooled})
	}
	for _, p := range paths {
		db, err := store.Open(ctx, p.url, store.Options{MaxConns: 8, QueryTimeout: 10 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		u := MustCreateUser(b, db, "bench"+p.name)
		k := MustCreateKey(b, db, u.ID, "k")
		missing := make([]byte, 32)
		rand.Read(missing)
		b.Run(p.name+"/sequential", func(b *testing.B) {
			for b.Loop() {
				if _, err := db.APIKeyOwner(ctx, k.Digest); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(p.name+"/parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := db.APIKeyOwner(ctx, k.Digest); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
