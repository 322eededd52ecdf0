package pglocal

// PID returns the postmaster's process id, so tests can check that it is gone.
func PID(s *Server) int { return s.cmd.Process.Pid }

// FindBinaries exposes the binary search with a substitute for /usr/lib/postgresql.
func FindBinaries(libRoot string) (postgres, initdb string, err error) {
	b, err := findBinaries(libRoot)
	return b.postgres, b.initdb, err
}
