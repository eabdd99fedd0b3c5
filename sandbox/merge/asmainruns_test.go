package merge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The comparison resolves both files as docker compose in the main checkout
// does: with the environment merge:apply runs in. A merge source that hides
// a change behind a variable of the shell (image: ${USER:-<old image>}) is
// refused where the shell sets it, and the report names the variable.
func TestCompareUsesTheEnvironmentMergeRunsIn(t *testing.T) {
	t.Setenv("USER", "someone")
	m := mutation{old: "image: ${KTRDR_DB_IMAGE:-timescale/timescaledb:latest-pg16}", new: "image: ${USER:-timescale/timescaledb:latest-pg16}"}
	dir, from, pre := compatRepo(t, m)
	o := opts(dir)
	o.From = from
	res, err := Apply(t.Context(), o)
	var ve *VerifyError
	require.ErrorAs(t, err, &ve)
	assert.Contains(t, err.Error(), "db.image: timescale/timescaledb:latest-pg16 → someone")
	assert.Contains(t, err.Error(), "the merged file reads a variable the pre-merge file did not: USER (set by the environment)")
	assert.Equal(t, []Variable{{Name: "USER", Default: "timescale/timescaledb:latest-pg16", Origin: fromEnvironment}}, res.Report.NewVariables)
	assertNothingLeft(t, dir, pre)

	// Where the environment leaves it unset, the main stack is the same:
	// the merge passes, and the report still names the variable.
	o.Environ = []string{"HOME=" + homeOf(dir)}
	res, err = Apply(t.Context(), o)
	require.NoError(t, err, "%v", res.Report.Items)
	it, _ := itemNamed(res.Report, ItemCompatible)
	assert.True(t, it.OK)
	assert.Contains(t, it.String(), "USER (unset: default timescale/timescaledb:latest-pg16)")
}

// The compose project name is the one the folder (or the file's name:)
// gives, and every profile is compared, whatever COMPOSE_PROJECT_NAME and
// COMPOSE_PROFILES say; a variable both files read in the same way makes
// no difference, and its value is never shown.
func TestCompareKeepsItsProjectNameAndProfiles(t *testing.T) {
	t.Setenv("COMPOSE_PROJECT_NAME", "hijacked")
	t.Setenv("COMPOSE_PROFILES", "full")
	t.Setenv("KTRDR_DB_PASSWORD", "from-the-shell")
	m := mutations[1] // backend behind a profile
	dir, from, _ := compatRepo(t, m)
	o := opts(dir)
	o.From = from
	_, err := Apply(t.Context(), o)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "backend.profiles: (none) → [full]")

	m = mutations[4] // top-level name: the derived name is the folder's
	dir, from, _ = compatRepo(t, m)
	o = opts(dir)
	o.From = from
	_, err = Apply(t.Context(), o)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "name: ktrdr → renamed")
	assert.Contains(t, err.Error(), "volumes: postgres_data (name ktrdr_postgres_data) → postgres_data (name renamed_postgres_data)")
	assert.NotContains(t, err.Error(), "from-the-shell")
}

// dotEnvRepo is a checkout of the legacy file (literal ports) with dotEnv
// committed as its .env.
func dotEnvRepo(t *testing.T, dotEnv string) (string, []byte) {
	t.Helper()
	dir, legacy := newRepo(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, DotEnv), []byte(dotEnv), 0o644))
	gitT(t, dir, "add", DotEnv)
	gitT(t, dir, "commit", "-q", "-m", "the main checkout's .env")
	return dir, legacy
}

// A .env in the main checkout that the literal pre-merge file ignored but
// the merged file reads moves the main stack: refused, naming the change
// and the variable. The environment overrides the .env, as in compose.
func TestMainDotEnvThatMovesAPortIsRefused(t *testing.T) {
	t.Parallel()
	dir, legacy := dotEnvRepo(t, "# ports of this machine\nKTRDR_API_PORT=8999\nKTRDR_DATA_DIR=/srv/ktrdr-data\n")
	o := legacyOpts(dir)
	o.Environ = []string{}
	res, err := Apply(t.Context(), o)
	var ve *VerifyError
	require.ErrorAs(t, err, &ve)
	assert.Contains(t, err.Error(), "backend.ports: [8000:8000/tcp] → [8999:8000/tcp]")
	assert.Contains(t, err.Error(), "backend.volumes: bind ./data:/app/data → bind /srv/ktrdr-data:/app/data")
	assert.Contains(t, res.Report.NewVariables, Variable{Name: "KTRDR_API_PORT", Default: "8000", Origin: DotEnv})
	assert.Contains(t, res.Report.NewVariables, Variable{Name: "KTRDR_DB_PORT", Default: "5432"})
	it, _ := itemNamed(res.Report, ItemCompatible)
	assert.Contains(t, it.Reason, "KTRDR_API_PORT (set by .env)")
	assert.Contains(t, it.Reason, "KTRDR_DB_PORT (unset: default 5432)")
	assertNothingLeft(t, dir, legacy)

	// The environment wins over the .env: with the standard values there,
	// the main stack is the same.
	o.Environ = []string{"KTRDR_API_PORT=8000", "KTRDR_DATA_DIR=./data"}
	res, err = Apply(t.Context(), o)
	require.NoError(t, err, "%v", res.Report.Items)
	assert.Contains(t, res.Report.NewVariables, Variable{Name: "KTRDR_API_PORT", Default: "8000", Origin: fromEnvironment})
}

// A .env that cannot be read safely stops the comparison: the main stack it
// would give cannot be known.
func TestMainDotEnvMustBeARegularFileOfTheCheckout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"link outside the checkout", func(t *testing.T, dir string) {
			outside := filepath.Join(t.TempDir(), "env")
			require.NoError(t, os.WriteFile(outside, []byte("KTRDR_API_PORT=8999\n"), 0o644))
			require.NoError(t, os.Symlink(outside, filepath.Join(dir, DotEnv)))
		}, "outside the checkout"},
		{"a folder", func(t *testing.T, dir string) {
			require.NoError(t, os.Mkdir(filepath.Join(dir, DotEnv), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(dir, DotEnv, "x"), nil, 0o644))
		}, "not a regular file"},
		{"too large", func(t *testing.T, dir string) {
			big := "A=" + strings.Repeat("x", maxDotEnv) + "\n"
			require.NoError(t, os.WriteFile(filepath.Join(dir, DotEnv), []byte(big), 0o644))
		}, "more than the 1048576"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, _ := newRepo(t)
			tt.setup(t, dir)
			gitT(t, dir, "add", "-A")
			gitT(t, dir, "commit", "-q", "-m", "a .env")
			before := readT(t, filepath.Join(dir, "docker-compose.yml"))
			o := legacyOpts(dir)
			o.Environ = []string{}
			res, err := Apply(t.Context(), o)
			var ve *VerifyError
			require.ErrorAs(t, err, &ve)
			it, _ := itemNamed(res.Report, ItemCompatible)
			assert.False(t, it.OK)
			assert.Contains(t, it.Reason, "refused to read "+filepath.Join(dir, DotEnv))
			assert.Contains(t, it.Reason, tt.want)
			assert.Empty(t, gitT(t, dir, "tag", "--list"))
			assert.Equal(t, before, readT(t, filepath.Join(dir, "docker-compose.yml")))
		})
	}
}

// aprilRepo is a checkout laid out as ktrdr in April: observability moved
// to a shared stack outside the project (no grafana, jaeger, prometheus),
// agents and an MCP server on ports of their own. main is its
// docker-compose.yml; its sandbox compose file is the April file.
func aprilRepo(t *testing.T, main []byte) string {
	t.Helper()
	dir := newRepoWith(t, main)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "docker-compose.sandbox.yml"), readT(t, "../../e2e/testdata/april/docker-compose.sandbox.yml"), 0o644))
	gitT(t, dir, "commit", "-q", "-am", "the April layout")
	return dir
}

// The slot-0 item holds the file to the checkout's own stack model, not to
// a compiled-in list of services: a stack without grafana, jaeger and
// prometheus passes; a port its model does not give fails.
func TestSlot0UsesTheCheckoutsStackModel(t *testing.T) {
	t.Parallel()
	april := readT(t, "../../e2e/testdata/april/docker-compose.sandbox.yml")
	tests := []struct {
		name string
		main []byte
		ok   bool
		want string
	}{
		{name: "April layout", main: april, ok: true},
		{name: "a port the model does not give", main: []byte(strings.Replace(string(april), "${KTRDR_MCP_PORT:-8100}", "${KTRDR_MCP_PORT:-8101}", 1)),
			want: "mcp-local does not publish 8100 (KTRDR_MCP_PORT); it publishes [8101→8100]"},
		{name: "no shared mount", main: []byte(strings.Replace(string(april), "${KTRDR_MODELS_DIR:-./models}:/app/models", "./trained:/app/models", 1)),
			want: "no service mounts ./models (the KTRDR_MODELS_DIR fallback)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := aprilRepo(t, tt.main)
			rep, err := Verify(t.Context(), opts(dir))
			require.NoError(t, err)
			it, ok := itemNamed(rep, ItemSlot0)
			require.True(t, ok)
			assert.Contains(t, it.Name, "port plan of ./docker-compose.sandbox.yml")
			assert.Equal(t, tt.ok, it.OK, it.String())
			assert.Contains(t, it.Reason, tt.want)
			if tt.ok {
				assert.True(t, rep.OK(), "%v", rep.Items)
			}
		})
	}

	// Without a sandbox compose file, the model is the merged file's own.
	t.Run("no sandbox compose file", func(t *testing.T) {
		t.Parallel()
		dir := aprilRepo(t, april)
		gitT(t, dir, "rm", "-q", "docker-compose.sandbox.yml")
		gitT(t, dir, "commit", "-q", "-m", "no sandbox file")
		rep, err := Verify(t.Context(), opts(dir))
		require.NoError(t, err)
		it, _ := itemNamed(rep, ItemSlot0)
		assert.True(t, it.OK, it.String())
		assert.Contains(t, it.Name, "port plan of ./docker-compose.yml")
	})
}
