package sandbox

import (
	"context"
	"os"
	"slices"
)

// contextRunner runs every docker command against one Docker context.
type contextRunner struct {
	Runner
	context string
}

func (r contextRunner) Run(ctx context.Context, c Cmd) ([]byte, error) {
	switch {
	case r.context == "":
	case c.Name == "docker" && (len(c.Args) == 0 || c.Args[0] != "--context"):
		c.Args = append([]string{"--context", r.context}, c.Args...)
	case c.Name == "docker-compose":
		// The standalone compose has no --context flag; it reads this.
		env := c.Env
		if env == nil {
			env = os.Environ()
		}
		c.Env = append(slices.Clone(env), "DOCKER_CONTEXT="+r.context)
	}
	return r.Runner.Run(ctx, c)
}
