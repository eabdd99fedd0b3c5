package e2e

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Issue 21: a stack's secrets come from ~/.ktrdr/sandbox/secrets.env, which
// must be private; they reach compose only as an --env-file, the container
// gets them, and they are written and printed nowhere.
func TestSecretsReachTheStackAndNothingElse(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	const secret, dbSecret = "e2e-Secret-7f3a9c", "e2e-db-pass-51c0"
	name := namePrefix + "sec"
	e.must(e.Main, "sandbox:create", name, "-standin")
	dir := e.sandboxDir(name)
	project := "ktrdr--" + name
	writeOverride(t, dir, "services:\n  backend:\n    environment:\n      KTRDR_TEST_SECRET_ENV: ${KTRDR_TEST_SECRET:?put it in secrets.env}\n")
	path := filepath.Join(e.Home, ".ktrdr", "sandbox", "secrets.env")
	require.NoError(t, os.WriteFile(path, []byte("KTRDR_TEST_SECRET="+secret+"\nKTRDR_DB_PASSWORD="+dbSecret+"\n"), 0o644))
	require.NoError(t, os.Chmod(path, 0o644))
	var printed []string

	// Others may read it: refused with its own code and the fix, nothing made.
	r := e.sbx(dir, "sandbox:up")
	printed = append(printed, r.Stdout, r.Stderr)
	assert.Equal(t, 6, r.Code, r.String())
	assert.Contains(t, r.Stderr, "chmod 600 "+path)
	c, v, n := projectResources(project)
	assert.Equal(t, [3]int{0, 0, 0}, [3]int{c, v, n}, "nothing was made for the refused up")

	// Private: the stack starts and the container has the value.
	require.NoError(t, os.Chmod(path, 0o600))
	r = e.sbx(dir, "sandbox:up", "-json")
	printed = append(printed, r.Stdout, r.Stderr)
	require.Equal(t, 0, r.Code, r.String())
	assert.Contains(t, r.Stdout, ":***@", "the database URL's password is masked")
	out, err := exec.Command("docker", "inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", containerOf(t, project, "backend")).Output()
	require.NoError(t, err)
	assert.Contains(t, string(out), "KTRDR_TEST_SECRET_ENV="+secret)
	assert.Contains(t, string(out), "DB_PASSWORD="+dbSecret)

	r = e.sbx(dir, "sandbox:status", "-json")
	printed = append(printed, r.Stdout, r.Stderr)
	require.Equal(t, 0, r.Code, r.String())
	assert.Contains(t, r.Stdout, `"state": "running"`, "status reads the file with the secrets")
	assert.Contains(t, r.Stdout, ":***@")

	// Nothing under HOME (but the secrets file) nor the checkout holds them.
	for _, root := range []string{e.Home, dir} {
		require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() || p == path || strings.Contains(p, string(filepath.Separator)+".git"+string(filepath.Separator)) {
				return err
			}
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			assert.NotContains(t, string(data), secret, p)
			assert.NotContains(t, string(data), dbSecret, p)
			return nil
		}))
	}

	// destroy stops the stack although its file requires the secret.
	r = e.sbx(dir, "sandbox:destroy", "-force")
	printed = append(printed, r.Stdout, r.Stderr)
	require.Equal(t, 0, r.Code, r.String())
	c, v, n = projectResources(project)
	assert.Equal(t, [3]int{0, 0, 0}, [3]int{c, v, n})
	for _, p := range printed {
		assert.NotContains(t, p, secret)
		assert.NotContains(t, p, dbSecret)
	}
}
