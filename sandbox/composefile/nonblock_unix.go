//go:build unix

package composefile

import "syscall"

const nonblock = syscall.O_NONBLOCK
