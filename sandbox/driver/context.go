package driver

import (
	"context"
	"os"
	"slices"
)

// ContextRunner runs every docker command against one Docker context.
type ContextRunner struct {
	Runner
	Context string // the Docker context; "" runs commands unchanged
}

func (r ContextRunner) Run(ctx context.Context, c Cmd) ([]byte, error) {
	switch {
	case r.Context == "":
	case c.Name == "docker" && (len(c.Args) == 0 || c.Args[0] != "--context"):
		c.Args = append([]string{"--context", r.Context}, c.Args...)
	case c.Name == "docker-compose":
		// The standalone compose has no --context flag; it reads this.
		env := c.Env
		if env == nil {
			env = os.Environ()
		}
		c.Env = append(slices.Clone(env), "DOCKER_CONTEXT="+r.Context)
	}
	return r.Runner.Run(ctx, c)
}
