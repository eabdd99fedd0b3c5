//go:build ignore

// The zero-install entry point: `go run magefile.go <target> …` runs the
// targets in magefiles/ without installing mage. `go tool mage <target>`
// does the same with the mage version pinned in go.mod. Both compile the
// magefiles once per change into the user's cache (internal/magerun), so
// any number of them can run at once in one checkout.
package main

import (
	"os"

	"github.com/ktrdr/sandboxkit/internal/magerun"
)

func main() { os.Exit(magerun.Main()) }
