package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
	"github.com/ktrdr/sandboxkit/sandbox/gate"
)

const hookStack = `services:
  db:
    image: postgres
    environment: {POSTGRES_USER: ktrdr, POSTGRES_PASSWORD: pw}
    ports: ["${KTRDR_DB_PORT:-5432}:5432"]
  backend:
    image: b
    ports: ["${KTRDR_API_PORT:-8000}:8000"]
    depends_on: {db: {condition: service_healthy}}
    volumes: ["./alembic:/app/alembic:ro"]
  worker:
    image: w
    volumes: ["./alembic:/app/alembic:ro"]
`

func hookFixture(t *testing.T, extra string) (*Profile, *StackFile, string) {
	t.Helper()
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "alembic"), 0o755))
	path := filepath.Join(root, "docker-compose.sandbox.yml")
	require.NoError(t, os.WriteFile(path, []byte(hookStack+extra), 0o644))
	sf, err := LoadStackFile(t.Context(), path, nil)
	require.NoError(t, err)
	sp, err := KTRDR().ForStack(sf)
	require.NoError(t, err)
	return sp, sf, root
}

func TestHooksFromTheFileTheExtensionAndTheUser(t *testing.T) {
	t.Run("derived: the API's service of those mounting alembic/", func(t *testing.T) {
		sp, sf, root := hookFixture(t, "")
		hooks, err := stackHooks(sp, sf, root, nil)
		require.NoError(t, err)
		assert.Equal(t, []Hook{{Name: "migrations", Service: "backend", Command: MigrationCommand, Source: "derived (mounts alembic/)"}}, hooks)
	})
	t.Run("the extension adds and replaces; the user's come last", func(t *testing.T) {
		sp, sf, root := hookFixture(t, `x-sandbox:
  hooks:
    - {name: seed, service: backend, command: [python, seed.py], timeout: 90s}
    - {name: migrations, service: worker, command: "alembic upgrade head && echo ok"}
`)
		user := []HookSpec{{Name: "warm", Service: "db", Command: json.RawMessage(`["psql","-c","select 1"]`)}}
		hooks, err := stackHooks(sp, sf, root, user)
		require.NoError(t, err)
		require.Len(t, hooks, 3)
		assert.Equal(t, Hook{Name: "migrations", Service: "worker", Command: []string{"sh", "-c", "alembic upgrade head && echo ok"}, Source: "x-sandbox of docker-compose.sandbox.yml"}, hooks[0])
		assert.Equal(t, "seed", hooks[1].Name)
		assert.Equal(t, 90e9, float64(hooks[1].Timeout))
		assert.Equal(t, Hook{Name: "warm", Service: "db", Command: []string{"psql", "-c", "select 1"}, Source: "config.json"}, hooks[2])
	})
	for name, c := range map[string]struct{ ext, want string }{
		"unknown service": {"x-sandbox:\n  hooks: [{name: a, service: nope, command: [x]}]\n", `service "nope" is not a service of the stack (backend, db, worker)`},
		"empty command":   {"x-sandbox:\n  hooks: [{name: a, service: db, command: []}]\n", "command must be a non-empty list"},
		"bad timeout":     {"x-sandbox:\n  hooks: [{name: a, service: db, command: [x], timeout: soon}]\n", `timeout "soon"`},
		"no name":         {"x-sandbox:\n  hooks: [{service: db, command: [x]}]\n", "it has no name"},
	} {
		t.Run(name, func(t *testing.T) {
			sp, sf, root := hookFixture(t, c.ext)
			_, err := stackHooks(sp, sf, root, nil)
			var he *HookError
			require.ErrorAs(t, err, &he)
			assert.Contains(t, he.Error(), c.want)
		})
	}
}

// A hook runs with compose exec -T in its service, after the checks of what
// its service depends on; a failure carries its exit status and output tail.
func TestHookChecksRunInTheServiceAfterTheirNeeds(t *testing.T) {
	sp, sf, root := hookFixture(t, "")
	hooks, err := stackHooks(sp, sf, root, nil)
	require.NoError(t, err)
	fr := &fakeRunner{handle: func(c driver.Cmd) ([]byte, error) {
		if c.Stdout != nil {
			c.Stdout.Write([]byte("INFO  [alembic] Running upgrade\nERROR relation exists\n"))
		}
		return nil, &driver.ExitError{Code: 3}
	}}
	c := &driver.Compose{Runner: fr, Command: []string{"docker", "compose"}}
	st := sp.StackFor("ktrdr--x", root)
	checks := []gate.Check{{Name: "Database ready", Service: "db"}, {Name: "Backend healthy", Service: "backend"}}
	hc := hookChecks(c, st, sf, checks, hooks)
	require.Len(t, hc, 1)
	assert.Equal(t, "Hook migrations (backend)", hc[0].Name)
	assert.True(t, hc[0].Once)
	assert.Equal(t, []string{"Database ready"}, hc[0].Needs, "the backend depends on db only")

	err = hc[0].Probe(context.Background())
	var hf *HookFailedError
	require.True(t, errors.As(err, &hf))
	assert.Equal(t, "exit status 3", hf.Err.Error())
	assert.Contains(t, err.Error(), "ERROR relation exists")
	cmd := fr.commands()[0]
	assert.True(t, strings.HasSuffix(cmd, "exec -T backend /app/.venv/bin/alembic upgrade head"), cmd)
	assert.Contains(t, cmd, "-p ktrdr--x --env-file "+filepath.Join(root, ".env.sandbox"))
}
