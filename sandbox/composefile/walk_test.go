package composefile

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tree lays out a checkout (root) beside an outside folder holding a file a
// hostile compose file would like to read.
type tree struct {
	root, outside string
}

func newTree(t *testing.T) tree {
	t.Helper()
	base := t.TempDir()
	tr := tree{root: filepath.Join(base, "checkout"), outside: filepath.Join(base, "outside")}
	require.NoError(t, os.MkdirAll(tr.root, 0o755))
	require.NoError(t, os.MkdirAll(tr.outside, 0o755))
	tr.writeAbs(t, filepath.Join(tr.outside, "x.yml"), "services:\n  stolen:\n    image: outside\n    ports: [\"${OUTSIDE_PORT:-9999}:80\"]\n")
	tr.writeAbs(t, filepath.Join(tr.outside, "secret.env"), "TOKEN=outside\n")
	return tr
}

func (tr tree) writeAbs(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

func (tr tree) write(t *testing.T, name, content string) {
	tr.writeAbs(t, filepath.Join(tr.root, name), content)
}

func (tr tree) link(t *testing.T, name, target string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(tr.root, name)), 0o755))
	require.NoError(t, os.Symlink(target, filepath.Join(tr.root, name)))
}

func (tr tree) fifo(t *testing.T, name string) {
	t.Helper()
	require.NoError(t, syscall.Mkfifo(filepath.Join(tr.root, name), 0o644))
}

// within runs f and fails the test when it has not returned in 10 s (an
// upper bound: a FIFO would block forever).
func within(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("did not return: a read blocked")
	}
}

const svc = "services:\n  api:\n    image: api\n"

func TestCheckRefusesWhatLiesOutside(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, tr tree) // writes compose.yml and what it needs
		path  string                      // the refused path, relative to the checkout ("" = the outside x.yml)
		via   string
	}{
		{"include of a relative path leaving the checkout", func(t *testing.T, tr tree) {
			tr.write(t, "compose.yml", "include: [../outside/x.yml]\n"+svc)
		}, "", "include of compose.yml"},
		{"include of an absolute path", func(t *testing.T, tr tree) {
			tr.write(t, "compose.yml", "include:\n  - path: "+filepath.Join(tr.outside, "x.yml")+"\n"+svc)
		}, "", "include of compose.yml"},
		{"include of /dev/zero", func(t *testing.T, tr tree) {
			tr.write(t, "compose.yml", "include: [/dev/zero]\n"+svc)
		}, "/dev/zero", "include of compose.yml"},
		{"include through a variable", func(t *testing.T, tr tree) {
			tr.write(t, "compose.yml", "include: [\"${BASE:-..}/outside/x.yml\"]\n"+svc)
		}, "", "include of compose.yml"},
		{"include of a FIFO", func(t *testing.T, tr tree) {
			tr.fifo(t, "pipe.yml")
			tr.write(t, "compose.yml", "include: [pipe.yml]\n"+svc)
		}, "pipe.yml", "include of compose.yml"},
		{"include of a link leading outside", func(t *testing.T, tr tree) {
			tr.link(t, "inc/x.yml", filepath.Join(tr.outside, "x.yml"))
			tr.write(t, "compose.yml", "include: [inc/x.yml]\n"+svc)
		}, "inc/x.yml", "include of compose.yml"},
		{"include from git", func(t *testing.T, tr tree) {
			tr.write(t, "compose.yml", "include: [\"https://github.com/x/y.git\"]\n"+svc)
		}, "https://github.com/x/y.git", "include of compose.yml"},
		{"nested include leaving the checkout", func(t *testing.T, tr tree) {
			tr.write(t, "deep/inner.yml", "include: [../../outside/x.yml]\nservices:\n  inner:\n    image: i\n")
			tr.write(t, "compose.yml", "include: [deep/inner.yml]\n"+svc)
		}, "", "include of deep/inner.yml"},
		{"include's project folder outside", func(t *testing.T, tr tree) {
			tr.write(t, "inc.yml", "services:\n  inner:\n    image: i\n")
			tr.write(t, "compose.yml", "include:\n  - path: inc.yml\n    project_directory: ../outside\n"+svc)
		}, "../outside", "include of compose.yml"},
		{"include's env_file outside", func(t *testing.T, tr tree) {
			tr.write(t, "inc.yml", "services:\n  inner:\n    image: i\n")
			tr.write(t, "compose.yml", "include:\n  - path: inc.yml\n    env_file: ../outside/secret.env\n"+svc)
		}, "../outside/secret.env", "env_file of an include of compose.yml"},
		{"included project's .env is a FIFO", func(t *testing.T, tr tree) {
			tr.write(t, "sub/inc.yml", "services:\n  inner:\n    image: i\n")
			tr.fifo(t, "sub/.env")
			tr.write(t, "compose.yml", "include: [sub/inc.yml]\n"+svc)
		}, "sub/.env", "env_file of an include of compose.yml"},
		{"extends of a file outside", func(t *testing.T, tr tree) {
			tr.write(t, "compose.yml", "services:\n  api:\n    extends:\n      file: ../outside/x.yml\n      service: stolen\n")
		}, "", "extends of service api of compose.yml"},
		{"extends chain leaving the checkout", func(t *testing.T, tr tree) {
			tr.write(t, "base/common.yml", "services:\n  base:\n    extends:\n      file: ../../outside/x.yml\n      service: stolen\n")
			tr.write(t, "compose.yml", "services:\n  api:\n    extends:\n      file: base/common.yml\n      service: base\n")
		}, "", "extends of service base of base/common.yml"},
		{"env_file outside", func(t *testing.T, tr tree) {
			tr.write(t, "compose.yml", "services:\n  api:\n    image: a\n    env_file: ../outside/secret.env\n")
		}, "../outside/secret.env", "env_file of service api of compose.yml"},
		{"optional env_file outside", func(t *testing.T, tr tree) {
			tr.write(t, "compose.yml", "services:\n  api:\n    image: a\n    env_file:\n      - path: ../outside/secret.env\n        required: false\n")
		}, "../outside/secret.env", "env_file of service api of compose.yml"},
		{"label_file a FIFO", func(t *testing.T, tr tree) {
			tr.fifo(t, "labels")
			tr.write(t, "compose.yml", "services:\n  api:\n    image: a\n    label_file: labels\n")
		}, "labels", "label_file of service api of compose.yml"},
		{"profile-only service's env_file outside", func(t *testing.T, tr tree) {
			tr.write(t, "compose.yml", svc+"  tools:\n    image: t\n    profiles: [tools]\n    env_file: [/etc/hostname]\n")
		}, "/etc/hostname", "env_file of service tools of compose.yml"},
		{"pre_start hook's env_file outside", func(t *testing.T, tr tree) {
			tr.write(t, "compose.yml", "services:\n  api:\n    image: a\n    pre_start:\n      - image: a\n        env_file: [../outside/secret.env]\n")
		}, "../outside/secret.env", "env_file of pre_start hook 1 of service api of compose.yml"},
		{"the compose file itself a link leading outside", func(t *testing.T, tr tree) {
			tr.link(t, "compose.yml", filepath.Join(tr.outside, "x.yml"))
		}, "compose.yml", ""},
		{"a file over the limit", func(t *testing.T, tr tree) {
			require.NoError(t, os.WriteFile(filepath.Join(tr.root, "big.env"), make([]byte, MaxFile+1), 0o644))
			tr.write(t, "compose.yml", "services:\n  api:\n    image: a\n    env_file: big.env\n")
		}, "big.env", "env_file of service api of compose.yml"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := newTree(t)
			c.setup(t, tr)
			var err error
			within(t, func() {
				_, err = Check(context.Background(), Source{Root: tr.root, Files: []string{"compose.yml"}})
			})
			var fe *FileError
			require.ErrorAs(t, err, &fe)
			want := c.path
			switch {
			case want == "":
				want = filepath.Join(tr.outside, "x.yml")
			case !filepath.IsAbs(want) && !remote(want):
				want = filepath.Join(tr.root, want)
			}
			assert.Equal(t, filepath.Clean(want), filepath.Clean(fe.Path))
			assert.Equal(t, c.via, fe.Via)

			// Load refuses the same way: compose-go never sees the file.
			within(t, func() {
				_, err = Load(context.Background(), Source{Root: tr.root, Files: []string{"compose.yml"}}, "x", Every)
			})
			assert.ErrorAs(t, err, &fe)
		})
	}
}

func TestCheckAcceptsWhatStaysInside(t *testing.T) {
	tr := newTree(t)
	tr.write(t, "common/base.yml", "services:\n  base:\n    image: b\n    env_file: base.env\n")
	tr.write(t, "common/base.env", "A=1\n")
	tr.write(t, "inc/extra.yml", "include: [more.yml]\nservices:\n  extra:\n    image: e\n    label_file: labels\n")
	tr.write(t, "inc/more.yml", "services:\n  more:\n    image: m\n")
	tr.write(t, "inc/labels", "a=b\n")
	tr.write(t, "inc/.env", "EXTRA=1\n")
	tr.write(t, "real-compose.yml", "include: [inc/extra.yml]\nservices:\n  api:\n    extends: {file: common/base.yml, service: base}\n    env_file:\n      - path: missing.env\n        required: false\n  tools:\n    image: t\n    profiles: [tools]\n    env_file: tools.env\n")
	tr.write(t, "tools.env", "T=1\n")
	tr.link(t, "compose.yml", "real-compose.yml") // a symlinked compose file, inside
	files, err := Check(context.Background(), Source{Root: tr.root, Files: []string{"compose.yml"}})
	require.NoError(t, err)
	rel := make([]string, len(files))
	for i, f := range files {
		rel[i], _ = filepath.Rel(tr.root, f)
	}
	assert.ElementsMatch(t, []string{"compose.yml", "inc/.env", "inc/extra.yml", "inc/more.yml", "inc/labels", "common/base.yml", "common/base.env", "tools.env"}, rel)

	p, err := Load(context.Background(), Source{Root: tr.root, Files: []string{"compose.yml"}}, "x", Every)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"api", "extra", "more", "tools"}, p.ServiceNames())
}

func TestReadFileDoesNotBlockOnAFIFOSwappedIn(t *testing.T) {
	tr := newTree(t)
	tr.write(t, "a.yml", svc)
	real, fi, err := CheckFile(tr.root, "a.yml", MaxFile)
	require.NoError(t, err)
	require.NoError(t, os.Remove(real))
	require.NoError(t, syscall.Mkfifo(real, 0o644))
	within(t, func() {
		_, err = ReadRegular(real, fi, MaxFile, func(r string) error { return &FileError{Path: real, Reason: r} })
	})
	var fe *FileError
	assert.ErrorAs(t, err, &fe)
}
