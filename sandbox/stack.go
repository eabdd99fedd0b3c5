package sandbox

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
)

// StackFor returns the stack of the sandbox rooted at root. An optional
// override file (the sandbox compose file's name with .override before
// .yml) is used when present.
func (p *Profile) StackFor(project, root string) driver.Stack {
	files := []string{filepath.Join(root, p.SandboxCompose)}
	if o := p.overrideFile(root); o != "" {
		files = append(files, o)
	}
	return driver.Stack{Project: project, Dir: root, Files: files, EnvFile: filepath.Join(root, p.EnvFile)}
}

func (p *Profile) overrideFile(root string) string {
	ext := filepath.Ext(p.SandboxCompose)
	o := filepath.Join(root, strings.TrimSuffix(p.SandboxCompose, ext)+".override"+ext)
	if fi, err := os.Stat(o); err == nil && fi.Mode().IsRegular() {
		return o
	}
	return ""
}
