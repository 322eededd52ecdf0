package deathsig

import "syscall"

// Set makes the kernel send sig to the child started with attr when the
// parent dies, even by SIGKILL. Go sets it in the child after a credential
// change (which would otherwise clear it), so it survives a setuid. The
// kernel ties it to the OS thread that forked the child rather than to the
// process; that is fine because Go never retires idle threads (only a
// thread whose goroutine exits while locked with runtime.LockOSThread).
func Set(attr *syscall.SysProcAttr, sig syscall.Signal) {
	attr.Pdeathsig = sig
}
