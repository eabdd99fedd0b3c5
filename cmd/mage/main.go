// Command mage runs this project's mage targets: `go tool mage <target>`.
// It is mage with a build cache that is safe under concurrent calls and
// writes nothing into the work tree; see internal/magerun.
package main

import (
	"os"

	"github.com/ktrdr/sandboxkit/internal/magerun"
)

func main() { os.Exit(magerun.Main()) }
