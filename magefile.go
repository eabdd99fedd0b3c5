//go:build ignore

// The zero-install entry point: `go run magefile.go <target> …` runs the
// targets in magefiles/ without installing mage. `go tool mage <target>`
// does the same with the mage version pinned in go.mod.
package main

import (
	"os"

	"github.com/magefile/mage/mage"
)

func main() { os.Exit(mage.Main()) }
