package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// write writes the user's settings file under home.
func write(t *testing.T, home, content string) {
	t.Helper()
	path := KTRDR().ConfigPath(home)
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

func TestLoadManagerSlotSetting(t *testing.T) {
	t.Run("no file: slots 1–10", func(t *testing.T) {
		m, err := LoadManager(t.TempDir())
		require.NoError(t, err)
		assert.Equal(t, 10, m.Profile.MaxSlot)
	})
	t.Run("wider range", func(t *testing.T) {
		home := t.TempDir()
		write(t, home, `{"max_slot": 42}`)
		m, err := LoadManager(home)
		require.NoError(t, err)
		assert.Equal(t, 42, m.Profile.MaxSlot)
		assert.Equal(t, 10, KTRDR().MaxSlot, "the default profile is not changed")
	})
	t.Run("100 slots: the worker rules hold up to where they collide, then a chosen block; every port distinct", func(t *testing.T) {
		home := t.TempDir()
		write(t, home, `{"max_slot": 100}`)
		m, err := LoadManager(home)
		require.NoError(t, err)
		assert.Equal(t, 100, m.Profile.MaxSlot)
		sp, _, err := m.stackOf(t.Context(), "..", nil)
		require.NoError(t, err, "ForStack proves the adapted rules collision-free over slots 0–100")
		doc := KTRDR()
		for _, r := range sp.Ports {
			assert.False(t, r.Chosen, r.Key)
			d, _ := doc.Rule(r.Key)
			for slot := 1; slot <= 10; slot++ {
				assert.Equal(t, d.Port(slot), r.Port(slot), "%s slot %d: no sandbox of the usual slots moves", r.Key, slot)
			}
			if strings.HasPrefix(r.Key, "KTRDR_WORKER_PORT_") {
				assert.GreaterOrEqual(t, r.Until, 42, r.Key)
				assert.GreaterOrEqual(t, r.Port(100), unknownBase, r.Key)
			} else {
				assert.Zero(t, r.Until, r.Key)
			}
		}
		api, _ := sp.Rule("KTRDR_API_PORT")
		assert.Equal(t, 8100, api.Port(100), "documented rules that hold are kept")
	})
	t.Run("a range over 100", func(t *testing.T) {
		home := t.TempDir()
		write(t, home, `{"max_slot": 101}`)
		_, err := LoadManager(home)
		var pc *PortCollisionError
		require.ErrorAs(t, err, &pc)
		assert.Contains(t, err.Error(), "config.json")
	})
	t.Run("typo", func(t *testing.T) {
		home := t.TempDir()
		write(t, home, `{"maxslot": 20}`)
		_, err := LoadManager(home)
		assert.ErrorContains(t, err, `unknown field "maxslot"`)
	})
}

func TestLoadManagerMinFreeMemory(t *testing.T) {
	tests := []struct {
		content string
		want    int64
		wantErr string
	}{
		{``, DefaultMinFreeMemory, ""},
		{`{}`, DefaultMinFreeMemory, ""},
		{`{"min_free_memory": 0}`, 0, ""},
		{`{"min_free_memory": 1073741824}`, 1 << 30, ""},
		{`{"min_free_memory": "4GiB"}`, 4 << 30, ""},
		{`{"min_free_memory": "512MB"}`, 512e6, ""},
		{`{"min_free_memory": "2g", "max_slot": 20}`, 2 << 30, ""},
		{`{"min_free_memory": "plenty"}`, 0, `unknown unit "plenty"`},
		{`{"min_free_memory": -1}`, 0, "not a whole number of bytes"},
		{`{"min_free_memory": 1.5}`, 0, "not a whole number of bytes"},
		{`{"min_free_memory": null}`, DefaultMinFreeMemory, ""},
		{`{"min_free_memory": [1]}`, 0, "neither a number of bytes nor a string"},
	}
	for _, tt := range tests {
		t.Run(tt.content, func(t *testing.T) {
			home := t.TempDir()
			if tt.content != "" {
				path := KTRDR().ConfigPath(home)
				require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
				require.NoError(t, os.WriteFile(path, []byte(tt.content), 0o644))
			}
			m, err := LoadManager(home)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Contains(t, err.Error(), "config.json")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, m.MinFreeMemory)
			assert.Equal(t, tt.want, m.on(Engine{Context: "big"}).MinFreeMemory, "a manager for another engine keeps the floor")
		})
	}
}

func TestLoadManagerAllowSync(t *testing.T) {
	tests := []struct {
		content string
		want    []string
		wantErr string
	}{
		{`{}`, nil, ""},
		{`{"allow_sync": ["/srv/ktrdr-data", "/mnt/big/models"]}`, []string{"/srv/ktrdr-data", "/mnt/big/models"}, ""},
		{`{"allow_sync": ["data"]}`, nil, `allow_sync: allow sync of "data": not an absolute path`},
		{`{"allow_sync": "/srv"}`, nil, "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.content, func(t *testing.T) {
			home := t.TempDir()
			path := KTRDR().ConfigPath(home)
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
			require.NoError(t, os.WriteFile(path, []byte(tt.content), 0o644))
			m, err := LoadManager(home)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Contains(t, err.Error(), "config.json")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, m.AllowSync)
			assert.Equal(t, tt.want, m.on(Engine{Context: "big", Host: "big"}).AllowSync, "a manager for another engine keeps the list")
		})
	}
}

func TestLoadManagerHooks(t *testing.T) {
	home := t.TempDir()
	write(t, home, `{"hooks": [{"name": "seed", "service": "backend", "command": ["python", "seed.py"], "timeout": "2m"}]}`)
	m, err := LoadManager(home)
	require.NoError(t, err)
	require.Len(t, m.Hooks, 1)
	assert.Equal(t, "seed", m.Hooks[0].Name)

	write(t, home, `{"hooks": [{"name": "seed", "service": "backend"}]}`)
	_, err = LoadManager(home)
	assert.ErrorContains(t, err, "each of hooks needs a name, a service and a command")
}
