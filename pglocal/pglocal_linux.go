package pglocal

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// maxSocketPath is the size of sockaddr_un.sun_path minus its NUL byte.
const maxSocketPath = 107

// openChildDir opens a data directory so it can be handed to initdb or
// postgres as their fd 3, which they then address as /proc/self/fd/3.
//
// Why: the data directory may live in a home folder such as /root (mode
// 0700) that the postgres user cannot traverse, and we must not loosen the
// permissions of the user's folders. Opening a /proc/self/fd link is a
// "magic link" jump straight to the open directory, with no permission
// check on its ancestors, so the child reaches its data directory no matter
// where it lives. postgres chdirs into it at start-up and forks its backends,
// which inherit the descriptor, so every later path resolves the same way.
// The trick is used when not root as well, so there is a single code path.
func openChildDir(dir string) (childDir, error) {
	f, err := os.Open(dir)
	if err != nil {
		return childDir{}, fmt.Errorf("pglocal: open data directory: %w", err)
	}
	return childDir{arg: "/proc/self/fd/3", files: []*os.File{f}}, nil
}

// processAlive reports whether pid names a process that has not exited.
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...; comm may hold spaces and parentheses.
	rest := b[bytes.LastIndexByte(b, ')')+1:]
	fields := strings.Fields(string(rest))
	return len(fields) > 0 && fields[0] != "Z"
}
