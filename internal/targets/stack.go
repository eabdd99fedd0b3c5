package targets

import (
	"context"
	"fmt"
	"os"

	"github.com/magefile/mage/mg"

	"github.com/ktrdr/sandboxkit/sandbox"
)

// Stack holds targets for the bundled stand-in stack.
type Stack mg.Namespace

// Images builds the stand-in image (ktrdr-standin:dev) from ./cmd/standin with no registry.
func (Stack) Images(ctx context.Context) error {
	p := sandbox.KTRDR()
	cwd, err := os.Getwd()
	if err != nil {
		return fail(1, err, "")
	}
	if err := sandbox.BuildStandinImage(ctx, sandbox.ExecRunner{}, cwd, p.StandinSource, p.StandinImage, os.Stdout); err != nil {
		return fail(1, err, "run it from the repository root; it needs Go and a running Docker engine")
	}
	fmt.Printf("Built %s\n", p.StandinImage)
	return nil
}
