package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// psql runs SQL in a sandbox's database container with the image's own
// psql and returns its unaligned, tuples-only output. extra goes before
// the SQL (e.g. -h 127.0.0.1 for TCP); env are docker exec -e values.
func psql(container string, env []string, sql string, extra ...string) (string, error) {
	args := []string{"exec"}
	for _, v := range env {
		args = append(args, "-e", v)
	}
	args = append(args, container, "psql", "-v", "ON_ERROR_STOP=1", "-U", "ktrdr", "-d", "ktrdr", "-tAq")
	args = append(args, extra...)
	args = append(args, "-c", sql)
	out, err := exec.Command("docker", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Stand-in mode's database is a real PostgreSQL (ktrdr-postgres:dev, from
// the host's Debian packages): the file's POSTGRES_* make the user, its
// password and the database on the first start, the data lives in the
// file's volume, so it survives down and up, and down -volumes removes it.
func TestStandinDatabaseIsARealPostgres(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	name := namePrefix + "pgdata"
	project := "ktrdr--" + name
	e.must(e.Main, "sandbox:create", name, "-standin")
	dir := e.sandboxDir(name)
	up := e.must(dir, "sandbox:up")
	assert.Contains(t, up.Stdout, "Startability Gate: PASSED")

	db := containerOf(t, project, "db")
	image, err := exec.Command("docker", "inspect", "--format", "{{.Config.Image}}", db).Output()
	require.NoError(t, err)
	assert.Equal(t, "ktrdr-postgres:dev", strings.TrimSpace(string(image)))

	out, err := psql(db, nil, "SELECT current_user || ' ' || current_database() || ' ' || split_part(version(), ' ', 1)")
	require.NoError(t, err, out)
	assert.Equal(t, "ktrdr ktrdr PostgreSQL", out, "POSTGRES_USER and POSTGRES_DB made on the first start")
	// Over TCP the password counts (POSTGRES_PASSWORD, the file's localdev).
	out, err = psql(db, []string{"PGPASSWORD=localdev"}, "SELECT 1", "-h", "127.0.0.1")
	require.NoError(t, err, out)
	assert.Equal(t, "1", out)
	out, err = psql(db, []string{"PGPASSWORD=wrong"}, "SELECT 1", "-h", "127.0.0.1")
	assert.Error(t, err)
	assert.Contains(t, out, "password authentication failed")

	out, err = psql(db, nil, "CREATE TABLE kept (note text); INSERT INTO kept VALUES ('written before down')")
	require.NoError(t, err, out)

	// down keeps the volume: the row is there after up.
	e.must(dir, "sandbox:down")
	up = e.must(dir, "sandbox:up")
	assert.Contains(t, up.Stdout, "Startability Gate: PASSED")
	db = containerOf(t, project, "db")
	out, err = psql(db, nil, "SELECT note FROM kept")
	require.NoError(t, err, out)
	assert.Equal(t, "written before down", out)
	logs, _ := exec.Command("docker", "logs", db).CombinedOutput()
	assert.Contains(t, string(logs), "holds a cluster already", "the second start used the existing cluster")

	// down -volumes removes the data: up starts with an empty database.
	e.must(dir, "sandbox:down", "-volumes")
	up = e.must(dir, "sandbox:up")
	assert.Contains(t, up.Stdout, "Startability Gate: PASSED")
	db = containerOf(t, project, "db")
	out, err = psql(db, nil, "SELECT count(*) FROM pg_tables WHERE tablename = 'kept'")
	require.NoError(t, err, out)
	assert.Equal(t, "0", out, "a new cluster without the table")

	e.must(dir, "sandbox:destroy")
	c, v, n := projectResources(project)
	assert.Zero(t, c+v+n)
}
