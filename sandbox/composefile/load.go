package composefile

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
)

// Every is the profile list that activates every service.
var Every = []string{"*"}

func sortStrings(s []string) { slices.Sort(s) }

// Opened is a Source whose files Check proved readable, with the content
// of its compose files read: what compose-go may load.
type Opened struct {
	src     Source
	details types.ConfigDetails
	vars    map[string]bool // the variables the paths it walked use
}

// Open checks src (Check) and reads its compose files.
func Open(ctx context.Context, src Source) (*Opened, error) {
	src = src.abs()
	w, err := check(ctx, src)
	if err != nil {
		return nil, err
	}
	var files []types.ConfigFile
	for _, f := range src.Files {
		data, ok := src.Contents[f]
		if !ok {
			if data, _, err = ReadFile(src.Root, f, MaxFile); err != nil {
				return nil, err
			}
		}
		files = append(files, types.ConfigFile{Filename: f, Content: data})
	}
	details := types.ConfigDetails{WorkingDir: src.Root, ConfigFiles: files, Environment: types.Mapping(src.Env)}
	if len(files) > 0 {
		details.WorkingDir = filepath.Dir(files[0].Filename)
	}
	return &Opened{src: src, details: details, vars: w.vars}, nil
}

// WithEnv is o with env as its variables. The walk is done again only
// when a variable that one of its paths uses has another value in env.
func (o *Opened) WithEnv(ctx context.Context, env map[string]string) (*Opened, error) {
	same := true
	for v := range o.vars {
		a, okA := o.src.Env[v]
		b, okB := env[v]
		if a != b || okA != okB {
			same = false
			break
		}
	}
	if !same {
		src := o.src
		src.Env = env
		return Open(ctx, src)
	}
	c := *o
	c.src.Env = env
	c.details.Environment = types.Mapping(env)
	return &c, nil
}

// Load loads o with compose-go as project name ("": compose's own rule,
// the file's name: or else its folder's), with the given profiles active
// (nil: the default profile only; Every: all).
func (o *Opened) Load(ctx context.Context, name string, profiles []string) (*types.Project, error) {
	details := o.details
	details.Environment = maps.Clone(o.details.Environment)
	return guard(details, func() (*types.Project, error) {
		return loader.LoadWithContext(ctx, details, func(lo *loader.Options) {
			common(lo, name, details.WorkingDir)
			lo.Profiles = profiles
		})
	})
}

// Model returns o's merged model without interpolation, validation or
// normalization: the text of every value as the files write it (with
// includes and extends applied), for reading which variables a value uses.
func (o *Opened) Model(ctx context.Context, name string) (map[string]any, error) {
	details := o.details
	details.Environment = maps.Clone(o.details.Environment)
	return guard(details, func() (map[string]any, error) {
		return loader.LoadModelWithContext(ctx, details, func(lo *loader.Options) {
			common(lo, name, details.WorkingDir)
			lo.SkipInterpolation = true
			lo.SkipValidation = true
			lo.SkipNormalization = true
		})
	})
}

// Load checks src (Check) and loads it (Opened.Load). It is the one way
// the suite reads a checkout's compose model.
func Load(ctx context.Context, src Source, name string, profiles []string) (*types.Project, error) {
	o, err := Open(ctx, src)
	if err != nil {
		return nil, err
	}
	return o.Load(ctx, name, profiles)
}

// LoadModel checks src and returns its merged model (Opened.Model).
func LoadModel(ctx context.Context, src Source, name string) (map[string]any, error) {
	o, err := Open(ctx, src)
	if err != nil {
		return nil, err
	}
	return o.Model(ctx, name)
}

// guard turns a panic of compose-go on a malformed file (it has some, such
// as a service that is a string beside an include) into an error.
func guard[T any](details types.ConfigDetails, load func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			name := ""
			if len(details.ConfigFiles) > 0 {
				name = details.ConfigFiles[0].Filename
			}
			err = fmt.Errorf("read %s: compose could not read it (%v)", name, r)
		}
	}()
	return load()
}

// common are the options of every load: paths resolved; no service
// environment or label file merged in (Check proved them readable; their
// values are the containers', not the plan's).
func common(o *loader.Options, name, dir string) {
	quiet(o)
	if name != "" {
		o.SetProjectName(name, true)
	} else {
		// compose's own rule: the file's name:, else the folder's name.
		o.SetProjectName(loader.NormalizeProjectName(filepath.Base(dir)), false)
	}
	o.ResolvePaths = true
	o.SkipResolveEnvironment = true
	o.SkipResolveLabels = true
}

// quiet interpolates as compose does, without compose-go's warning on
// standard error for a variable that is not set (compose prints it itself
// when it runs; the suite's probes unset variables on purpose).
func quiet(o *loader.Options) {
	if o.Interpolate != nil {
		o.Interpolate.Substitute = func(s string, m template.Mapping) (string, error) {
			return template.SubstituteWithOptions(s, m, template.WithoutLogging)
		}
	}
}
