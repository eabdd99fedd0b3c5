package composefile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
	interp "github.com/compose-spec/compose-go/v2/interpolation"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/paths"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
)

// Source is a compose project found in a checkout.
type Source struct {
	Root  string            // the checkout: every file read must be inside it
	Files []string          // the compose files, in order; relative ones are in Root
	Env   map[string]string // the only variables (never the process environment)
	// Contents holds what some of Files will hold but do not yet (a merge
	// not yet written), by absolute path: read from here, not the disk.
	Contents map[string][]byte
}

// MaxFiles bounds how many files one project may read (includes, extends,
// env and label files together).
const MaxFiles = 256

// Check walks every file that loading src opens, in every profile, and
// returns their paths in the order a load reads them; the first file it
// would refuse is a *FileError naming what referred to it. Nothing refused
// is opened.
func Check(ctx context.Context, src Source) ([]string, error) {
	w, err := check(ctx, src.abs())
	if err != nil {
		return nil, err
	}
	return w.files, nil
}

func check(ctx context.Context, src Source) (*walker, error) {
	w := &walker{root: src.Root, seen: map[string]bool{}, contents: src.Contents, vars: map[string]bool{}}
	env := types.Mapping(src.Env)
	for _, f := range src.Files {
		if err := w.project(ctx, f, filepath.Dir(src.Files[0]), env, ""); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// abs is s with an absolute root and absolute files (a relative file is
// in the root).
func (s Source) abs() Source {
	if r, err := filepath.Abs(s.Root); err == nil {
		s.Root = r
	}
	files := make([]string, len(s.Files))
	for i, f := range s.Files {
		if !filepath.IsAbs(f) {
			f = filepath.Join(s.Root, f)
		}
		files[i] = filepath.Clean(f)
	}
	s.Files = files
	return s
}

type walker struct {
	vars     map[string]bool // the variables that any path walked uses
	root     string
	seen     map[string]bool
	files    []string
	contents map[string][]byte
}

// read checks and reads one compose file named by via.
func (w *walker) read(path, via string) ([]byte, bool, error) {
	path = filepath.Clean(path)
	if w.seen[path] {
		return nil, false, nil
	}
	data, ok := w.contents[path]
	if !ok {
		var err error
		if data, _, err = ReadFile(w.root, path, MaxFile); err != nil {
			return nil, false, withVia(err, via)
		}
	}
	w.seen[path] = true
	w.files = append(w.files, path)
	if len(w.files) > MaxFiles {
		return nil, false, &FileError{Path: path, Via: via, Reason: fmt.Sprintf("the project reads more than %d files", MaxFiles)}
	}
	return data, true, nil
}

// check checks one file compose opens but that is not a compose file (an
// env or label file). A missing file inside the checkout is not read (when
// it is required, compose says so itself).
func (w *walker) check(path, via string) error {
	path = filepath.Clean(path)
	if w.seen[path] {
		return nil
	}
	if Within(filepath.Clean(w.root), path) {
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
	}
	if _, _, err := CheckFile(w.root, path, MaxFile); err != nil {
		return withVia(err, via)
	}
	w.seen[path] = true
	w.files = append(w.files, path)
	return nil
}

func withVia(err error, via string) error {
	var fe *FileError
	if errors.As(err, &fe) && fe.Via == "" {
		c := *fe
		c.Via = via
		return &c
	}
	if via != "" {
		return fmt.Errorf("%s: %w", via, err)
	}
	return err
}

// model parses one file as compose-go does, without interpolation and
// without following anything it names.
func (w *walker) model(ctx context.Context, path string, data []byte, dir string, env types.Mapping) (map[string]any, error) {
	details := types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: path, Content: data}},
		Environment: env,
	}
	m, err := guard(details, func() (map[string]any, error) { return loader.LoadModelWithContext(ctx, details, opts) })
	if err != nil {
		return nil, err
	}
	return namedFiles(m, env, w.vars)
}

// namedFiles is the part of a file's model that names other files (include,
// and each service's, job's and pre_start hook's env_file, label_file and
// extends), interpolated as compose interpolates it. Interpolating only
// this part is what makes the walk cheap.
// The names of the variables it uses are added to vars.
func namedFiles(m map[string]any, env types.Mapping, vars map[string]bool) (map[string]any, error) {
	pick := func(spec map[string]any) map[string]any {
		out := map[string]any{}
		for _, k := range []string{"env_file", "label_file", "extends"} {
			if v, ok := spec[k]; ok {
				out[k] = v
			}
		}
		if hooks, ok := spec["pre_start"].([]any); ok {
			var hs []any
			for _, h := range hooks {
				hm, _ := h.(map[string]any)
				hs = append(hs, map[string]any{"env_file": hm["env_file"], "label_file": hm["label_file"]})
			}
			out["pre_start"] = hs
		}
		return out
	}
	sub := map[string]any{}
	if inc, ok := m["include"]; ok {
		sub["include"] = inc
	}
	for _, section := range []string{"services", "jobs"} {
		specs, _ := m[section].(map[string]any)
		if len(specs) == 0 {
			continue
		}
		picked := map[string]any{}
		for name, spec := range specs {
			sm, _ := spec.(map[string]any)
			picked[name] = pick(sm)
		}
		sub[section] = picked
	}
	for name := range template.ExtractVariables(sub, template.DefaultPattern) {
		vars[name] = true
	}
	return interp.Interpolate(sub, interp.Options{
		LookupValue: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Substitute: func(s string, m template.Mapping) (string, error) {
			return template.SubstituteWithOptions(s, m, template.WithoutLogging)
		},
	})
}

// opts parse one file and nothing it names.
func opts(o *loader.Options) {
	quiet(o)
	o.SetProjectName("check", true)
	o.SkipInterpolation = true // only the paths are interpolated (expand): the rest is not read
	o.SkipInclude = true
	o.SkipExtends = true
	o.SkipValidation = true
	o.SkipNormalization = true
	o.SkipConsistencyCheck = true
	o.SkipDefaultValues = true
	o.ResolvePaths = false
	o.ResourceLoaders = nil
}

// project walks a file loaded as (part of) a project whose folder is dir.
func (w *walker) project(ctx context.Context, path, dir string, env types.Mapping, via string) error {
	data, fresh, err := w.read(path, via)
	if err != nil || !fresh {
		return err
	}
	m, err := w.model(ctx, path, data, dir, env)
	if err != nil {
		return err
	}
	name := w.rel(path)
	if err := w.includes(ctx, m["include"], dir, env, name); err != nil {
		return err
	}
	return w.services(ctx, m, dir, env, name)
}

// extended walks a file a service extends: its own relative paths are in
// its folder.
func (w *walker) extended(ctx context.Context, path string, env types.Mapping, via string) error {
	data, fresh, err := w.read(path, via)
	if err != nil || !fresh {
		return err
	}
	dir := filepath.Dir(path)
	m, err := w.model(ctx, path, data, dir, env)
	if err != nil {
		return err
	}
	return w.services(ctx, m, dir, env, w.rel(path))
}

func (w *walker) rel(path string) string {
	if r, err := filepath.Rel(w.root, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

// includes walks the include list of a file of the project in dir.
func (w *walker) includes(ctx context.Context, v any, dir string, env types.Mapping, file string) error {
	list, _ := v.([]any)
	for _, item := range list {
		var inc struct {
			paths   []string
			project string
			envs    []string
		}
		switch it := item.(type) {
		case string:
			inc.paths = []string{it}
		case map[string]any:
			inc.paths = strings_(it["path"])
			inc.project, _ = it["project_directory"].(string)
			inc.envs = strings_(it["env_file"])
		default:
			continue
		}
		via := "include of " + file
		if len(inc.paths) == 0 {
			continue
		}
		for _, p := range inc.paths {
			if remote(p) {
				return &FileError{Path: p, Via: via, Reason: "an include from a URL reads outside the checkout"}
			}
		}
		abs := func(p string) string { return resolve(dir, p) }
		for _, p := range inc.paths {
			if _, _, err := CheckFile(w.root, abs(p), MaxFile); err != nil {
				return withVia(err, via)
			}
		}
		projectDir := filepath.Dir(abs(inc.paths[0]))
		if inc.project != "" {
			projectDir = abs(inc.project)
			if !Within(filepath.Clean(w.root), projectDir) && filepath.Clean(w.root) != projectDir {
				return &FileError{Path: projectDir, Via: via, Reason: "an included project's folder must be inside the checkout " + w.root}
			}
		}
		var envFiles []string
		if len(inc.envs) == 0 {
			d := filepath.Join(projectDir, ".env")
			if fi, err := os.Stat(d); err == nil && !fi.IsDir() {
				envFiles = []string{d}
			}
		} else {
			for _, f := range inc.envs {
				if f == "/dev/null" {
					continue
				}
				envFiles = append(envFiles, abs(f))
			}
		}
		for _, f := range envFiles {
			if err := w.check(f, "env_file of an include of "+file); err != nil {
				return err
			}
		}
		incEnv := env
		if len(envFiles) > 0 {
			fromFile, err := dotenv.GetEnvFromFile(env, envFiles)
			if err != nil {
				return fmt.Errorf("read the env files of an include of %s: %w", file, err)
			}
			incEnv = env.Clone().Merge(fromFile)
		}
		for _, p := range inc.paths {
			if err := w.project(ctx, abs(p), projectDir, incEnv, via); err != nil {
				return err
			}
		}
	}
	return nil
}

// services walks what the services, jobs and pre_start hooks of one file
// name: extended files, env files and label files.
func (w *walker) services(ctx context.Context, m map[string]any, dir string, env types.Mapping, file string) error {
	for _, section := range []string{"services", "jobs"} {
		specs, _ := m[section].(map[string]any)
		for _, name := range sortedKeys(specs) {
			spec, _ := specs[name].(map[string]any)
			if err := w.spec(ctx, spec, dir, env, fmt.Sprintf("%s %s of %s", strings.TrimSuffix(section, "s"), name, file)); err != nil {
				return err
			}
			hooks, _ := spec["pre_start"].([]any)
			for i, h := range hooks {
				hm, _ := h.(map[string]any)
				if err := w.spec(ctx, hm, dir, env, fmt.Sprintf("pre_start hook %d of service %s of %s", i+1, name, file)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (w *walker) spec(ctx context.Context, spec map[string]any, dir string, env types.Mapping, what string) error {
	if spec == nil {
		return nil
	}
	switch ef := spec["env_file"].(type) {
	case string:
		if err := w.check(resolve(dir, ef), "env_file of "+what); err != nil {
			return err
		}
	case []any:
		for _, e := range ef {
			path := ""
			switch x := e.(type) {
			case string:
				path = x
			case map[string]any:
				path, _ = x["path"].(string)
			}
			if path == "" {
				continue
			}
			if err := w.check(resolve(dir, path), "env_file of "+what); err != nil {
				return err
			}
		}
	}
	for _, lf := range strings_(spec["label_file"]) {
		if err := w.check(resolve(dir, lf), "label_file of "+what); err != nil {
			return err
		}
	}
	if ext, ok := spec["extends"].(map[string]any); ok {
		if f, ok := ext["file"].(string); ok && f != "" {
			if remote(f) {
				return &FileError{Path: f, Via: "extends of " + what, Reason: "extending a file from a URL reads outside the checkout"}
			}
			if err := w.extended(ctx, resolve(dir, f), env, "extends of "+what); err != nil {
				return err
			}
		}
	}
	return nil
}

// resolve makes p absolute as compose does: ~ is the home folder, a
// relative path is in dir.
func resolve(dir, p string) string {
	p = paths.ExpandUser(p)
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	return filepath.Clean(p)
}

// remote reports a reference compose would fetch rather than read.
func remote(p string) bool {
	return strings.Contains(p, "://") || strings.HasPrefix(p, "git@") || strings.HasPrefix(p, "oci:")
}

// strings_ reads a string or a list of strings.
func strings_(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	return keys
}
