package pglocal

import (
	"context"
	"path/filepath"
)

// PID returns the postmaster's process id, so tests can check that it is gone.
func PID(s *Server) int { return s.cmd.Process.Pid }

// FindBinaries runs the binary search with every place it looks besides
// PATH moved under root (root/usr/lib/postgresql/*/bin, ...).
func FindBinaries(root string) (postgres, initdb string, err error) {
	dirs := make([]string, len(binDirs))
	for i, d := range binDirs {
		dirs[i] = filepath.Join(root, d)
	}
	b, err := findBinaries(context.Background(), dirs)
	return b.postgres, b.initdb, err
}
