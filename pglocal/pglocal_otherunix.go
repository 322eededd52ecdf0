//go:build unix && !linux

package pglocal

import (
	"errors"
	"syscall"
)

// maxSocketPath is the size of sockaddr_un.sun_path (104 on macOS and the
// BSDs) minus its NUL byte.
const maxSocketPath = 103

// openChildDir names the data directory by its path: the /proc/self/fd
// trick of Linux is not available, and none is needed when the server runs
// as ourselves, as it does on a developer's Mac. Run as root, the postgres
// (or nobody) user must be able to reach the data directory.
func openChildDir(dir string) (childDir, error) {
	return childDir{arg: dir}, nil
}

// processAlive reports whether pid names a process that has not exited
// (or is a zombie, which only our own children can be for long, and
// cmd.Wait reaps those).
func processAlive(pid int) bool {
	if pid <= 0 { // kill(0) and kill(-1) address groups of processes
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
