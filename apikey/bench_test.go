package apikey_test

import (
	"testing"

	"authapi/apikey"
)

func BenchmarkParse(b *testing.B) {
	key := apikey.MustGenerate()
	b.ReportAllocs()
	for b.Loop() {
		if apikey.Parse(key) != nil {
			b.Fatal("a generated key does not parse")
		}
	}
}

func BenchmarkDigest(b *testing.B) {
	d := apikey.NewDigester([]byte("pepper pepper pepper pepper 32b!"))
	key := apikey.MustGenerate()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d.Digest(key)
		}
	})
}
