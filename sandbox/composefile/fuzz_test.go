package composefile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

// FuzzCheck loads fuzzed compose files that include, extend and name env
// and label files, in a checkout holding a link that leads outside and a
// FIFO, beside an outside folder whose file defines service "stolen". Check
// and Load must return (no FIFO read, nothing endless), every file Check
// lists must be inside the checkout, and a project Load accepts must hold
// nothing from outside.
func FuzzCheck(f *testing.F) {
	seeds := [][2]string{
		{"include: [inc.yml]\nservices:\n  a:\n    image: a\n", "services:\n  b:\n    image: b\n"},
		{"include: [link.yml]\n", ""},
		{"include: [../outside/x.yml]\n", ""},
		{"services:\n  a:\n    extends: {file: inc.yml, service: b}\n", "services:\n  b:\n    extends: {file: link.yml, service: stolen}\n"},
		{"services:\n  a:\n    image: a\n    env_file: pipe\n", ""},
		{"services:\n  a:\n    image: a\n    label_file: [pipe]\n", ""},
		{"include:\n  - path: [inc.yml, link.yml]\n", "services: {}\n"},
		{"include:\n  - path: inc.yml\n    project_directory: sub\n", "include: [../link.yml]\n"},
		{"include: [\"${X:-/dev/zero}\"]\n", ""},
		{"services:\n  a:\n    image: a\n    profiles: [p]\n    env_file: [{path: /etc/passwd, required: false}]\n", ""},
		{"include: [inc.yml]\n", "include: [compose.yml]\n"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, top, inc string) {
		base := t.TempDir()
		root := filepath.Join(base, "checkout")
		outside := filepath.Join(base, "outside")
		for _, d := range []string{filepath.Join(root, "sub"), outside} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		write := func(p, s string) {
			if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write(filepath.Join(outside, "x.yml"), "services:\n  stolen:\n    image: outside\n")
		write(filepath.Join(root, "compose.yml"), top)
		write(filepath.Join(root, "inc.yml"), inc)
		write(filepath.Join(root, "sub", "inc.yml"), inc)
		if err := os.Symlink(filepath.Join(outside, "x.yml"), filepath.Join(root, "link.yml")); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(filepath.Join(root, "pipe"), 0o644); err != nil {
			t.Fatal(err)
		}
		src := Source{Root: root, Files: []string{"compose.yml"}, Env: map[string]string{}}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		type result struct {
			files []string
			p     *types.Project
			err   error
		}
		done := make(chan result, 1)
		go func() {
			files, err := Check(ctx, src)
			if err != nil {
				done <- result{err: err}
				return
			}
			p, err := Load(ctx, src, "fuzz", Every)
			done <- result{files: files, p: p, err: err}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(20 * time.Second): // an upper bound: a FIFO would block forever
			t.Fatalf("Check or Load did not return")
		}
		realRoot, _ := filepath.EvalSymlinks(root)
		for _, f := range r.files {
			real, err := filepath.EvalSymlinks(f)
			if err != nil || !Within(realRoot, real) {
				t.Fatalf("Check accepted %s, outside the checkout", f)
			}
		}
		if r.p != nil {
			for name, s := range r.p.Services {
				if name == "stolen" || strings.Contains(s.Image, "outside") {
					t.Fatalf("Load read the outside file: service %s", name)
				}
			}
		}
	})
}
