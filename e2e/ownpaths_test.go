package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Issue 16: nothing outside the suite's own files is ever written or
// deleted, as a person runs the commands. No stack is started.
func TestNothingOutsideTheSuiteIsTouched(t *testing.T) {
	e := newEnv(t)

	// A hand-edited registry id that climbs out of the state folder: list
	// used to delete the folder it names and exit 0 with "Cleaned stale entry".
	victim := filepath.Join(filepath.Dir(e.Home), "important")
	require.NoError(t, os.MkdirAll(victim, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(victim, "thesis.tex"), []byte("years of work\n"), 0o600))
	regPath := filepath.Join(e.Home, ".ktrdr", "sandbox", "instances.json")
	require.NoError(t, os.MkdirAll(filepath.Dir(regPath), 0o755))
	reg := []byte(`{"version": 1, "instances": {"../../../../important": {"slot": 1, "path": "/nonexistent/gone", "created_at": "2020-01-01T00:00:00Z"}}}`)
	require.NoError(t, os.WriteFile(regPath, reg, 0o644))

	r := e.sbx(e.Main, "sandbox:list")
	assert.Equal(t, 1, r.Code, r.String())
	assert.NotContains(t, r.Stdout, "Cleaned stale entry")
	assert.Contains(t, r.Stderr, `entry "../../../../important"`)
	assert.Contains(t, r.Stderr, "hint: nothing was deleted on its account")
	assert.Equal(t, "years of work\n", string(mustRead(t, filepath.Join(victim, "thesis.tex"))), "the victim is untouched")
	assert.Equal(t, reg, mustRead(t, regPath), "the registry is not rewritten")
	require.NoError(t, os.Remove(regPath))

	// A .env.sandbox above the checkout is not the checkout's.
	outer := []byte("KTRDR_API_PORT=8009\n")
	require.NoError(t, os.WriteFile(filepath.Join(e.Dev, ".env.sandbox"), outer, 0o644))
	assert.Equal(t, "http://localhost:8000\n", e.must(e.Main, "sandbox:url").Stdout)
	down := e.sbx(e.Main, "sandbox:down")
	assert.Equal(t, 1, down.Code, down.String())
	assert.Contains(t, down.Stderr, "is not inside a sandbox")
	assert.Equal(t, outer, mustRead(t, filepath.Join(e.Dev, ".env.sandbox")))
}
