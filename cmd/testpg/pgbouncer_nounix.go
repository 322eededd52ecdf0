//go:build !unix

package main

import (
	"context"
	"errors"
)

// pgBouncer is not offered here: it would sit in front of a pglocal
// server, which runs on unix systems only.
type pgBouncer struct{ dir string }

func startPgBouncer(context.Context, string, string) (*pgBouncer, error) {
	return nil, errors.New("testpg: -pgbouncer runs on unix systems only")
}

func (*pgBouncer) URL(string) string { return "" }
func (*pgBouncer) stop() error       { return nil }
