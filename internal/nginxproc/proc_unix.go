//go:build unix

package nginxproc

import (
	"syscall"

	"authapi/internal/deathsig"
)

// procAttr starts nginx in a process group of its own, which dies (from
// SIGTERM) with this process where the system can.
func procAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true}
	deathsig.Set(attr, syscall.SIGTERM)
	return attr
}

// terminate asks the master to stop its workers and exit.
func terminate(pid int) { syscall.Kill(pid, syscall.SIGTERM) }

// killGroup kills the master and its workers.
func killGroup(pid int) { syscall.Kill(-pid, syscall.SIGKILL) }
