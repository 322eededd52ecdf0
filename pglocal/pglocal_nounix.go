//go:build !unix

package pglocal

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
)

// errPlatform refuses to start: the embedded PostgreSQL relies on unix
// sockets that only their owner can reach (trust authentication is safe
// only then) and on POSIX signals for PostgreSQL's fast shutdown, which
// this package has only for Linux, macOS and the other unix systems.
var errPlatform = fmt.Errorf("pglocal: the embedded PostgreSQL runs on Linux and macOS, not on %s: "+
	"install PostgreSQL for %[1]s and set AUTH_DATABASE_URL to a database on it: %w", runtime.GOOS, errors.ErrUnsupported)

const maxSocketPath = 107

// The rest is never reached (Start returns errPlatform first); it only
// lets the package build.

type account struct{}

func serverAccount() (account, error)                           { return account{}, errPlatform }
func (account) String() string                                  { return runtime.GOOS }
func (account) chown(string) error                              { return errPlatform }
func (account) sysProcAttr(syscall.Signal) *syscall.SysProcAttr { return nil }
func checkOwner(string, account) error                          { return errPlatform }
func processAlive(int) bool                                     { return false }
func openChildDir(string) (childDir, error)                     { return childDir{}, errPlatform }
