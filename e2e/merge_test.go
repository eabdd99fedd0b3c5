package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Milestone 6 on the real engine: a checkout with the legacy compose file is
// merged, verified live on the standard ports, and rolled back byte for byte
// through the scripts a CI job would call.
func TestMergeApplyVerifyLiveRollback(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	legacy, composePath := withLegacyCompose(t, e)

	applied := e.must(e.Main, "merge:apply")
	assert.Contains(t, applied.Stdout, "rollback point")
	merged, err := os.ReadFile(composePath)
	require.NoError(t, err)
	assert.False(t, bytes.Equal(legacy, merged))
	assert.Contains(t, e.git(e.Main, "tag", "--list"), "sandbox-merge/pre-")

	// The script wraps merge:verify and passes arguments through.
	live := e.run(e.Main, "bash", "scripts/verify-sandbox-merge.sh", "-live", "-standin")
	require.Equal(t, 0, live.Code, live.String())
	assert.Contains(t, live.Stdout, "✓ live: main stack on the standard ports")
	assert.Contains(t, live.Stdout, "✓ nothing the pre-merge file offered disappeared or changed")
	c, v, n := projectResources("ktrdr-main-check")
	assert.Zero(t, c+v+n, "the live check brought its stack down")

	rb := e.run(e.Main, "bash", "scripts/sandbox-rollback.sh")
	require.Equal(t, 0, rb.Code, rb.String())
	restored, err := os.ReadFile(composePath)
	require.NoError(t, err)
	assert.Equal(t, legacy, restored, "byte for byte")
	twice := e.run(e.Main, "bash", "scripts/sandbox-rollback.sh")
	assert.Equal(t, 0, twice.Code, "rollback twice is harmless: %s", twice)
	assert.Equal(t, legacy, mustRead(t, composePath))

	// Without the backup the tag restores it.
	e.must(e.Main, "merge:apply")
	require.NoError(t, os.Remove(filepath.Join(e.Main, ".ktrdr-merge", "docker-compose.yml.pre-merge")))
	fromTag := e.must(e.Main, "merge:rollback")
	assert.Contains(t, fromTag.Stdout, "tag")
	assert.Equal(t, legacy, mustRead(t, composePath))
}

// A broken merged file fails verify naming the item, and apply undoes itself.
func TestMergeApplyRollsBackABrokenFile(t *testing.T) {
	e := newEnv(t)
	legacy, composePath := withLegacyCompose(t, e)
	broken := bytes.Replace(mustRead(t, filepath.Join(e.Main, "docker-compose.sandbox.yml")),
		[]byte(`"${KTRDR_API_PORT:-8000}:8000"`), []byte(`"${KTRDR_API_PORT:-8080}:8000"`), 1)
	src := filepath.Join(t.TempDir(), "broken.yml")
	require.NoError(t, os.WriteFile(src, broken, 0o644))

	r := e.sbx(e.Main, "merge:apply", "-from="+src)
	assert.Equal(t, 1, r.Code, r.String())
	assert.Contains(t, r.Stdout, "✗ no variables: slot-0 ports")
	assert.Contains(t, r.Stdout+r.Stderr, "8080")
	assert.Equal(t, legacy, mustRead(t, composePath), "apply rolled back by itself")
}

// withLegacyCompose commits the pre-sandbox compose file as the main
// checkout's docker-compose.yml and returns its bytes and path.
func withLegacyCompose(t *testing.T, e *env) ([]byte, string) {
	legacy, err := os.ReadFile(filepath.Join(repoRoot, "sandbox", "merge", "testdata", "docker-compose.legacy.yml"))
	require.NoError(t, err)
	composePath := filepath.Join(e.Main, "docker-compose.yml")
	require.NoError(t, os.WriteFile(composePath, legacy, 0o644))
	e.git(e.Main, "commit", "-q", "-am", "the pre-sandbox compose file")
	return legacy, composePath
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return data
}
