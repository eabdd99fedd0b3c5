package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
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

	// The harness's shell exports KTRDR_API_PORT=9999: docker compose in the
	// main checkout would publish the merged file's API there, while the
	// legacy file's literal 8000 ignored it. Refused, naming the variable.
	exported := e.sbx(e.Main, "merge:apply", "-accept="+legacyAccept)
	assert.Equal(t, 1, exported.Code, exported.String())
	assert.Contains(t, exported.Stdout, "backend.ports: [8000:8000/tcp] → [9999:8000/tcp]")
	assert.Contains(t, exported.Stdout, "KTRDR_API_PORT (set by the environment)")
	assertMergeLeftNothing(t, e, legacy, composePath)
	e.Env = withoutShellPorts(e.Env)

	// The legacy file has no sandbox variables nor healthchecks: merging
	// changes both on purpose, and says so.
	applied := e.must(e.Main, "merge:apply", "-accept="+legacyAccept)
	assert.Contains(t, applied.Stdout, "rollback point")
	assert.Contains(t, applied.Stdout, "accepted changes:")
	merged, err := os.ReadFile(composePath)
	require.NoError(t, err)
	assert.False(t, bytes.Equal(legacy, merged))
	assert.Contains(t, e.git(e.Main, "tag", "--list"), "sandbox-merge/pre-")

	// The script wraps merge:verify and passes arguments through.
	live := e.run(e.Main, "bash", "scripts/verify-sandbox-merge.sh", "-live", "-standin")
	require.Equal(t, 0, live.Code, live.String())
	assert.Contains(t, live.Stdout, "✓ live: main stack on the standard ports")
	assert.Contains(t, live.Stdout, "✓ as the main checkout runs it (every profile, its .env, this environment), the same main stack as the pre-merge file")
	c, v, n := projectResources("ktrdr-main-check")
	assert.Zero(t, c+v+n, "the live check brought its stack down")

	// For CI: one JSON document on stdout, the live check's steps on stderr.
	liveJSON := e.run(e.Main, "bash", "scripts/verify-sandbox-merge.sh", "-live", "-standin", "-json")
	require.Equal(t, 0, liveJSON.Code, liveJSON.String())
	var doc struct {
		Passed bool `json:"passed"`
		Items  []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		} `json:"items"`
	}
	dec := json.NewDecoder(strings.NewReader(liveJSON.Stdout))
	require.NoError(t, dec.Decode(&doc), "stdout is one JSON document: %s", liveJSON.Stdout)
	assert.False(t, dec.More(), "and nothing else")
	assert.True(t, doc.Passed)
	require.NotEmpty(t, doc.Items)
	assert.Equal(t, "live: main stack on the standard ports", doc.Items[len(doc.Items)-1].Name)
	assert.True(t, doc.Items[len(doc.Items)-1].OK)
	assert.NotEmpty(t, liveJSON.Stderr, "the live check's steps")
	c, v, n = projectResources("ktrdr-main-check")
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
	e.must(e.Main, "merge:apply", "-accept="+legacyAccept)
	require.NoError(t, os.Remove(mergeBackup(t, e)))
	fromTag := e.must(e.Main, "merge:rollback")
	assert.Contains(t, fromTag.Stdout, "tag")
	assert.Equal(t, legacy, mustRead(t, composePath))
}

// A broken merged file fails verify naming the item, and apply writes
// nothing.
func TestMergeApplyRefusesABrokenFile(t *testing.T) {
	e := newEnv(t)
	e.Env = withoutShellPorts(e.Env)
	legacy, composePath := withLegacyCompose(t, e)
	broken := bytes.Replace(mustRead(t, filepath.Join(e.Main, "docker-compose.sandbox.yml")),
		[]byte(`"${KTRDR_API_PORT:-8000}:8000"`), []byte(`"${KTRDR_API_PORT:-8080}:8000"`), 1)
	src := filepath.Join(t.TempDir(), "broken.yml")
	require.NoError(t, os.WriteFile(src, broken, 0o644))

	r := e.sbx(e.Main, "merge:apply", "-from="+src, "-accept="+legacyAccept)
	assert.Equal(t, 1, r.Code, r.String())
	assert.Contains(t, r.Stdout, "✗ no variables: slot-0 ports")
	assert.Contains(t, r.Stdout, "backend.ports: [8000:8000/tcp] → [8080:8000/tcp]")
	assertMergeLeftNothing(t, e, legacy, composePath)
}

// From a checkout of this project (the merged file in place), a merge
// source that changes how the main stack runs is refused, naming the
// service, field, old and new value, and leaves nothing behind; named in
// -accept it applies, and rolls back byte for byte.
func TestMergeApplyRefusesAChangeToTheMainStack(t *testing.T) {
	e := newEnv(t)
	composePath := filepath.Join(e.Main, "docker-compose.yml")
	before := mustRead(t, composePath)
	changed := bytes.Replace(mustRead(t, filepath.Join(e.Main, "docker-compose.sandbox.yml")),
		[]byte("image: ${KTRDR_DB_IMAGE:-timescale/timescaledb:latest-pg16}"), []byte("image: postgres:9.6"), 1)
	src := filepath.Join(t.TempDir(), "changed.yml")
	require.NoError(t, os.WriteFile(src, changed, 0o644))

	r := e.sbx(e.Main, "merge:apply", "-from="+src)
	assert.Equal(t, 1, r.Code, r.String())
	assert.Contains(t, r.Stdout, "db.image: timescale/timescaledb:latest-pg16 → postgres:9.6")
	assert.Contains(t, r.Stderr, "go tool mage merge:apply -accept=db.image")
	assertMergeLeftNothing(t, e, before, composePath)

	e.must(e.Main, "merge:apply", "-from="+src, "-accept=db.image")
	v := e.run(e.Main, "bash", "scripts/verify-sandbox-merge.sh")
	assert.Equal(t, 0, v.Code, "verify knows what apply accepted: %s", v)
	e.must(e.Main, "merge:rollback")
	assert.Equal(t, before, mustRead(t, composePath), "byte for byte")
}

// withoutShellPorts drops the harness's exported port variables: merging
// into a file with literal ports, they would move the main stack (the
// comparison uses the environment merge:apply runs in, as compose would).
func withoutShellPorts(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "KTRDR_API_PORT=") && !strings.HasPrefix(kv, "KTRDR_DB_PORT=") {
			out = append(out, kv)
		}
	}
	return out
}

// legacyAccept accepts what merging the sandbox file into the legacy file
// changes on purpose: the environment and healthchecks of every service.
const legacyAccept = "*.environment,*.healthcheck"

// mergeBackup is the backup merge:apply made in e.Main.
func mergeBackup(t *testing.T, e *env) string {
	t.Helper()
	found, err := filepath.Glob(filepath.Join(e.Home, ".ktrdr", "sandbox", "merge", "*", "docker-compose.yml.pre-merge"))
	require.NoError(t, err)
	require.Len(t, found, 1)
	return found[0]
}

// assertMergeLeftNothing: no tag, no merge state, the main file as before.
func assertMergeLeftNothing(t *testing.T, e *env, before []byte, composePath string) {
	t.Helper()
	assert.Empty(t, e.git(e.Main, "tag", "--list", "sandbox-merge/*"), "no tag")
	assert.NoDirExists(t, filepath.Join(e.Home, ".ktrdr", "sandbox", "merge"), "no merge state")
	assert.NoDirExists(t, filepath.Join(e.Main, ".ktrdr-merge"))
	assert.Equal(t, before, mustRead(t, composePath), "byte for byte")
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

// A checkout whose docker-compose.yml is a committed link to
// deploy/environments/local/docker-compose.yml, with services the merge
// source lacks (one only for a profile): merge:apply refuses through mage,
// naming them, hints how to keep or drop them, and leaves the link, its
// target and the tree as they were.
func TestMergeApplyRefusesDroppedServicesThroughALink(t *testing.T) {
	e := newEnv(t)
	const rel = "deploy/environments/local/docker-compose.yml"
	link := filepath.Join(e.Main, "docker-compose.yml")
	target := filepath.Join(e.Main, rel)
	main := bytes.Replace(mustRead(t, link), []byte("\nvolumes:\n"), []byte(`
  tools-local:
    image: ktrdr-tools:dev
    stdin_open: true

  tools-staging:
    image: ktrdr-tools:dev
    stdin_open: true
    profiles: [staging]

volumes:
`), 1)
	require.NoError(t, os.MkdirAll(filepath.Dir(target), 0o755))
	require.NoError(t, os.WriteFile(target, main, 0o644))
	require.NoError(t, os.Remove(link))
	require.NoError(t, os.Symlink(rel, link))
	e.git(e.Main, "add", "-A")
	e.git(e.Main, "commit", "-q", "-m", "compose file per environment, linked")

	r := e.sbx(e.Main, "merge:apply")
	assert.Equal(t, 1, r.Code, r.String())
	assert.Contains(t, r.Stdout, "the merged file drops services tools-local, tools-staging, which the main file has")
	assert.Contains(t, r.Stderr, "add tools-local, tools-staging to the merge source")
	assert.Contains(t, r.Stderr, "-accept=tools-local.service,tools-staging.service")
	assertMergeLeftNothing(t, e, main, link)
	l, err := os.Readlink(link)
	require.NoError(t, err, "still a link")
	assert.Equal(t, rel, l)
	assert.Empty(t, e.git(e.Main, "status", "--porcelain", "--untracked-files=all"))
}
