package merge

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runScript runs a script of the repository the way a person does and
// returns its output and exit code.
func runScript(t *testing.T, script string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.CommandContext(t.Context(), "bash", filepath.Join("..", "..", "scripts", script))
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !assert.ErrorAs(t, err, &ee) {
		return out.String(), -1
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// TestScripts runs scripts/verify-sandbox-merge.sh and
// scripts/sandbox-rollback.sh in this repository (compiling the magefiles
// through `go tool mage`).
func TestScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go tool mage: skipped with -short")
	}
	repo, err := filepath.Abs("../..")
	require.NoError(t, err)

	t.Run("verify", func(t *testing.T) {
		out, code := runScript(t, "verify-sandbox-merge.sh")
		require.Equal(t, 0, code, out)
		assert.Contains(t, out, "✓ "+ItemParses)
		assert.Contains(t, out, "✓ "+ItemNoName)
		assert.Contains(t, out, "items pass")
		assert.NotContains(t, out, "✗")
	})

	t.Run("rollback", func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(repo, StateDir, StateName)); err == nil {
			t.Skip("this checkout has a merge state: running the rollback would change its docker-compose.yml")
		}
		before, err := os.ReadFile(filepath.Join(repo, "docker-compose.yml"))
		require.NoError(t, err)
		out, code := runScript(t, "sandbox-rollback.sh")
		require.Equal(t, 0, code, out)
		assert.Contains(t, out, "nothing to do")
		assert.NoDirExists(t, filepath.Join(repo, StateDir), "rollback creates nothing")
		after, err := os.ReadFile(filepath.Join(repo, "docker-compose.yml"))
		require.NoError(t, err)
		assert.Equal(t, before, after)
	})
}
