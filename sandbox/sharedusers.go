package sandbox

import (
	"path/filepath"
	"sort"
)

// OwnDataSandboxes lists the registered sandboxes whose env file mounts
// their checkout's own ./data-style folders rather than the shared root:
// they were created before the shared folders existed.
func (m *Manager) OwnDataSandboxes() ([]string, error) {
	instances, err := m.Registry().Instances()
	if err != nil {
		return nil, err
	}
	var ids []string
	for id, in := range instances {
		env, err := m.Profile.ReadEnv(filepath.Join(in.Path, m.Profile.EnvFile))
		if err == nil && env.SharedRoot == "" {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}
