package sandbox

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ktrdr/sandboxkit/sandbox/apiurl"
)

// The resolver's own tests are in sandbox/apiurl; these check that the
// lifecycle commands find the same env file it does.

// A symlinked env file is refused by the lifecycle commands too.
func TestLifecycleRefusesASymlinkedEnvFile(t *testing.T) {
	other := t.TempDir()
	p := KTRDR()
	require.NoError(t, p.WriteEnv(filepath.Join(other, p.EnvFile), p.NewEnv("feat-a", 7, "", time.Now(), false)))
	dir := t.TempDir()
	require.NoError(t, os.Symlink(filepath.Join(other, ".env.sandbox"), filepath.Join(dir, ".env.sandbox")))
	m := &Manager{Profile: KTRDR(), Home: t.TempDir(), Runner: &fakeRunner{}, Now: time.Now}
	_, err := m.Status(t.Context(), StatusOptions{Dir: dir})
	assert.ErrorIs(t, err, ErrEnvSymlink)
}

// Issue 16, attack 5: a .env.sandbox in a folder above the checkout was
// taken as the checkout's: the resolver printed its port and down ran
// compose with that folder's files.
func TestEnvFileAboveTheCheckoutIsNotItsOwn(t *testing.T) {
	e := lcSetup(t)
	p := KTRDR()
	require.NoError(t, p.WriteEnv(filepath.Join(e.dev, p.EnvFile), p.NewEnv("outside", 5, "", lcNow(), false)))
	lcWrite(t, filepath.Join(e.dev, p.SandboxCompose), "services: {}\n")
	sub := filepath.Join(e.main, "src", "pkg")
	require.NoError(t, os.MkdirAll(sub, 0o755))
	plain := filepath.Join(e.dev, "plain") // a worktree without an env file: .git is a file
	lcGit(t, e.main, "worktree", "add", "-q", "-b", "plain", plain)
	require.FileExists(t, filepath.Join(plain, ".git"))

	for _, dir := range []string{e.main, sub, plain} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			url, err := apiurl.Resolve("", 0, dir)
			require.NoError(t, err)
			assert.Equal(t, "http://localhost:8000", url)
			_, source, err := apiurl.ResolveSource("", 0, dir)
			require.NoError(t, err)
			assert.Contains(t, source, "up to the checkout's root")

			var ns *NotSandboxError
			_, err = e.m.Down(t.Context(), DownOptions{Dir: dir, Volumes: true})
			assert.ErrorAs(t, err, &ns)
			_, err = e.m.Status(t.Context(), StatusOptions{Dir: dir})
			assert.ErrorAs(t, err, &ns)
			_, err = e.m.Destroy(t.Context(), DestroyOptions{Dir: dir})
			assert.ErrorAs(t, err, &ns)
		})
	}
	assert.Empty(t, e.r.composeCalls("down"), "no compose call for the outer folder's stack")
	// Outside any checkout, the nearest file still counts.
	url, err := apiurl.Resolve("", 0, filepath.Join(e.dev))
	require.NoError(t, err)
	assert.Equal(t, "http://localhost:8005", url)
}
