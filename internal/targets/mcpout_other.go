//go:build !unix

package targets

import "os"

// protocolOut is standard output: on this system nothing guards it from
// other writers.
func protocolOut() (*os.File, error) { return os.Stdout, nil }
