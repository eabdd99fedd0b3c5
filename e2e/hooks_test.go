package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ktrdr/sandboxkit/sandbox/envfile"
)

// Issue 21: a service that mounts the checkout's alembic/ runs ktrdr's
// migration before the gate can pass, against a real PostgreSQL (stand-in
// mode); a fresh volume gets it again; a failing migration fails the gate
// with its output.
func TestMigrationsRunBeforeTheGatePasses(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	e.withShape(t, "january")
	name := namePrefix + "mig"
	e.must(e.Main, "sandbox:create", name, "-standin")
	dir := e.sandboxDir(name)
	writeOverride(t, dir, "services:\n  backend:\n    volumes: [\"./alembic:/app/alembic:ro\"]\n")
	versions := filepath.Join(dir, "alembic", "versions")
	require.NoError(t, os.MkdirAll(versions, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(versions, "0001_init.py"), []byte("revision = 'a1'\ndown_revision = None\n"), 0o644))

	up := func() upOut {
		r := e.sbx(dir, "sandbox:up", "-json")
		require.Equal(t, 0, r.Code, r.String())
		var u upOut
		require.NoError(t, json.Unmarshal([]byte(r.Stdout), &u), r.String())
		return u
	}
	u := up()
	require.NotNil(t, u.Gate)
	found := false
	for _, c := range u.Gate.Checks {
		if c.Name == "Hook migrations (backend)" {
			found = true
			assert.True(t, c.Passed)
		}
	}
	require.True(t, found, "the migration is a check of the gate")
	assert.Equal(t, []string{"a1"}, alembicVersion(t, e, dir))

	// A new revision: the next up records it; a fresh volume gets it again.
	require.NoError(t, os.WriteFile(filepath.Join(versions, "0002_next.py"), []byte("revision = 'b2'\ndown_revision = 'a1'\n"), 0o644))
	e.must(dir, "sandbox:down")
	up()
	assert.Equal(t, []string{"b2"}, alembicVersion(t, e, dir))
	e.must(dir, "sandbox:down", "-volumes")
	up()
	assert.Equal(t, []string{"b2"}, alembicVersion(t, e, dir), "migrations ran again on a fresh volume")

	// Two heads: the migration fails, and so does the gate, with its output.
	require.NoError(t, os.WriteFile(filepath.Join(versions, "0003_fork.py"), []byte("revision = 'c3'\ndown_revision = 'a1'\n"), 0o644))
	r := e.sbx(dir, "sandbox:up")
	assert.Equal(t, 2, r.Code, r.String())
	assert.Contains(t, r.Stdout+r.Stderr, "Hook migrations (backend)")
	assert.Contains(t, r.Stdout+r.Stderr, "multiple heads")

	e.must(dir, "sandbox:destroy", "-force")
}

// alembicVersion reads alembic_version of the sandbox's database through
// its published port, with the file's credentials.
func alembicVersion(t *testing.T, e *env, dir string) []string {
	t.Helper()
	env, err := envfile.Read(filepath.Join(dir, ".env.sandbox"))
	require.NoError(t, err)
	port, err := strconv.Atoi(env["KTRDR_DB_PORT"])
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, "postgres://ktrdr:localdev@127.0.0.1:"+strconv.Itoa(port)+"/ktrdr?sslmode=disable")
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT version_num FROM alembic_version")
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		var v string
		require.NoError(t, rows.Scan(&v))
		out = append(out, v)
	}
	return out
}
