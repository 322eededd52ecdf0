//go:build !unix

package nginxproc

import (
	"os"
	"syscall"
)

// procAttr is the default: the tests run nginx on Unix systems only.
func procAttr() *syscall.SysProcAttr { return nil }

// terminate kills the master: no signal to ask it to stop here.
func terminate(pid int) { killGroup(pid) }

// killGroup kills the master.
func killGroup(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}
