package composefile

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
)

// Every is the profile list that activates every service.
var Every = []string{"*"}

func sortStrings(s []string) { slices.Sort(s) }

// Load checks src (Check) and loads it with compose-go as project name (""
// : compose's own rule, the file's name: or else its folder's), with the
// given profiles active (nil: the default profile only; Every:
// all). It is the one way the suite reads a checkout's compose model.
func Load(ctx context.Context, src Source, name string, profiles []string) (*types.Project, error) {
	details, err := src.details(ctx)
	if err != nil {
		return nil, err
	}
	return guard(details, func() (*types.Project, error) {
		return loader.LoadWithContext(ctx, details, func(o *loader.Options) {
			common(o, name, details.WorkingDir)
			o.Profiles = profiles
		})
	})
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

// LoadModel checks src and returns its merged model without interpolation,
// validation or normalization: the text of every value as the files write
// it (with includes and extends applied), for reading which variables a
// value uses.
func LoadModel(ctx context.Context, src Source, name string) (map[string]any, error) {
	details, err := src.details(ctx)
	if err != nil {
		return nil, err
	}
	return guard(details, func() (map[string]any, error) {
		return loader.LoadModelWithContext(ctx, details, func(o *loader.Options) {
			common(o, name, details.WorkingDir)
			o.SkipInterpolation = true
			o.SkipValidation = true
			o.SkipNormalization = true
		})
	})
}

func (s Source) details(ctx context.Context) (types.ConfigDetails, error) {
	s = s.abs()
	if _, err := Check(ctx, s); err != nil {
		return types.ConfigDetails{}, err
	}
	var files []types.ConfigFile
	for _, f := range s.Files {
		data, ok := s.Contents[f]
		if !ok {
			var err error
			if data, _, err = ReadFile(s.Root, f, MaxFile); err != nil {
				return types.ConfigDetails{}, err
			}
		}
		files = append(files, types.ConfigFile{Filename: f, Content: data})
	}
	dir := s.Root
	if len(files) > 0 {
		dir = filepath.Dir(files[0].Filename)
	}
	return types.ConfigDetails{WorkingDir: dir, ConfigFiles: files, Environment: types.Mapping(s.Env)}, nil
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
