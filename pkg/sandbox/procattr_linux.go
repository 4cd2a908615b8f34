package sandbox

import "syscall"

// childProcAttr makes a child process (Prometheus) get SIGTERM when the
// sandbox dies without stopping it (kill -9), rather than outlive it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
