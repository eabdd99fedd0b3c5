package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// On another engine every folder the stack mounts is copied there (sync.go)
// and every build context is sent there to be built. Only folders of the
// checkout and of the shared root may go: a bind of ~/.ssh, of /, of /etc or
// of .. (every sibling worktree), a folder of the checkout that is a link
// leading outside, or a build context outside the checkout is refused
// before anything is made on that engine (no image, volume, network or
// container), unless the user allows exactly that folder (config.json's
// allow_sync, or -allowSync). Where a folder leads is decided after
// following its links (filepath.EvalSymlinks): a folder that does not
// exist yet leads where its deepest existing parent leads. An allowed
// folder allows itself only, not what lies below it: allowing /home/me
// must not send /home/me/.ssh. On the local engine binds are the user's
// business: nothing is checked there.
//
// Sockets and devices are not copied (the engine's host has its own), so
// a bind of /var/run/docker.sock is not refused. Stand-in stacks never
// build, so their build contexts are not checked.

// sentFolder is one local folder that the stack file would send to an
// engine: a bind mount's source or a build context.
type sentFolder struct {
	Service string
	Kind    string // "bind mount", "build context", "Dockerfile", "additional build context <name>"
	Folder  string // absolute, as the loaded file says (a Dockerfile: the file)
}

// sentFolders lists the bind mount sources and build contexts of every
// service of sf, those of every profile included. It reads the file as
// sync.go does (the loaded project); when the loading of compose files
// changes, only this function follows.
func sentFolders(sf *StackFile) []sentFolder {
	var out []sentFolder
	all := map[string]types.ServiceConfig{}
	for name, s := range sf.project.DisabledServices {
		all[name] = s
	}
	for name, s := range sf.project.Services {
		all[name] = s
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range all {
			if !yield(n) {
				return
			}
		}
	}) {
		s := all[name]
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind && filepath.IsAbs(v.Source) {
				out = append(out, sentFolder{Service: name, Kind: "bind mount", Folder: v.Source})
			}
		}
		if s.Build == nil {
			continue
		}
		// Contexts that are not local folders (a git or http URL,
		// docker-image://, service:) stay as the file wrote them: relative.
		if filepath.IsAbs(s.Build.Context) {
			out = append(out, sentFolder{Service: name, Kind: "build context", Folder: s.Build.Context})
		}
		// The Dockerfile is sent with the context; one outside it counts
		// on its own.
		if df := s.Build.Dockerfile; df != "" {
			if !filepath.IsAbs(df) && filepath.IsAbs(s.Build.Context) {
				df = filepath.Join(s.Build.Context, df)
			}
			if filepath.IsAbs(df) && !atOrBelow(filepath.Clean(s.Build.Context), df) {
				out = append(out, sentFolder{Service: name, Kind: "Dockerfile", Folder: df})
			}
		}
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range s.Build.AdditionalContexts {
				if !yield(k) {
					return
				}
			}
		}) {
			if c := s.Build.AdditionalContexts[k]; filepath.IsAbs(c) {
				out = append(out, sentFolder{Service: name, Kind: "additional build context " + k, Folder: c})
			}
		}
	}
	return out
}

// OutsideFolder is one folder that would be sent to another engine though
// it lies outside the checkout and the shared root.
type OutsideFolder struct {
	Folder   string   `json:"folder"`   // as the file names it, absolute
	Kind     string   `json:"kind"`     // "bind mount", "build context", "Dockerfile", "additional build context <name>"
	Services []string `json:"services"` // the services that mount or build it, by name
	Resolved string   `json:"resolved"` // where it leads after its links: the path to allow ("" when that cannot be told)
	Reason   string   `json:"reason"`
}

// OutsideFolderError refuses to send folders outside the checkout and the
// shared root to another engine. Nothing was made on the engine.
type OutsideFolderError struct {
	Engine   string          // the engine's name (its Docker context)
	Checkout string          // the checkout's root, resolved
	Shared   []string        // the shared roots that count, resolved
	Folders  []OutsideFolder // in service order
}

func (e *OutsideFolderError) Error() string {
	parts := make([]string, len(e.Folders))
	for i, f := range e.Folders {
		svc := "service "
		if len(f.Services) > 1 {
			svc = "services "
		}
		parts[i] = fmt.Sprintf("%s %s (%s%s) %s", f.Kind, f.Folder, svc, strings.Join(f.Services, ", "), f.Reason)
	}
	within := "the checkout " + e.Checkout
	if len(e.Shared) > 0 {
		within += " and the shared root " + strings.Join(e.Shared, ", ")
	}
	return fmt.Sprintf("refused to send folders of this machine to engine %s: only folders inside %s go there: %s",
		e.Engine, within, strings.Join(parts, "; "))
}

// Allowed lists the folders to allow (resolved), one per folder.
func (e *OutsideFolderError) Allowed() []string {
	var out []string
	for _, f := range e.Folders {
		if f.Resolved != "" && !slices.Contains(out, f.Resolved) {
			out = append(out, f.Resolved)
		}
	}
	return out
}

// AllowSyncError reports an entry of an allow list that is not a clean
// absolute path.
type AllowSyncError struct {
	Folder string
}

func (e *AllowSyncError) Error() string {
	return fmt.Sprintf("allow sync of %q: not an absolute path (name the folder in full, e.g. /srv/ktrdr-data)", e.Folder)
}

// ValidateAllowSync checks every entry of an allow list: each must be an
// absolute path.
func ValidateAllowSync(folders []string) error {
	for _, f := range folders {
		if !filepath.IsAbs(f) {
			return &AllowSyncError{Folder: f}
		}
	}
	return nil
}

// sendRule says which local folders may be sent to another engine: those
// inside one of Roots, and exactly those of Allowed. Every path is
// resolved (resolveFolder).
type sendRule struct {
	Roots   []string
	Allowed []string
}

// newSendRule is the rule for the checkout at root with the shared roots
// shared ("" entries are skipped) and the allowed folders. A shared root
// that holds the checkout, or the home folder home, does not count: it
// would let .. or ~/.ssh through.
func newSendRule(root, home string, shared, allowed []string) (sendRule, []string, error) {
	r := sendRule{}
	checkout, err := resolveFolder(root)
	if err != nil {
		return r, nil, fmt.Errorf("find where the checkout %s leads: %w", root, err)
	}
	r.Roots = append(r.Roots, checkout)
	var homeReal string
	if home != "" {
		homeReal, _ = resolveFolder(home)
	}
	var sharedReal []string
	for _, s := range shared {
		if s == "" || !filepath.IsAbs(s) {
			continue
		}
		sr, err := resolveFolder(s)
		if err != nil || atOrBelow(sr, checkout) || homeReal != "" && atOrBelow(sr, homeReal) || slices.Contains(r.Roots, sr) {
			continue
		}
		r.Roots = append(r.Roots, sr)
		sharedReal = append(sharedReal, sr)
	}
	for _, a := range allowed {
		if !filepath.IsAbs(a) {
			return r, nil, &AllowSyncError{Folder: a}
		}
		if ar, err := resolveFolder(a); err == nil {
			r.Allowed = append(r.Allowed, ar)
		}
	}
	return r, sharedReal, nil
}

// check returns the folders of folders that the rule refuses, each once
// with every service that sends it, in the order first met.
func (r sendRule) check(folders []sentFolder) []OutsideFolder {
	var out []OutsideFolder
	for _, f := range folders {
		if i := slices.IndexFunc(out, func(o OutsideFolder) bool { return o.Folder == f.Folder && o.Kind == f.Kind }); i >= 0 {
			if !slices.Contains(out[i].Services, f.Service) {
				out[i].Services = append(out[i].Services, f.Service)
			}
			continue
		}
		if fi, err := os.Stat(f.Folder); err == nil && !fi.IsDir() && !fi.Mode().IsRegular() {
			continue // a socket or device: not copied
		}
		o := OutsideFolder{Folder: f.Folder, Kind: f.Kind, Services: []string{f.Service}}
		real, err := resolveFolder(f.Folder)
		switch {
		case err != nil:
			o.Reason = fmt.Sprintf("cannot be followed to where it leads (%v)", err)
		case slices.Contains(r.Allowed, real) || slices.ContainsFunc(r.Roots, func(root string) bool { return atOrBelow(root, real) }):
			continue
		case real != filepath.Clean(f.Folder):
			o.Resolved, o.Reason = real, "leads to "+real+", outside them"
		default:
			o.Resolved, o.Reason = real, "lies outside them"
		}
		out = append(out, o)
	}
	return out
}

// atOrBelow reports whether path is root or lies below it (both clean and absolute).
func atOrBelow(root, path string) bool { return path == root || within(root, path) }

// resolveFolder is where the absolute path p leads once every link on it
// is followed. Parts that do not exist yet are kept as written below the
// deepest part that does; a link that leads nowhere is followed as far as
// it goes.
func resolveFolder(p string) (string, error) { return resolveDepth(filepath.Clean(p), 0) }

func resolveDepth(p string, depth int) (string, error) {
	if depth > 40 {
		return "", fmt.Errorf("%s: too many levels of links", p)
	}
	rest := ""
	for {
		_, err := os.Lstat(p)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			break
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
	real, err := filepath.EvalSymlinks(p)
	if err == nil {
		return filepath.Join(real, rest), nil
	}
	// p exists (its parents lead somewhere) but is a link that leads nowhere
	// (or round in a loop): follow it by hand.
	if fi, lerr := os.Lstat(p); lerr != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return "", err
	}
	target, rerr := os.Readlink(p)
	if rerr != nil {
		return "", rerr
	}
	if !filepath.IsAbs(target) {
		dir, derr := resolveDepth(filepath.Dir(p), depth+1)
		if derr != nil {
			return "", derr
		}
		target = filepath.Join(dir, target)
	}
	return resolveDepth(filepath.Join(target, rest), depth+1)
}

// checkSent refuses, on another engine, a stack file that would send a
// folder outside the checkout at root and the shared roots (the env
// file's and the suite's) there, unless allowed. builds: the file's build
// contexts count too (not in stand-in mode, which never builds).
func (m *Manager) checkSent(sf *StackFile, root string, env Env, allowed []string, builds bool) error {
	if !m.engine.Remote() {
		return nil
	}
	rule, shared, err := newSendRule(root, m.Home, []string{env.SharedRoot, m.Profile.SharedRoot(m.Home)}, allowed)
	if err != nil {
		return err
	}
	var folders []sentFolder
	for _, f := range sentFolders(sf) {
		if builds || f.Kind == "bind mount" {
			folders = append(folders, f)
		}
	}
	bad := rule.check(folders)
	if len(bad) == 0 {
		return nil
	}
	return &OutsideFolderError{Engine: m.engine.Name(), Checkout: rule.Roots[0], Shared: shared, Folders: bad}
}
