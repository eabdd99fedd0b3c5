package sandbox

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestResolveAPIURLSource(t *testing.T) {
	root := t.TempDir()
	sandboxDir := filepath.Join(root, "ktrdr--a")
	deep := filepath.Join(sandboxDir, "x", "y", "z")
	require.NoError(t, os.MkdirAll(deep, 0o755))
	envPath := filepath.Join(sandboxDir, ".env.sandbox")
	require.NoError(t, os.WriteFile(envPath, []byte("KTRDR_API_PORT=8003\n"), 0o644))
	plain := filepath.Join(root, "plain")
	require.NoError(t, os.MkdirAll(plain, 0o755))
	t.Setenv("KTRDR_API_PORT", "8999") // must never matter

	tests := []struct {
		name       string
		url        string
		port       int
		cwd        string
		wantURL    string
		wantSource string
	}{
		{"url wins", "http://h:1", 8002, deep, "http://h:1", "explicit URL"},
		{"port beats file", "", 8002, deep, "http://localhost:8002", "explicit port"},
		{"file three levels up", "", 0, deep, "http://localhost:8003", "KTRDR_API_PORT in " + envPath},
		{"default", "", 0, plain, "http://localhost:8000", "default: no .env.sandbox in " + plain + " or its parents"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, source, err := ResolveAPIURLSource(tt.url, tt.port, tt.cwd)
			require.NoError(t, err)
			assert.Equal(t, tt.wantURL, url)
			assert.Equal(t, tt.wantSource, source)
			same, err := ResolveAPIURL(tt.url, tt.port, tt.cwd)
			require.NoError(t, err)
			assert.Equal(t, same, url, "must agree with ResolveAPIURL")
		})
	}
}

func TestResolveAPIURLSourceBadFile(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".env.sandbox"), []byte("SLOT_NUMBER=1\n"), 0o644))
	_, _, err := ResolveAPIURLSource("", 0, dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join(dir, ".env.sandbox"))
}
