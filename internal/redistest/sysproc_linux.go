package redistest

import "syscall"

// sysProcAttr makes the kernel SIGKILL a started server when the test binary
// dies, so a crashed or timed-out test leaves no process behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
