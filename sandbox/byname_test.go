package sandbox

import (
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
