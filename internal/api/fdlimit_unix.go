//go:build unix

package api

import "syscall"

// openFileLimit is the process's soft limit on open file descriptors, 0 when
// it cannot be read. (Go raises the soft limit to the hard one at start.)
func openFileLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return r.Cur
}
