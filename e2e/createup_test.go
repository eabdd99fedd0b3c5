package e2e

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sandbox:create -up as a script runs it: one command to a ready sandbox,
// one JSON document; a start that fails leaves the sandbox, with the gate's
// exit code and the error in the document.
func TestCreateUpOneStep(t *testing.T) {
	needDocker(t)
	e := newEnv(t)

	ok := e.sbx(e.Main, "sandbox:create", namePrefix+"one", "-standin", "-up", "-json")
	require.Equal(t, 0, ok.Code, "%s", ok)
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(ok.Stdout), &doc), "stdout is one JSON document")
	assert.Equal(t, "ktrdr--"+namePrefix+"one", doc["id"])
	assert.NotContains(t, doc, "error")
	up := doc["up"].(map[string]any)
	assert.Equal(t, true, up["gate"].(map[string]any)["passed"])
	code, body := get(doc["api_url"].(string) + "/api/v1/health")
	assert.Equal(t, 200, code, body)
	assert.Contains(t, ok.Stderr, "Starting ktrdr--"+namePrefix+"one", "progress goes to stderr")

	// A backend that starts listening in an hour, committed on the branch
	// the new sandbox is made from: the gate gives up.
	writeOverride(t, e.Main, "services:\n  backend:\n    environment:\n      KTRDR_STANDIN_START_DELAY: \"1h\"\n")
	e.git(e.Main, "add", "docker-compose.sandbox.override.yml")
	e.git(e.Main, "commit", "-q", "-m", "a slow backend")
	name := namePrefix + "slow"
	failed := e.sbx(e.Main, "sandbox:create", name, "-standin", "-up", "-json", "-timeout=15s")
	assert.Equal(t, 2, failed.Code, "the gate's exit code")
	doc = nil
	require.NoError(t, json.Unmarshal([]byte(failed.Stdout), &doc), "one document also when the start failed")
	failure := doc["error"].(map[string]any)
	assert.Equal(t, float64(2), failure["exit_code"])
	assert.Contains(t, failure["hint"], "the sandbox stays created")
	assert.Equal(t, false, doc["up"].(map[string]any)["gate"].(map[string]any)["passed"])
	assert.Contains(t, failed.Stderr, "hint: ", "the person's hint on stderr")

	dir := e.sandboxDir(name)
	assert.FileExists(t, filepath.Join(dir, ".env.sandbox"), "the sandbox stays")
	st := e.must(dir, "sandbox:status", "-json")
	assert.Contains(t, st.Stdout, `"passed": false`, "its failed gate is on record")
	e.must(e.Main, "sandbox:destroy", "-name="+name, "-force")
	e.must(e.Main, "sandbox:destroy", "-name="+namePrefix+"one", "-force")
	for _, p := range []string{"ktrdr--" + name, "ktrdr--" + namePrefix + "one"} {
		c, v, n := projectResources(p)
		assert.Zero(t, c+v+n, "nothing of %s is left", p)
	}
}
