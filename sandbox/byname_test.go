package sandbox

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFolder(t *testing.T) {
	m, err := LoadManager(t.TempDir())
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "ktrdr--feat")
	_, err = m.Registry().Register(t.Context(), "ktrdr--feat", Instance{Path: path}, 0, nil)
	require.NoError(t, err)

	tests := []struct {
		name string
		want string
		err  any // the error's type; nil: none
	}{
		{"feat", path, nil},
		{"other", "", &NotRegisteredError{}},
		{"../../etc", "", &InvalidNameError{}},
		{"feat/../x", "", &InvalidNameError{}},
		{"", "", &InvalidNameError{}},
		{"FEAT", "", &InvalidNameError{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := m.Folder(tt.name)
			if tt.err != nil {
				assert.IsType(t, tt.err, err)
				assert.Empty(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestAPIURLIsTheSandboxsOwn(t *testing.T) {
	m, err := LoadManager(t.TempDir())
	require.NoError(t, err)
	root := t.TempDir()
	withEnv, without := filepath.Join(root, "ktrdr--a"), filepath.Join(root, "ktrdr--b")
	require.NoError(t, os.MkdirAll(withEnv, 0o755))
	require.NoError(t, os.MkdirAll(without, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(withEnv, ".env.sandbox"), []byte("KTRDR_API_PORT=8009\n"), 0o644))
	// A file above the folder without one must not answer for it.
	require.NoError(t, os.WriteFile(filepath.Join(root, ".env.sandbox"), []byte("KTRDR_API_PORT=8001\n"), 0o644))
	for name, path := range map[string]string{"ktrdr--a": withEnv, "ktrdr--b": without} {
		_, err = m.Registry().Register(t.Context(), name, Instance{Path: path}, 0, nil)
		require.NoError(t, err)
	}

	u, err := m.APIURL("a")
	require.NoError(t, err)
	assert.Equal(t, "http://localhost:8009", u)
	_, err = m.APIURL("b")
	assert.IsType(t, &NotSandboxError{}, err, "never the file above, never the main stack's URL")
	_, err = m.APIURL("../a")
	assert.IsType(t, &InvalidNameError{}, err)
}
