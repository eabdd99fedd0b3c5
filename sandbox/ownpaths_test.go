package sandbox

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktrdr/sandboxkit/internal/treesnap"

	"github.com/ktrdr/sandboxkit/sandbox/gate"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The suite writes and deletes only inside its own state folder and the
// sandbox folders it created. These tests plant what a hand edit, a branch
// or another user could plant, and check the victims byte for byte.

// opTree maps every path below dir to its kind, mode and content.
func opTree(t *testing.T, dir string) map[string]string { return treesnap.Take(t, dir) }

// opVictim makes a folder of precious files and returns its tree.
func opVictim(t *testing.T, dir string) map[string]string {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("do not delete\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sub", "more.bin"), []byte{0, 1, 2, 255}, 0o644))
	return opTree(t, dir)
}

// opWriteRegistry writes the registry file by hand.
func opWriteRegistry(t *testing.T, e *lcEnv, content string) string {
	t.Helper()
	path := e.m.Registry().Path
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	return path
}

// Issue 16, attack 1: a hand-edited registry id climbed out of the state
// folder, and list deleted that folder as a "stale entry".
func TestListNeverDeletesThroughARegistryID(t *testing.T) {
	for _, tt := range []struct {
		id     string
		victim func(e *lcEnv) string // the folder instances/<id> would name
	}{
		{"../../../../important", func(e *lcEnv) string { return filepath.Join(e.root, "important") }},
		{"..", func(e *lcEnv) string { return filepath.Join(e.home, ".ktrdr", "sandbox") }},
		{"../..", func(e *lcEnv) string { return filepath.Join(e.home, ".ktrdr") }},
	} {
		t.Run(tt.id, func(t *testing.T) {
			e := lcSetup(t)
			victim := tt.victim(e)
			opVictim(t, victim)
			regPath := opWriteRegistry(t, e, fmt.Sprintf(`{"version": 1, "instances": {%q: {"slot": 1, "path": %q, "created_at": "2020-01-01T00:00:00Z"}}}`,
				tt.id, filepath.Join(e.root, "gone")))
			require.Equal(t, victim, filepath.Clean(e.instDir(tt.id)), "the id names the victim")
			before, beforeHome := opTree(t, victim), opTree(t, e.home)

			l, err := e.m.List(t.Context())
			var ce *RegistryCorruptError
			require.ErrorAs(t, err, &ce)
			assert.Nil(t, l)
			assert.Equal(t, tt.id, ce.ID)
			assert.Equal(t, "id", ce.Field)
			// The registry's lock file is the one thing list may add.
			after, afterHome := opTree(t, victim), opTree(t, e.home)
			for _, m := range []map[string]string{after, afterHome} {
				for k := range m {
					if strings.HasSuffix(k, "instances.json.lock") {
						delete(m, k)
					}
				}
			}
			assert.Equal(t, before, after, "the victim is untouched")
			assert.Equal(t, beforeHome, afterHome, "nothing in HOME changed")
			data, err := os.ReadFile(regPath)
			require.NoError(t, err)
			assert.Contains(t, string(data), tt.id, "the registry is not rewritten")
		})
	}
}

// A symlinked instances/<id> (or instances) folder is never written or
// deleted through.
func TestStateFolderSymlinksAreNeverFollowed(t *testing.T) {
	t.Run("create refuses a symlinked instances/<id>", func(t *testing.T) {
		e := lcSetup(t)
		victim := filepath.Join(e.root, "victim")
		before := opVictim(t, victim)
		require.NoError(t, os.MkdirAll(filepath.Join(e.home, ".ktrdr", "sandbox", "instances"), 0o755))
		require.NoError(t, os.Symlink(victim, e.instDir("ktrdr--feat-a")))

		_, err := e.m.Create(t.Context(), CreateOptions{Name: "feat-a", Dir: e.main})
		var ue *UnsafePathError
		require.ErrorAs(t, err, &ue)
		assert.Equal(t, e.instDir("ktrdr--feat-a"), ue.Path)
		assert.Contains(t, err.Error(), "symlink to "+victim)
		assert.Equal(t, before, opTree(t, victim))
	})
	t.Run("a symlinked instances folder: nothing written, gate kept or removed through it", func(t *testing.T) {
		e := lcSetup(t)
		victim := filepath.Join(e.root, "victim")
		opVictim(t, filepath.Join(victim, "ktrdr--feat-a"))
		before := opTree(t, victim)
		require.NoError(t, os.MkdirAll(filepath.Join(e.home, ".ktrdr", "sandbox"), 0o755))
		require.NoError(t, os.Symlink(victim, filepath.Join(e.home, ".ktrdr", "sandbox", "instances")))
		root := filepath.Join(e.root, "checkout")
		lcWrite(t, filepath.Join(root, ".env.sandbox"), "x=1\n")
		lcWrite(t, filepath.Join(root, "docker-compose.sandbox.yml"), "services: {}\n")

		var ue *UnsafePathError
		assert.ErrorAs(t, e.m.saveTeardownCopy("ktrdr--feat-a", root, meta{Branch: "x"}), &ue)
		e.m.saveGate("ktrdr--feat-a", gate.Result{Passed: true})
		assert.Nil(t, e.m.lastGate("ktrdr--feat-a"))
		assert.Equal(t, meta{}, e.m.readMeta("ktrdr--feat-a"))
		_, ok := e.m.teardownStack("ktrdr--feat-a", Instance{Path: filepath.Join(e.root, "gone")})
		assert.False(t, ok, "teardown does not use files found through the link")
		assert.ErrorAs(t, e.m.removeInstanceDir("ktrdr--feat-a"), &ue)
		assert.Equal(t, "delete", ue.Op)

		// list cleans a stale entry of that id; its kept copy is not deleted through the link.
		opWriteRegistry(t, e, fmt.Sprintf(`{"version": 1, "instances": {"ktrdr--feat-a": {"slot": 1, "path": %q, "created_at": "2020-01-01T00:00:00Z"}}}`,
			filepath.Join(e.root, "gone")))
		l, err := e.m.List(t.Context())
		require.NoError(t, err)
		require.Len(t, l.Instances, 1)
		assert.True(t, l.Instances[0].Removed)
		assert.Equal(t, before, opTree(t, victim))
	})
	t.Run("list removes a symlinked instances/<id> itself, not its target", func(t *testing.T) {
		e := lcSetup(t)
		victim := filepath.Join(e.root, "victim")
		before := opVictim(t, victim)
		require.NoError(t, os.MkdirAll(filepath.Join(e.home, ".ktrdr", "sandbox", "instances"), 0o755))
		require.NoError(t, os.Symlink(victim, e.instDir("ktrdr--feat-a")))
		opWriteRegistry(t, e, fmt.Sprintf(`{"version": 1, "instances": {"ktrdr--feat-a": {"slot": 1, "path": %q, "created_at": "2020-01-01T00:00:00Z"}}}`,
			filepath.Join(e.root, "gone")))

		_, err := e.m.List(t.Context())
		require.NoError(t, err)
		assert.Equal(t, before, opTree(t, victim))
		_, err = os.Lstat(e.instDir("ktrdr--feat-a"))
		assert.ErrorIs(t, err, fs.ErrNotExist, "the link itself, inside the state folder, is gone")
	})
}

// opBranch commits, on a new branch of the main checkout, a compose file
// that is a symlink to target (or, with content, a regular file).
func opBranch(t *testing.T, e *lcEnv, branch, target string, content []byte) {
	t.Helper()
	lcGit(t, e.main, "checkout", "-q", "-b", branch)
	compose := filepath.Join(e.main, "docker-compose.sandbox.yml")
	require.NoError(t, os.Remove(compose))
	if content != nil {
		require.NoError(t, os.WriteFile(compose, content, 0o644))
	} else {
		require.NoError(t, os.Symlink(target, compose))
	}
	lcGit(t, e.main, "add", "-A")
	lcGit(t, e.main, "commit", "-q", "-m", "compose file of "+branch)
	lcGit(t, e.main, "checkout", "-q", "main")
}

// Issue 16, attack 6: a branch's compose file, a symlink, was read through
// into the teardown copy (a 0600 secret became a 0644 copy; /dev/zero ran
// create out of memory). The copy reads only the checkout's own files.
func TestTeardownCopyReadsOnlyTheCheckoutsFiles(t *testing.T) {
	for _, tt := range []struct {
		name    string
		target  func(e *lcEnv) string // the symlink's target
		content []byte                // or a regular file of this content
		reason  string
	}{
		{"symlink to a secret outside", func(e *lcEnv) string { return filepath.Join(e.root, "secret") }, nil, "outside the checkout"},
		{"symlink to /dev/zero", func(*lcEnv) string { return "/dev/zero" }, nil, "outside the checkout"},
		{"relative symlink climbing out", func(*lcEnv) string { return "../../secret" }, nil, "outside the checkout"},
		{"a file over the size bound", nil, bytes.Repeat([]byte("#"), MaxCheckoutFile+1), "more than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := lcSetup(t)
			secret := filepath.Join(e.root, "secret")
			require.NoError(t, os.WriteFile(secret, []byte("password=hunter2\n"), 0o600))
			target := ""
			if tt.target != nil {
				target = tt.target(e)
			}
			opBranch(t, e, "evil", target, tt.content)

			_, err := e.m.Create(t.Context(), CreateOptions{Name: "evil", Dir: e.main})
			var cf *CheckoutFileError
			require.ErrorAs(t, err, &cf)
			assert.Equal(t, filepath.Join(e.wt("evil"), "docker-compose.sandbox.yml"), cf.Path)
			assert.Contains(t, err.Error(), tt.reason)

			assert.Equal(t, "password=hunter2\n", fileText(t, secret))
			fi, err := os.Stat(secret)
			require.NoError(t, err)
			assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm())
			for rel, v := range opTree(t, e.home) {
				assert.NotContains(t, v, "hunter2", "no copy of the secret in %s", rel)
			}
		})
	}
	t.Run("a symlink inside the checkout is read", func(t *testing.T) {
		e := lcSetup(t)
		data, err := os.ReadFile(filepath.Join(e.main, "docker-compose.sandbox.yml"))
		require.NoError(t, err)
		lcWrite(t, filepath.Join(e.main, "deploy", "compose.yml"), string(data))
		opBranch(t, e, "linked", "deploy/compose.yml", nil)
		c := e.create(t, CreateOptions{Name: "linked"})
		kept, err := os.ReadFile(filepath.Join(e.instDir(c.ID), "docker-compose.sandbox.yml"))
		require.NoError(t, err)
		assert.Equal(t, data, kept)
	})
}

// A kept copy never has more permission than the checkout's file.
func TestTeardownCopyKeepsNoMorePermission(t *testing.T) {
	e := lcSetup(t)
	require.NoError(t, os.Chmod(filepath.Join(e.main, "docker-compose.sandbox.yml"), 0o600))
	c, err := e.m.Init(t.Context(), InitOptions{Name: "main", Dir: e.main})
	require.NoError(t, err)
	fi, err := os.Stat(filepath.Join(e.instDir(c.ID), "docker-compose.sandbox.yml"))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm())
}

// Commands that run compose refuse a compose file that is a symlink to
// outside the checkout: compose would read it.
func TestLocateRefusesAComposeFileOutsideTheCheckout(t *testing.T) {
	e := lcSetup(t)
	c := e.create(t, CreateOptions{Name: "feat-a"})
	secret := filepath.Join(e.root, "secret.yml")
	require.NoError(t, os.WriteFile(secret, []byte("services: {}\n"), 0o600))
	compose := filepath.Join(c.Path, "docker-compose.sandbox.yml")
	require.NoError(t, os.Remove(compose))
	require.NoError(t, os.Symlink(secret, compose))

	var cf *CheckoutFileError
	_, err := e.m.Down(t.Context(), DownOptions{Dir: c.Path, Volumes: false})
	assert.ErrorAs(t, err, &cf)
	_, err = e.m.Up(t.Context(), UpOptions{Dir: c.Path, NoWait: true})
	assert.ErrorAs(t, err, &cf)
	assert.Empty(t, e.r.composeCalls("down"))
	assert.Empty(t, e.r.composeCalls("up"))
}

// The helpers refuse names that are not one folder.
func TestOwnDirRefusesNamesThatAreNotOneFolder(t *testing.T) {
	base := t.TempDir()
	for _, name := range []string{"", ".", "..", "a/b", "../x", "/abs", `a\b`} {
		_, err := ownDir(base, "instances", name)
		var ue *UnsafePathError
		assert.ErrorAs(t, err, &ue, "%q", name)
		assert.ErrorAs(t, removeOwnDir(base, "instances", name), &ue, "%q", name)
	}
	dir, err := ownDir(base, "instances", "ktrdr--a")
	require.NoError(t, err)
	assert.DirExists(t, dir)
	require.NoError(t, removeOwnDir(base, "instances", "ktrdr--a"))
	assert.NoDirExists(t, dir)
	assert.NoError(t, removeOwnDir(base, "instances", "ktrdr--a"), "a missing folder is fine")
}

// readOwnFile bounds what it reads and reads no symlink.
func TestReadOwnFile(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	require.NoError(t, os.WriteFile(big, []byte(strings.Repeat("x", 11)), 0o644))
	_, err := readOwnFile(big, 10)
	var ue *UnsafePathError
	assert.ErrorAs(t, err, &ue)
	data, err := readOwnFile(big, 11)
	require.NoError(t, err)
	assert.Len(t, data, 11)
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(big, link))
	_, err = readOwnFile(link, 100)
	assert.ErrorAs(t, err, &ue)
	_, err = readOwnFile("/dev/zero", 100)
	assert.ErrorAs(t, err, &ue)
}
