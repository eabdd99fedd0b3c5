//go:build !linux

package driver

import (
	"errors"
	"os"
)

// memFile is Linux's: elsewhere a /dev/fd/N is the same open file (one
// offset), which compose, reading the file twice, would find empty the
// second time. SecretEnv falls back to a private temporary file.
func memFile(string, []byte) (*os.File, error) {
	return nil, errors.New("no memory files on this system")
}
