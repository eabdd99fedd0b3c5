package driver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCgroupMemory(t *testing.T) {
	root := t.TempDir()
	old := CgroupRoot
	CgroupRoot = root
	t.Cleanup(func() { CgroupRoot = old })
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	write("memory/docker/aaa/memory.usage_in_bytes", "1048576\n") // cgroup v1, cgroupfs
	write("docker/bbb/memory.current", "2048\n")                  // v2, cgroupfs
	write("system.slice/docker-ccc.scope/memory.current", "4096") // v2, systemd
	write("docker/bad/memory.current", "lots\n")

	tests := []struct {
		name string
		ids  []string
		want map[string]int64
		ok   bool
	}{
		{"every layout", []string{"aaa", "bbb", "ccc"}, map[string]int64{"aaa": 1 << 20, "bbb": 2048, "ccc": 4096}, true},
		{"none", nil, map[string]int64{}, true},
		{"one not on this host", []string{"aaa", "zzz"}, nil, false},
		{"a figure that is not one", []string{"bad"}, nil, false},
		{"an id that is a path", []string{"../docker/bbb"}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stats, ok := CgroupMemory(tc.ids)
			assert.Equal(t, tc.ok, ok)
			if !tc.ok {
				return
			}
			got := map[string]int64{}
			for id, s := range stats {
				got[id] = s.MemoryBytes
			}
			assert.Equal(t, tc.want, got)
		})
	}
}
