//go:build !linux

package deathsig

import "syscall"

// Set does nothing: this system has no equivalent of Linux's Pdeathsig.
func Set(*syscall.SysProcAttr, syscall.Signal) {}
