// Package multi holds the tests that run several authapi processes on one
// PostgreSQL (build tag multi; make test-multi).
package multi
