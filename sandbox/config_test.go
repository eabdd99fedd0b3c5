package sandbox

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadManagerSlotSetting(t *testing.T) {
	write := func(t *testing.T, home, content string) {
		path := KTRDR().ConfigPath(home)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	}
	t.Run("no file: slots 1–10", func(t *testing.T) {
		m, err := LoadManager(t.TempDir(), nil)
		require.NoError(t, err)
		assert.Equal(t, 10, m.Profile.MaxSlot)
	})
	t.Run("wider range", func(t *testing.T) {
		home := t.TempDir()
		write(t, home, `{"max_slot": 42}`)
		m, err := LoadManager(home, nil)
		require.NoError(t, err)
		assert.Equal(t, 42, m.Profile.MaxSlot)
		assert.Equal(t, 10, KTRDR().MaxSlot, "the default profile is not changed")
	})
	t.Run("a range the port rules cannot serve", func(t *testing.T) {
		home := t.TempDir()
		write(t, home, `{"max_slot": 100}`)
		_, err := LoadManager(home, nil)
		var pc *PortCollisionError
		require.ErrorAs(t, err, &pc)
		assert.Contains(t, err.Error(), "config.json")
		assert.Contains(t, err.Error(), "slot 43 KTRDR_WORKER_PORT_3")
	})
	t.Run("typo", func(t *testing.T) {
		home := t.TempDir()
		write(t, home, `{"maxslot": 20}`)
		_, err := LoadManager(home, nil)
		assert.ErrorContains(t, err, `unknown field "maxslot"`)
	})
}
