package sandbox

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/ktrdr/sandboxkit/sandbox/composefile"
	"github.com/ktrdr/sandboxkit/sandbox/envfile"
)

// checkoutMounts returns the folders inside root that the sandbox's stack
// bind-mounts, as compose resolves its files with the sandbox's env file
// (every profile; composefile.Load). When the files cannot be read that way, it falls back to
// the profile's shared folders (./data, ./models, …) that the env file
// leaves inside the checkout.
func (m *Manager) checkoutMounts(ctx context.Context, root string) []string {
	env, _ := envfile.Read(filepath.Join(root, m.Profile.EnvFile))
	var dirs []string
	add := func(p string) {
		if !filepath.IsAbs(p) {
			p = filepath.Join(root, p)
		}
		p = filepath.Clean(p)
		if rel, err := filepath.Rel(root, p); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !slices.Contains(dirs, p) {
			dirs = append(dirs, p)
		}
	}
	vals, _ := m.Profile.EnvValues(filepath.Join(root, m.Profile.EnvFile))
	if p, err := composefile.Load(ctx, m.stackSource(root, vals), "mounts", composefile.Every); err == nil {
		for _, s := range p.Services {
			for _, v := range s.Volumes {
				if v.Type == types.VolumeTypeBind {
					add(v.Source)
				}
			}
		}
		return dirs
	}
	for _, sd := range m.Profile.Shared {
		if v := env[sd.Key]; v != "" {
			add(v)
		} else {
			add(sd.Name)
		}
	}
	return dirs
}

// dataFolders returns the folders inside root that may hold data nobody
// committed: those the stack bind-mounts (checkoutMounts), and the places of
// the profile's shared folders in the checkout (./data, ./models, …) also
// when the stack mounts the shared root instead. A sandbox made before the
// shared folders existed, or data copied in by hand, leaves files there
// that git ignores.
func (m *Manager) dataFolders(ctx context.Context, root string) []string {
	dirs := m.checkoutMounts(ctx, root)
	for _, sd := range m.Profile.Shared {
		if d := filepath.Join(root, sd.Name); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// ignoredInMounts lists the files git ignores inside the checkout's data
// folders (dataFolders), relative to root: what a container wrote there, or
// data put there by hand, that removing the worktree would delete unseen.
func (m *Manager) ignoredInMounts(ctx context.Context, root string) ([]string, error) {
	dirs := m.dataFolders(ctx, root)
	if len(dirs) == 0 {
		return nil, nil
	}
	args := []string{"-C", root, "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--"}
	for _, d := range dirs {
		rel, _ := filepath.Rel(root, d)
		args = append(args, filepath.ToSlash(rel))
	}
	out, err := m.Runner.Run(ctx, driver.Cmd{Name: "git", Args: args})
	if err != nil {
		return nil, fmt.Errorf("list files git ignores in the mounted and shared-data folders of %s: %w", root, err)
	}
	var files []string
	for _, f := range strings.Split(string(out), "\x00") {
		if f != "" && f != m.Profile.EnvFile {
			files = append(files, f)
		}
	}
	slices.Sort(files)
	return files, nil
}
