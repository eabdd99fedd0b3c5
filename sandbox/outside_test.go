package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sendLayout is a folder holding a home with ~/.ssh and the shared root,
// a checkout and a sibling worktree beside it, and links in the checkout.
type sendLayout struct {
	base, home, shared, checkout, sibling string
}

func newSendLayout(t *testing.T) sendLayout {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	l := sendLayout{base: base, home: filepath.Join(base, "home"), checkout: filepath.Join(base, "ktrdr--a"), sibling: filepath.Join(base, "ktrdr--b")}
	l.shared = filepath.Join(l.home, ".ktrdr", "shared")
	for _, d := range []string{filepath.Join(l.home, ".ssh"), filepath.Join(l.shared, "models"), filepath.Join(l.checkout, "data"), l.sibling, filepath.Join(base, "big", "data")} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	require.NoError(t, os.Symlink("/etc", filepath.Join(l.checkout, "etc-link")))
	require.NoError(t, os.Symlink(filepath.Join(l.shared, "models"), filepath.Join(l.checkout, "models")))
	require.NoError(t, os.Symlink("../ktrdr--b", filepath.Join(l.checkout, "sibling-link")))
	require.NoError(t, os.Symlink(filepath.Join(base, "nowhere", "x"), filepath.Join(l.checkout, "dangling")))
	require.NoError(t, os.Symlink("loop-b", filepath.Join(l.checkout, "loop-a")))
	require.NoError(t, os.Symlink("loop-a", filepath.Join(l.checkout, "loop-b")))
	require.NoError(t, os.Symlink(filepath.Join(base, "big", "data"), filepath.Join(l.checkout, "big-data")))
	return l
}

// On another engine only folders of the checkout and of the shared root
// go there, or a folder allowed exactly.
func TestSendRule(t *testing.T) {
	l := newSendLayout(t)
	tests := []struct {
		name     string
		folder   string
		shared   []string // the shared roots (default: the layout's)
		allowed  []string
		refused  bool
		resolved string // where a refused folder leads ("" : the folder itself)
		reason   string
	}{
		{name: "a folder of the checkout", folder: filepath.Join(l.checkout, "data")},
		{name: "the checkout itself", folder: l.checkout},
		{name: "a folder of the checkout that does not exist yet", folder: filepath.Join(l.checkout, "strategies", "new")},
		{name: "a folder of the shared root", folder: filepath.Join(l.shared, "models")},
		{name: "a link of the checkout into the shared root", folder: filepath.Join(l.checkout, "models")},
		{name: "~/.ssh", folder: filepath.Join(l.home, ".ssh"), refused: true, reason: "lies outside them"},
		{name: "/", folder: "/", refused: true},
		{name: "/etc", folder: "/etc", refused: true},
		{name: "a single file outside", folder: "/etc/hostname", refused: true},
		{name: ".. (every sibling worktree)", folder: l.base, refused: true},
		{name: "a sibling worktree", folder: l.sibling, refused: true},
		{name: "a link of the checkout to /etc", folder: filepath.Join(l.checkout, "etc-link"), refused: true, resolved: "/etc", reason: "leads to /etc, outside them"},
		{name: "a folder below a link leading outside", folder: filepath.Join(l.checkout, "etc-link", "ssl"), refused: true, resolved: "/etc/ssl"},
		{name: "a relative link to a sibling", folder: filepath.Join(l.checkout, "sibling-link"), refused: true, resolved: l.sibling},
		{name: "a link leading nowhere outside", folder: filepath.Join(l.checkout, "dangling", "y"), refused: true, resolved: filepath.Join(l.base, "nowhere", "x", "y")},
		{name: "a loop of links", folder: filepath.Join(l.checkout, "loop-a"), refused: true, reason: "cannot be followed"},
		{name: "a device is not copied", folder: "/dev/null"},
		{name: "an allowed folder", folder: "/etc", allowed: []string{"/etc"}},
		{name: "an allowed folder written unclean", folder: "/etc", allowed: []string{"/etc/ssl/.."}},
		{name: "an allowed folder does not allow what lies below it", folder: "/etc/ssl", allowed: []string{"/etc"}, refused: true},
		{name: "an allowed folder does not allow its parent", folder: "/etc", allowed: []string{"/etc/ssl"}, refused: true},
		{name: "allowed by where it leads: the link", folder: filepath.Join(l.checkout, "big-data"), allowed: []string{filepath.Join(l.base, "big", "data")}},
		{name: "allowed by where it leads: the folder", folder: filepath.Join(l.base, "big", "data"), allowed: []string{filepath.Join(l.checkout, "big-data")}},
		{name: "a shared root holding the checkout does not count", folder: l.sibling, shared: []string{l.base}, refused: true},
		{name: "a shared root holding the home folder does not count", folder: filepath.Join(l.home, ".ssh"), shared: []string{l.home}, refused: true},
		{name: "/ as the shared root does not count", folder: "/etc", shared: []string{"/"}, refused: true},
		{name: "no shared root", folder: filepath.Join(l.shared, "models"), shared: []string{""}, refused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shared := tt.shared
			if shared == nil {
				shared = []string{l.shared}
			}
			rule, _, err := newSendRule(l.checkout, l.home, shared, tt.allowed)
			require.NoError(t, err)
			bad := rule.check([]sentFolder{{Service: "backend", Kind: "bind mount", Folder: tt.folder}})
			if !tt.refused {
				assert.Empty(t, bad)
				return
			}
			require.Len(t, bad, 1)
			assert.Equal(t, tt.folder, bad[0].Folder)
			assert.Equal(t, []string{"backend"}, bad[0].Services)
			if tt.reason != "cannot be followed" {
				want := tt.resolved
				if want == "" {
					want = filepath.Clean(tt.folder)
				}
				assert.Equal(t, want, bad[0].Resolved)
			}
			assert.Contains(t, bad[0].Reason, tt.reason)
		})
	}
}

func TestSendRuleRefusesARelativeAllowedFolder(t *testing.T) {
	l := newSendLayout(t)
	_, _, err := newSendRule(l.checkout, l.home, nil, []string{"data"})
	var ae *AllowSyncError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "data", ae.Folder)
}

// A folder many services mount is named once, with each of them.
func TestSendRuleGroupsServices(t *testing.T) {
	l := newSendLayout(t)
	rule, _, err := newSendRule(l.checkout, l.home, nil, nil)
	require.NoError(t, err)
	bad := rule.check([]sentFolder{
		{Service: "backend", Kind: "bind mount", Folder: "/etc"},
		{Service: "backend", Kind: "bind mount", Folder: filepath.Join(l.checkout, "data")},
		{Service: "worker", Kind: "bind mount", Folder: "/etc"},
		{Service: "worker", Kind: "build context", Folder: l.base},
	})
	require.Len(t, bad, 2)
	assert.Equal(t, []string{"backend", "worker"}, bad[0].Services)
	assert.Equal(t, "build context", bad[1].Kind)
	err = &OutsideFolderError{Engine: "big", Checkout: l.checkout, Shared: []string{l.shared}, Folders: bad}
	assert.Equal(t, "refused to send folders of this machine to engine big: only folders inside the checkout "+l.checkout+
		" and the shared root "+l.shared+" go there: bind mount /etc (services backend, worker) lies outside them; build context "+
		l.base+" (service worker) lies outside them", err.Error())
	assert.Equal(t, []string{"/etc", l.base}, err.(*OutsideFolderError).Allowed())
}

// The folders a stack file sends: every bind mount and build context of
// every service, those only a profile starts included.
func TestSentFoldersEveryProfile(t *testing.T) {
	l := newSendLayout(t)
	t.Setenv("HOME", l.home)
	file := filepath.Join(l.checkout, "docker-compose.sandbox.yml")
	require.NoError(t, os.WriteFile(file, []byte(`services:
  backend:
    image: x
    volumes:
      - ./data:/app/data
      - ~/.ssh:/root/.ssh:ro
      - db:/var/lib/db
      - /var/run/docker.sock:/var/run/docker.sock
  debug:
    image: x
    profiles: [debug]
    volumes:
      - type: bind
        source: ..
        target: /all
  builder:
    build:
      context: ../elsewhere
      dockerfile: /opt/Dockerfile.tools
      additional_contexts:
        extra: /opt/extra
        img: docker-image://alpine
    profiles: [tools]
  app:
    build:
      context: .
      dockerfile: docker/app.Dockerfile
  escape:
    build:
      context: ./sub
      dockerfile: ../../Dockerfile.escape
  remote:
    build: https://github.com/example/repo.git
volumes:
  db: {}
`), 0o644))
	sf, err := LoadStackFile(t.Context(), file, nil)
	require.NoError(t, err)
	got := sentFolders(sf)
	assert.Equal(t, []sentFolder{
		{Service: "app", Kind: "build context", Folder: l.checkout},
		{Service: "backend", Kind: "bind mount", Folder: filepath.Join(l.checkout, "data")},
		{Service: "backend", Kind: "bind mount", Folder: filepath.Join(l.home, ".ssh")},
		{Service: "backend", Kind: "bind mount", Folder: "/var/run/docker.sock"},
		{Service: "builder", Kind: "build context", Folder: filepath.Join(l.base, "elsewhere")},
		{Service: "builder", Kind: "Dockerfile", Folder: "/opt/Dockerfile.tools"},
		{Service: "builder", Kind: "additional build context extra", Folder: "/opt/extra"},
		{Service: "debug", Kind: "bind mount", Folder: l.base},
		{Service: "escape", Kind: "build context", Folder: filepath.Join(l.checkout, "sub")},
		{Service: "escape", Kind: "Dockerfile", Folder: filepath.Join(l.base, "Dockerfile.escape")},
	}, got)
}

// remoteUpFixture is upFixture for a sandbox on engine "big" whose stack
// file also bind-mounts extra (a line of the x-app-volumes list).
func remoteUpFixture(t *testing.T, extra string, handle func(c driver.Cmd) ([]byte, error)) (*Manager, string, *fakeRunner) {
	m, root, r := upFixture(t, handle)
	file := filepath.Join(root, "docker-compose.sandbox.yml")
	text := fileText(t, file)
	anchor := "  - ${KTRDR_DATA_DIR:-./data}:/app/data\n"
	require.Contains(t, text, anchor)
	require.NoError(t, os.WriteFile(file, []byte(strings.Replace(text, anchor, anchor+"  - "+extra+"\n", 1)), 0o644))
	env := m.Profile.NewEnv("up", 1, "", time.Now(), false)
	env.Engine = Engine{Context: "big", Host: "127.0.0.1"}
	require.NoError(t, m.Profile.WriteEnv(filepath.Join(root, m.Profile.EnvFile), env))
	return m, root, r
}

// madeNothing asserts that every command run only asked for a version.
func madeNothing(t *testing.T, r *fakeRunner) {
	t.Helper()
	for _, c := range r.commands() {
		assert.Contains(t, " "+c+" ", " version ", "only version look-ups before the refusal, not %q", c)
	}
}

// Up on another engine refuses a stack that mounts a folder outside the
// checkout before it runs anything there; local engines are unaffected.
func TestUpRefusesAFolderOutsideOnAnotherEngine(t *testing.T) {
	m, root, r := remoteUpFixture(t, "..:/app/siblings", func(driver.Cmd) ([]byte, error) { return nil, nil })
	_, err := m.Up(t.Context(), UpOptions{Dir: root, NoWait: true})
	var oe *OutsideFolderError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, "big", oe.Engine)
	require.Len(t, oe.Folders, 1)
	parent, _ := filepath.EvalSymlinks(filepath.Dir(root))
	assert.Equal(t, filepath.Dir(root), oe.Folders[0].Folder)
	assert.Equal(t, parent, oe.Folders[0].Resolved)
	assert.Contains(t, oe.Folders[0].Services, "backend")
	assert.Contains(t, err.Error(), filepath.Dir(root))
	madeNothing(t, r)

	// sandbox:sync refuses it the same way.
	r.calls = nil
	_, err = m.Sync(t.Context(), SyncOptions{Dir: root})
	require.ErrorAs(t, err, &oe)
	madeNothing(t, r)
}

// A folder allowed exactly (by the settings or by the command) goes.
func TestUpSendsAnAllowedFolder(t *testing.T) {
	outside, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	for _, how := range []string{"settings", "option"} {
		t.Run(how, func(t *testing.T) {
			m, root, r := remoteUpFixture(t, outside+":/app/extra", func(c driver.Cmd) ([]byte, error) {
				if slices.Contains(c.Args, "create") && slices.Contains(c.Args, "compose") {
					return nil, &driver.ExitError{Cmd: "docker compose create", Code: 1, Stderr: "stop here"}
				}
				if slices.Contains(c.Args, "image") && slices.Contains(c.Args, "inspect") {
					return []byte("sha256:standin\n"), nil // the engine has the stand-in image
				}
				return nil, nil
			})
			o := UpOptions{Dir: root, NoWait: true}
			if how == "settings" {
				m.AllowSync = []string{outside}
			} else {
				o.AllowSync = []string{outside}
			}
			_, err := m.Up(t.Context(), o)
			var oe *OutsideFolderError
			assert.False(t, errors.As(err, &oe), "%v", err)
			assert.True(t, slices.ContainsFunc(r.commands(), func(c string) bool {
				return strings.Contains(c, " run ") && strings.Contains(c, " -v "+syncVolumeName("ktrdr--up", outside)+":/dst ")
			}), "the allowed folder is copied to its volume: %v", r.commands())
		})
	}
}

// On the local engine binds are the user's business.
func TestUpOnTheLocalEngineChecksNoFolder(t *testing.T) {
	m, root, _ := remoteUpFixture(t, "/etc:/app/etc", func(c driver.Cmd) ([]byte, error) {
		if slices.Contains(c.Args, "create") && slices.Contains(c.Args, "compose") {
			return nil, &driver.ExitError{Cmd: "docker compose create", Code: 1, Stderr: "stop here"}
		}
		return nil, nil
	})
	require.NoError(t, m.Profile.WriteEnv(filepath.Join(root, m.Profile.EnvFile), m.Profile.NewEnv("up", 1, "", time.Now(), false)))
	_, err := m.Up(t.Context(), UpOptions{Dir: root, NoWait: true})
	var oe *OutsideFolderError
	assert.False(t, errors.As(err, &oe), "%v", err)
}

// A build context outside the checkout is refused on another engine,
// except in stand-in mode, which never builds.
func TestUpRefusesABuildContextOutside(t *testing.T) {
	for _, standin := range []bool{false, true} {
		m, root, r := upFixture(t, func(c driver.Cmd) ([]byte, error) {
			if slices.Contains(c.Args, "create") && slices.Contains(c.Args, "compose") {
				return nil, &driver.ExitError{Cmd: "docker compose create", Code: 1, Stderr: "stop here"}
			}
			return nil, nil
		})
		file := filepath.Join(root, "docker-compose.sandbox.yml")
		text := fileText(t, file)
		img := "    image: ${KTRDR_BACKEND_IMAGE:-ktrdr-backend:dev}\n"
		require.Contains(t, text, img)
		require.NoError(t, os.WriteFile(file, []byte(strings.Replace(text, img, img+"    build:\n      context: ../other\n", 1)), 0o644))
		env := m.Profile.NewEnv("up", 1, "", time.Now(), standin)
		env.Engine = Engine{Context: "big", Host: "127.0.0.1"}
		require.NoError(t, m.Profile.WriteEnv(filepath.Join(root, m.Profile.EnvFile), env))
		_, err := m.Up(t.Context(), UpOptions{Dir: root, NoWait: true})
		var oe *OutsideFolderError
		if standin {
			assert.False(t, errors.As(err, &oe), "stand-in: %v", err)
			continue
		}
		require.ErrorAs(t, err, &oe)
		assert.Equal(t, "build context", oe.Folders[0].Kind)
		assert.Equal(t, filepath.Join(filepath.Dir(root), "other"), oe.Folders[0].Folder)
		madeNothing(t, r)
	}
}
