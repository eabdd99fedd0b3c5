package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// On another engine a stack that mounts a folder outside the checkout and
// the shared root (here .., every sibling worktree, and then a link of the
// checkout leading outside) is refused with the folder named before
// anything is made there: no container, volume or network of the project,
// not even the stand-in image. -allowSync lets exactly that folder go.
func TestRemoteEngineRefusesFoldersOutsideTheCheckout(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	re := startRemoteEngine(t, remoteEngineOptions{Env: e.Env})
	e.Env = re.Env(e.Env)
	name := namePrefix + "rout"
	id := "ktrdr--" + name
	e.must(e.Main, "sandbox:create", name, "-standin", "-context="+re.Context())
	dir := e.sandboxDir(name)
	file := filepath.Join(dir, "docker-compose.sandbox.yml")
	original, err := os.ReadFile(file)
	require.NoError(t, err)
	anchor := "  - ${KTRDR_DATA_DIR:-./data}:/app/data\n"
	require.Contains(t, string(original), anchor)
	mount := func(line string) {
		require.NoError(t, os.WriteFile(file, []byte(strings.Replace(string(original), anchor, anchor+"  - "+line+"\n", 1)), 0o644))
	}
	nothingThere := func(t *testing.T) {
		t.Helper()
		assert.Empty(t, strings.TrimSpace(re.Docker("ps", "-aq", "--filter", "label=com.docker.compose.project="+id).Stdout), "no container")
		assert.Empty(t, strings.TrimSpace(re.Docker("volume", "ls", "-q", "--filter", "name="+id).Stdout), "no volume")
		assert.Empty(t, strings.TrimSpace(re.Docker("volume", "ls", "-q", "--filter", "label=org.ktrdr.sandbox.instance="+id).Stdout), "no synced volume")
		assert.Empty(t, strings.TrimSpace(re.Docker("network", "ls", "-q", "--filter", "name="+id).Stdout), "no network")
		assert.NotEqual(t, 0, re.Docker("image", "inspect", standinImage).Code, "the stand-in image was not even loaded")
	}

	t.Run("..", func(t *testing.T) {
		mount("..:/app/siblings")
		up := e.sbx(dir, "sandbox:up", "-nowait")
		require.Equal(t, 1, up.Code, up.String())
		assert.Contains(t, up.Stderr, "bind mount "+e.Dev+" (services ")
		assert.Contains(t, up.Stderr, "engine "+re.Context())
		assert.Contains(t, up.Stderr, "-allowSync="+e.Dev)
		assert.Contains(t, up.Stderr, `"allow_sync"`)
		nothingThere(t)
		sync := e.sbx(dir, "sandbox:sync")
		require.Equal(t, 1, sync.Code, sync.String())
		assert.Contains(t, sync.Stderr, "go tool mage sandbox:sync -allowSync="+e.Dev)
		nothingThere(t)
	})

	outside := filepath.Join(t.TempDir(), "outside")
	require.NoError(t, os.MkdirAll(outside, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(outside, "notes.txt"), []byte("from outside\n"), 0o644))
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "linked")))
	mount("./linked:/app/outside")

	t.Run("a link of the checkout leading outside", func(t *testing.T) {
		up := e.sbx(dir, "sandbox:up", "-nowait")
		require.Equal(t, 1, up.Code, up.String())
		assert.Contains(t, up.Stderr, filepath.Join(dir, "linked")+" (services ")
		assert.Contains(t, up.Stderr, "leads to "+outside)
		nothingThere(t)
	})

	t.Run("allowed exactly", func(t *testing.T) {
		up := e.sbx(dir, "sandbox:up", "-allowSync="+outside)
		require.Equal(t, 0, up.Code, up.String())
		backend := strings.TrimSpace(re.Docker("ps", "-q", "--filter", "label=com.docker.compose.project="+id, "--filter", "label=com.docker.compose.service=backend").Stdout)
		read := re.Docker("exec", backend, "/standin", "fs", "read", "/app/outside/notes.txt")
		assert.Equal(t, "from outside\n", read.Stdout, read.String())
	})

	e.must(dir, "sandbox:destroy", "-force")
	assert.Empty(t, strings.TrimSpace(re.Docker("ps", "-aq", "--filter", "label=com.docker.compose.project="+id).Stdout))
	assert.Empty(t, strings.TrimSpace(re.Docker("volume", "ls", "-q", "--filter", "name="+id).Stdout))
}
