package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ktrdr/sandboxkit/internal/pgtest"
)

func writeRevision(t *testing.T, dir, name, body string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
}

func TestAlembicHead(t *testing.T) {
	dir := t.TempDir()
	head, err := alembicHead(dir)
	require.NoError(t, err)
	assert.Empty(t, head, "no revisions: nothing to do")

	writeRevision(t, dir, "0001_init.py", "\"\"\"init\"\"\"\nrevision = 'a1'\ndown_revision = None\n")
	writeRevision(t, dir, "0002_users.py", "revision: str = \"b2\"\ndown_revision: Union[str, None] = \"a1\"\n")
	writeRevision(t, dir, "__init__.py", "")
	head, err = alembicHead(dir)
	require.NoError(t, err)
	assert.Equal(t, "b2", head)

	writeRevision(t, dir, "0003_branch.py", "revision = 'c3'\ndown_revision = 'a1'\n")
	_, err = alembicHead(dir)
	assert.ErrorContains(t, err, "multiple heads")
	writeRevision(t, dir, "0004_merge.py", "revision = 'd4'\ndown_revision = ('b2', 'c3')\n")
	head, err = alembicHead(dir)
	require.NoError(t, err)
	assert.Equal(t, "d4", head, "a merge revision names both")
}

// The stand-in's `alembic upgrade head` records the head in a real
// PostgreSQL server, again and again (it is idempotent, like a migration).
func TestAlembicUpgradeHeadRecordsTheHead(t *testing.T) {
	addr := pgtest.Start(t, pgtest.Options{Password: "pw"})
	host, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	writeRevision(t, dir, "0001.py", "revision = 'a1'\ndown_revision = None\n")
	env := map[string]string{"KTRDR_STANDIN_ALEMBIC_DIR": dir, "DB_HOST": host, "DB_PORT": port, "DB_USER": "ktrdr", "DB_PASSWORD": "pw", "DB_NAME": "postgres"}
	getenv := func(k string) string { return env[k] }
	for _, want := range []string{"a1", "b2"} {
		if want == "b2" {
			writeRevision(t, dir, "0002.py", "revision = 'b2'\ndown_revision = 'a1'\n")
		}
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"/app/.venv/bin/alembic", "upgrade", "head"}, getenv, &out, &errb)
		require.Equal(t, 0, code, errb.String())
		assert.Contains(t, out.String(), "Running upgrade -> "+want)
		conn, err := pgx.Connect(context.Background(), "postgres://ktrdr:pw@"+addr+"/postgres?sslmode=disable")
		require.NoError(t, err)
		var got []string
		rows, err := conn.Query(context.Background(), "SELECT version_num FROM alembic_version")
		require.NoError(t, err)
		for rows.Next() {
			var v string
			require.NoError(t, rows.Scan(&v))
			got = append(got, v)
		}
		conn.Close(context.Background())
		assert.Equal(t, []string{want}, got)
	}

	env["DB_PASSWORD"] = "wrong"
	var errb bytes.Buffer
	assert.Equal(t, 1, run(context.Background(), []string{"alembic", "upgrade", "head"}, getenv, &bytes.Buffer{}, &errb))
	assert.Contains(t, errb.String(), "connect to the database")
	assert.NotContains(t, errb.String(), "wrong", "the password is not echoed")
}

func TestAlembicDSN(t *testing.T) {
	for name, c := range map[string]struct {
		env  map[string]string
		want string
	}{
		"SQLAlchemy URL":          {map[string]string{"DATABASE_URL": "postgresql+asyncpg://u:p@db:5432/k"}, "postgresql://u:p@db:5432/k"},
		"ktrdr's KTRDR_DB_*":      {map[string]string{"KTRDR_DB_HOST": "db", "KTRDR_DB_PORT": "5432", "KTRDR_DB_USER": "k", "KTRDR_DB_PASSWORD": "p w", "KTRDR_DB_NAME": "kt"}, "postgres://k:p%20w@db:5432/kt?sslmode=disable"},
		"January's DB_*, no port": {map[string]string{"DB_HOST": "db", "DB_USER": "k", "DB_NAME": "kt"}, "postgres://k:@db:5432/kt?sslmode=disable"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := alembicDSN(func(k string) string { return c.env[k] })
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}
	_, err := alembicDSN(func(string) string { return "" })
	assert.ErrorContains(t, err, "no database")
}
