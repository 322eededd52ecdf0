//go:build !linux

package store

import (
	"syscall"
	"time"
)

// setUserTimeout does nothing where TCP_USER_TIMEOUT is not known: a
// silently dropped notification connection is then noticed by the pings
// (the cache is bypassed) and replaced when the system gives up on it.
func setUserTimeout(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
