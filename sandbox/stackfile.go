package sandbox

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
)

// StackFile is what the checkout's sandbox compose file says about the
// stack, read with compose-go the way `docker compose up` reads it: default
// profiles only, interpolated with the sandbox's env file (never the
// process environment).
type StackFile struct {
	Path     string
	Services []FileService // default-profile services, by name
	// Networks and Volumes that the file declares external: they must exist
	// on the engine before the stack starts.
	ExternalNetworks []string
	ExternalVolumes  []string
	project          *types.Project
}

// FileService is one service of the file.
type FileService struct {
	Name       string
	Ports      []FilePort // published ports, in file order
	Targets    []int      // every container port the service publishes or exposes
	WorkerType string     // its WORKER_TYPE / KTRDR_WORKER_TYPE: it registers with the backend
	PGUser     string     // POSTGRES_USER (or "postgres") when the service is a PostgreSQL server
	PGDatabase string     // POSTGRES_DB (or the user)
	PGPassword string     // POSTGRES_PASSWORD
	HasBuild   bool
	Healthy    bool // the file gives it a healthcheck
}

// IsDB reports whether the service is a PostgreSQL server (it has the
// official image's POSTGRES_* environment).
func (s FileService) IsDB() bool { return s.PGUser != "" }

// FilePort is one published port and the variable that chooses it.
type FilePort struct {
	Var     string // "KTRDR_API_PORT"; "" for a literal host port
	Default int    // the variable's default: the slot-0 (main) port
	Target  int    // the container port
}

// workerTypeKeys name a service that registers with the backend as a
// worker: ktrdr's first layout used WORKER_TYPE, later files KTRDR_WORKER_TYPE.
var workerTypeKeys = []string{"WORKER_TYPE", "KTRDR_WORKER_TYPE"}

// LoadStackFile reads the compose file at path (relative paths resolve in
// its folder) with env as the only variables.
func LoadStackFile(ctx context.Context, path string, env map[string]string) (*StackFile, error) {
	data, _, err := readCheckoutFile(filepath.Dir(path), filepath.Base(path), MaxCheckoutFile)
	if err != nil {
		return nil, fmt.Errorf("read the stack from %s: %w", path, err)
	}
	details := types.ConfigDetails{
		WorkingDir:  filepath.Dir(path),
		ConfigFiles: []types.ConfigFile{{Filename: path, Content: data}},
		Environment: types.Mapping(env),
	}
	opts := func(o *loader.Options) {
		o.SetProjectName("sandbox-model", true)
		o.ResolvePaths = true
		o.SkipResolveEnvironment = true
		o.SkipResolveLabels = true
	}
	project, err := loader.LoadWithContext(ctx, details, opts)
	if err != nil {
		return nil, fmt.Errorf("read the stack from %s: %w", path, err)
	}
	raw, err := loader.LoadModelWithContext(ctx, details, func(o *loader.Options) {
		opts(o)
		o.SkipInterpolation = true
		o.SkipValidation = true
		o.SkipNormalization = true
	})
	if err != nil {
		return nil, fmt.Errorf("read the port variables of %s: %w", path, err)
	}
	return StackFileOf(path, project, raw), nil
}

// StackFileOf builds the StackFile of a compose file that the caller loaded
// itself: project is the file loaded and interpolated (its services are the
// stack), raw its model before interpolation (LoadModel with interpolation,
// validation and normalization skipped), which names the port variables.
func StackFileOf(path string, project *types.Project, raw map[string]any) *StackFile {
	sf := &StackFile{Path: path, project: project}
	rawServices, _ := raw["services"].(map[string]any)
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range project.Services {
			if !yield(n) {
				return
			}
		}
	}) {
		svc := project.Services[name]
		fs := FileService{Name: name, HasBuild: svc.Build != nil, Healthy: svc.HealthCheck != nil && !svc.HealthCheck.Disable && len(svc.HealthCheck.Test) > 0 && svc.HealthCheck.Test[0] != "NONE"}
		rawSvc, _ := rawServices[name].(map[string]any)
		rawPorts, _ := rawSvc["ports"].([]any)
		if len(rawPorts) != len(svc.Ports) {
			rawPorts = nil // long and short syntax mixed with ranges: take the loaded ports as literal
		}
		for i, p := range svc.Ports {
			published, _ := strconv.Atoi(p.Published)
			fp := FilePort{Default: published, Target: int(p.Target)}
			if rawPorts != nil {
				fp.Var, fp.Default = portVariable(rawPorts[i], published)
			}
			if p.Published != "" {
				fs.Ports = append(fs.Ports, fp)
			}
			fs.Targets = appendUnique(fs.Targets, int(p.Target))
		}
		for _, e := range svc.Expose {
			if n, err := strconv.Atoi(strings.SplitN(e, "/", 2)[0]); err == nil {
				fs.Targets = appendUnique(fs.Targets, n)
			}
		}
		for _, k := range workerTypeKeys {
			if v := svc.Environment[k]; v != nil && *v != "" && fs.WorkerType == "" {
				fs.WorkerType = *v
			}
		}
		if u, ok := svc.Environment["POSTGRES_USER"]; ok || svc.Environment["POSTGRES_DB"] != nil || svc.Environment["POSTGRES_PASSWORD"] != nil {
			fs.PGUser = "postgres"
			if ok && u != nil && *u != "" {
				fs.PGUser = *u
			}
			fs.PGDatabase = fs.PGUser
			if d := svc.Environment["POSTGRES_DB"]; d != nil && *d != "" {
				fs.PGDatabase = *d
			}
			if pw := svc.Environment["POSTGRES_PASSWORD"]; pw != nil {
				fs.PGPassword = *pw
			}
		}
		sf.Services = append(sf.Services, fs)
	}
	for key, n := range project.Networks {
		if bool(n.External) {
			sf.ExternalNetworks = append(sf.ExternalNetworks, orName(n.Name, key))
		}
	}
	for key, v := range project.Volumes {
		if bool(v.External) {
			sf.ExternalVolumes = append(sf.ExternalVolumes, orName(v.Name, key))
		}
	}
	sort.Strings(sf.ExternalNetworks)
	sort.Strings(sf.ExternalVolumes)
	return sf
}

func orName(name, key string) string {
	if name != "" {
		return name
	}
	return key
}

func appendUnique(s []int, v int) []int {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// portVariable finds the variable of a raw (uninterpolated) ports entry
// whose default is the published port: "${KTRDR_API_PORT:-8000}:8000" is
// KTRDR_API_PORT with default 8000. A literal host port has no variable.
func portVariable(entry any, published int) (string, int) {
	vars := template.ExtractVariables(map[string]any{"p": entry}, template.DefaultPattern)
	names := make([]string, 0, len(vars))
	for n := range vars {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if d, err := strconv.Atoi(vars[n].DefaultValue); err == nil && d == published {
			return n, d
		}
	}
	// The env file set it (the default is then not what was published).
	for _, n := range names {
		if strings.HasSuffix(n, "_PORT") || len(names) == 1 {
			d, _ := strconv.Atoi(vars[n].DefaultValue)
			return n, d
		}
	}
	return "", published
}

// Service returns the file's service called name.
func (sf *StackFile) Service(name string) (FileService, bool) {
	for _, s := range sf.Services {
		if s.Name == name {
			return s, true
		}
	}
	return FileService{}, false
}

// PortVars lists every port variable of the file with its service, default
// and container port, in service order.
func (sf *StackFile) PortVars() []PortVar {
	var out []PortVar
	seen := map[string]bool{}
	for _, s := range sf.Services {
		for _, p := range s.Ports {
			if p.Var == "" || seen[p.Var] {
				continue
			}
			seen[p.Var] = true
			out = append(out, PortVar{Key: p.Var, Service: s.Name, Default: p.Default, Target: p.Target})
		}
	}
	return out
}

// PortVar is one published-port variable of a stack file.
type PortVar struct {
	Key     string
	Service string
	Default int
	Target  int
}
