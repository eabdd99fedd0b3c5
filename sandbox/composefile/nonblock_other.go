//go:build !unix

package composefile

const nonblock = 0
