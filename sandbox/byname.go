package sandbox

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
