package sandbox

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/compose-spec/compose-go/v2/types"
)

// On another engine the checkout's folders (./data, the shared folders, any
// folder the stack bind-mounts) do not exist. Each bind mount of a local
// folder becomes a named volume of the sandbox on that engine, filled from
// the local folder before the stack starts by streaming a tar through the
// engine into a helper container of the stand-in image (`standin fs
// untar`): files of the folder are added or replaced; files only the volume
// has (what containers wrote, files deleted locally) stay, unless
// `sandbox:sync -mirror` asks to delete them. Nothing is copied back.
// `sandbox:sync` pushes again; `up` pushes every time it starts the stack. Read-only mounts stay read-only. The volumes carry the instance
// label, so that destroy (and down -volumes) remove exactly them.

// syncVolume is the volume of one local folder of a sandbox.
type syncVolume struct {
	Source string // the local folder, absolute
	Name   string // the volume on the engine
	Empty  bool   // nothing to copy (a folder that does not exist yet, or a file in stand-in mode)
}

// syncPlan lists the bind mounts of sf that become volumes of sandbox id.
func syncPlan(sf *StackFile, id string, standin bool) ([]syncVolume, error) {
	seen := map[string]bool{}
	var plan []syncVolume
	for _, name := range sf.sortedServiceNames() {
		for _, v := range sf.project.Services[name].Volumes {
			if v.Type != types.VolumeTypeBind || seen[v.Source] {
				continue
			}
			fi, err := os.Stat(v.Source)
			sv := syncVolume{Source: v.Source, Name: syncVolumeName(id, v.Source)}
			switch {
			case errors.Is(err, fs.ErrNotExist):
				sv.Empty = true // compose would have made an empty folder
			case err != nil:
				return nil, fmt.Errorf("service %s mounts %s: %w", name, v.Source, err)
			case fi.IsDir():
			case standin:
				sv.Empty = true // the stand-ins read no file they are given
			case fi.Mode().IsRegular():
				return nil, fmt.Errorf("service %s bind-mounts the file %s: on another engine only folders are synced to volumes; mount its folder instead, or run the sandbox locally", name, v.Source)
			default:
				continue // a socket or device: the engine's host has its own
			}
			seen[v.Source] = true
			plan = append(plan, sv)
		}
	}
	return plan, nil
}

// syncVolumeName names the volume of a local folder: the instance, the
// folder's name and a hash of its path (docker volume names allow
// [a-zA-Z0-9_.-]).
func syncVolumeName(id, source string) string {
	sum := sha256.Sum256([]byte(source))
	base := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, filepath.Base(source))
	if len(base) > 40 {
		base = base[:40]
	}
	return id + "-sync-" + base + "-" + hex.EncodeToString(sum[:4])
}

// syncVolumes creates the volumes of sandbox id's local folders on the
// manager's engine and fills them; it returns each folder's volume.
func (m *Manager) syncVolumes(ctx context.Context, sf *StackFile, id string, standin, mirror bool) (map[string]string, error) {
	plan, err := syncPlan(sf, id, standin)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, sv := range plan {
		if _, err := m.Runner.Run(ctx, driver.Cmd{Name: "docker", Args: []string{"volume", "inspect", "--format", "{{.Name}}", sv.Name}}); err != nil {
			var ee *driver.ExitError
			if !errors.As(err, &ee) {
				return nil, fmt.Errorf("look up volume %s on engine %s: %w", sv.Name, m.engine.Name(), err)
			}
			if _, err := m.Runner.Run(ctx, driver.Cmd{Name: "docker", Args: []string{"volume", "create",
				"--label", m.Profile.InstanceLabel + "=" + id, "--label", "org.ktrdr.sandbox.source=" + sv.Source, sv.Name}}); err != nil {
				return nil, fmt.Errorf("create volume %s on engine %s: %w", sv.Name, m.engine.Name(), err)
			}
		}
		if !sv.Empty {
			if err := m.fillVolume(ctx, sv, id, mirror); err != nil {
				return nil, err
			}
			m.emit(Event{Kind: EvVolumeSynced, Source: sv.Source, Volume: sv.Name, Engine: m.engine.Name()})
		}
		out[sv.Source] = sv.Name
	}
	return out, nil
}

// fillVolume mirrors the local folder into its volume through a helper
// container of the stand-in image.
func (m *Manager) fillVolume(ctx context.Context, sv syncVolume, id string, mirror bool) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTar(pw, sv.Source)) }()
	args := []string{"run", "--rm", "-i", "--label", m.Profile.InstanceLabel + "=" + id,
		"-v", sv.Name + ":/dst", "--entrypoint", "/standin", m.Profile.StandinImage, "fs", "untar"}
	if mirror {
		args = append(args, "--clean")
	}
	_, err := m.Runner.Run(ctx, driver.Cmd{Name: "docker", Args: append(args, "/dst"), Stdin: pr})
	pr.CloseWithError(err)
	if err != nil {
		return fmt.Errorf("copy %s into volume %s on engine %s: %w", sv.Source, sv.Name, m.engine.Name(), err)
	}
	return nil
}

// writeTar writes the folder root as a tar stream: folders, regular files
// and symbolic links (as links), with names relative to root. Other files
// (sockets, devices) are left out.
func writeTar(w io.Writer, root string) error {
	// A linked folder (a shared folder on a bigger disk) is synced as the
	// folder it points to.
	if real, err := filepath.EvalSymlinks(root); err == nil {
		root = real
	}
	tw := tar.NewWriter(w)
	var paths []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != root {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", root, err)
	}
	sort.Strings(paths)
	for _, path := range paths {
		fi, err := os.Lstat(path)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		link := ""
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(path); err != nil {
				return fmt.Errorf("read link %s: %w", path, err)
			}
		case fi.IsDir(), fi.Mode().IsRegular():
		default:
			continue
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return fmt.Errorf("describe %s: %w", path, err)
		}
		rel, _ := filepath.Rel(root, path)
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
		}
	}
	return tw.Close()
}

// removeSyncVolumes removes the volumes of sandbox id on the manager's
// engine: those that carry its instance label.
func (m *Manager) removeSyncVolumes(ctx context.Context, id string) error {
	out, err := m.Runner.Run(ctx, driver.Cmd{Name: "docker", Args: []string{"volume", "ls", "-q", "--filter", "label=" + m.Profile.InstanceLabel + "=" + id}})
	if err != nil {
		return fmt.Errorf("list the volumes of %s on engine %s: %w", id, m.engine.Name(), err)
	}
	names := strings.Fields(string(out))
	if len(names) == 0 {
		return nil
	}
	if _, err := m.Runner.Run(ctx, driver.Cmd{Name: "docker", Args: append([]string{"volume", "rm"}, names...)}); err != nil {
		return fmt.Errorf("remove the volumes of %s on engine %s: %w", id, m.engine.Name(), err)
	}
	return nil
}

// SyncResult says what Sync pushed.
type SyncResult struct {
	ID      string            `json:"id"`
	Engine  string            `json:"engine"`
	Volumes map[string]string `json:"volumes"` // local folder → volume
}

// SyncOptions are the inputs of Sync.
type SyncOptions struct {
	Dir    string // a folder of the sandbox
	Mirror bool   // delete what only the volumes hold
	// AllowSync: folders outside the checkout and the shared root that may
	// go to the engine this time, each exactly (besides the manager's
	// AllowSync; outside.go).
	AllowSync []string
}

// Sync pushes the local folders of the sandbox that holds dir to its
// volumes on its engine again (a sandbox on the local engine mounts them
// directly: nothing to do).
// With mirror, files that are in a volume but not in the local folder are
// deleted there (what containers wrote there too); without, files are only
// added and replaced.
func (m *Manager) Sync(ctx context.Context, o SyncOptions) (*SyncResult, error) {
	l, err := m.locate(o.Dir)
	if err != nil {
		return nil, err
	}
	res := &SyncResult{ID: l.Env.InstanceID, Engine: l.Env.Engine.Name(), Volumes: map[string]string{}}
	if !l.Env.Engine.Remote() {
		return res, nil
	}
	_, sf, err := m.locatedStack(ctx, &l)
	if err != nil {
		return nil, err
	}
	rm := m.on(l.Env.Engine)
	// Only the checkout's and the shared root's folders go there (outside.go).
	if err := rm.checkSent(sf, l.Root, l.Env, slices.Concat(m.AllowSync, o.AllowSync), false); err != nil {
		return nil, err
	}
	// The helper container runs the stand-in image: the engine needs it.
	if err := rm.ensureStandinImage(ctx, l.Root, false); err != nil {
		return nil, err
	}
	if res.Volumes, err = rm.syncVolumes(ctx, sf, l.Env.InstanceID, l.Env.Standin, o.Mirror); err != nil {
		return nil, err
	}
	return res, nil
}
