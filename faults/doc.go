// Package faults holds authapi's fault suite: tests that start real
// PostgreSQL servers and real authapi processes, break them (kill -9,
// database outages, SIGTERM under load, an exhausted pool, slow clients)
// and check that no acknowledged write is lost and no request hangs.
//
// The tests are behind the "faults" build tag, since they take a minute or
// two and start processes: run them with `make test-faults`.
package faults
