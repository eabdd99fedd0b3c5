package targets

import (
	"context"
	"fmt"
	"os"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/magefile/mage/mg"

	"github.com/ktrdr/sandboxkit/sandbox"
)

// pgHostRoot is where stack:images looks for the host's PostgreSQL ("" is /; tests change it).
var pgHostRoot = ""

// Stack holds targets for the bundled stand-in stack.
type Stack mg.Namespace

// Images builds the stand-in image (ktrdr-standin:dev) from ./cmd/standin and stand-in
// mode's database (ktrdr-postgres:dev) from the host's PostgreSQL packages, with no registry.
func (Stack) Images(ctx context.Context) (err error) {
	defer exitAs(tImages, &err)
	p := sandbox.KTRDR()
	cwd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("find the current folder: %w", err)
	}
	if err := driver.BuildStandinImage(ctx, runner, cwd, p.StandinSource, p.StandinImage, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Built %s\n", p.StandinImage)
	if p.StandinDBImage != "" {
		if err := driver.BuildPostgresImageFrom(ctx, runner, pgHostRoot, cwd, p.StandinSource, p.StandinDBImage, stdout); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Built %s\n", p.StandinDBImage)
	}
	return nil
}
