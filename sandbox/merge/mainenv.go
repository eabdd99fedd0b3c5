package merge

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/ktrdr/sandboxkit/sandbox/composefile"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
)

// DotEnv is the file `docker compose` reads its variables from in the
// folder it runs in.
const DotEnv = ".env"

// maxDotEnv caps how much of the main checkout's .env is read.
const maxDotEnv = 1 << 20

// mainEnv is the environment `docker compose` in the main checkout
// interpolates the compose file with.
type mainEnv struct {
	vars   map[string]string
	origin map[string]string // for each variable: DotEnv or "the environment"
}

// fromEnvironment is the origin of a variable set by the process environment.
const fromEnvironment = "the environment"

// loadMainEnv builds the variables compose would use in the main checkout:
// the checkout's .env (if there is one), overridden by the process
// environment (o.Environ), as compose gives the environment precedence.
// The .env must be a regular file inside the checkout (a link is followed
// only if it stays inside), at most 1 MiB; anything else is an error, as it
// means the main stack cannot be known.
func loadMainEnv(o Options) (mainEnv, error) {
	env := mainEnv{vars: map[string]string{}, origin: map[string]string{}}
	process := map[string]string{}
	for _, kv := range o.Environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k != "" {
			process[k] = v
		}
	}
	data, err := readInCheckout(o.Dir, DotEnv, maxDotEnv)
	if err != nil {
		return env, fmt.Errorf("the variables of docker compose in the main checkout: %w", err)
	}
	if data != nil {
		vals, err := dotenv.ParseWithLookup(bytes.NewReader(data), func(k string) (string, bool) {
			v, ok := process[k]
			return v, ok
		})
		if err != nil {
			return env, fmt.Errorf("parse %s of the main checkout %s: %w", DotEnv, o.Dir, err)
		}
		for k, v := range vals {
			env.vars[k], env.origin[k] = v, DotEnv
		}
	}
	for k, v := range process {
		env.vars[k], env.origin[k] = v, fromEnvironment
	}
	return env, nil
}

// readInCheckout reads the file name of the checkout dir, or returns nil if
// there is none. It must be a regular file inside the checkout (a link is
// followed only if it stays inside) of at most limit bytes
// (composefile.ReadFile: a FIFO is refused unopened).
func readInCheckout(dir, name string, limit int64) ([]byte, error) {
	path := filepath.Join(dir, name)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", path, err)
	}
	data, _, err := composefile.ReadFile(dir, name, limit)
	return data, err
}

// Variable is a variable the merged file reads that the pre-merge file did
// not: where the main checkout sets it decides what the merged file runs.
type Variable struct {
	Name    string
	Default string // the file's default (${NAME:-default}); "" if none
	Origin  string // ".env" or "the environment"; "" if the main checkout leaves it unset
}

// String renders the variable as `USER (set by the environment)` or
// `KTRDR_API_PORT (unset: default 8000)`.
func (v Variable) String() string {
	switch {
	case v.Origin != "":
		return v.Name + " (set by " + v.Origin + ")"
	case v.Default != "":
		return v.Name + " (unset: default " + v.Default + ")"
	}
	return v.Name + " (unset)"
}

// newVariables lists, by name, the variables cur reads that prev does not,
// and where env sets them.
func newVariables(prev, cur composeFile, env mainEnv) []Variable {
	old, vars := prev.variables(), cur.variables()
	var out []Variable
	for _, n := range slices.Sorted(maps.Keys(vars)) {
		if _, ok := old[n]; ok {
			continue
		}
		v := vars[n]
		out = append(out, Variable{Name: n, Default: v.DefaultValue, Origin: env.origin[n]})
	}
	return out
}
