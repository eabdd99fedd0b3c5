package sandbox

import (
	"os"
	"path/filepath"
)

// Folder returns the folder of the sandbox registered as name: the Dir an
// operation on that sandbox takes, for callers that name sandboxes rather
// than run inside them (the MCP server). A name that is not valid is an
// *InvalidNameError, checked before anything is read; a name not in the
// registry is a *NotRegisteredError.
func (m *Manager) Folder(name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	id := m.Profile.InstanceID(name)
	instances, err := m.Registry().Instances()
	if err != nil {
		return "", err
	}
	in, ok := instances[id]
	if !ok {
		return "", &NotRegisteredError{ID: id}
	}
	return in.Path, nil
}

// APIURL returns the API URL of the sandbox registered as name, from its
// own env file (never a file above it, never the main stack's default): a
// registered sandbox whose folder has no env file is a *NotSandboxError.
func (m *Manager) APIURL(name string) (string, error) {
	dir, err := m.Folder(name)
	if err != nil {
		return "", err
	}
	if fi, err := os.Lstat(filepath.Join(dir, m.Profile.EnvFile)); err != nil || !fi.Mode().IsRegular() {
		if err == nil {
			return "", &EnvFileError{Path: filepath.Join(dir, m.Profile.EnvFile), Err: ErrEnvSymlink}
		}
		return "", &NotSandboxError{Dir: dir}
	}
	return m.Profile.Resolver().Resolve("", 0, dir)
}
