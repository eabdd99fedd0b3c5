package sandbox

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/ktrdr/sandboxkit/sandbox/composefile"
)

// StackFile is what the checkout's sandbox compose files say about the
// stack, read with compose-go the way `docker compose up` reads them
// (package composefile: nothing outside the checkout), interpolated with
// the sandbox's env file (never the process environment where the file
// decides). Its ports are not read from the text: they are what compose
// resolves for the main checkout (slot 0), for this sandbox and for a probe
// that sets every port variable to a distinct value, so that each published
// host port is known to follow a variable or to be literal (stackports.go).
type StackFile struct {
	Path     string
	Services []FileService // default-profile services, by name: what `up` runs
	// Profiled are the services behind a profile: not run by the suite, but
	// their ports are planned and checked like the others'.
	Profiled []FileService
	// Networks and Volumes that the file declares external: they must exist
	// on the engine before the stack starts.
	ExternalNetworks []string
	ExternalVolumes  []string
	// SharedVolumes are volumes with an explicit name that are not
	// external: every sandbox and the main stack use the same volume.
	SharedVolumes []SharedVolume
	// Warnings name what the port plan cannot move (see StackWarning).
	Warnings []StackWarning
	project  *types.Project // the default profile, as compose runs it
}

// SharedVolume is a volume the file names explicitly (name:), not external.
type SharedVolume struct {
	Key  string `json:"key"`  // the file's key under volumes:
	Name string `json:"name"` // the engine's volume name
}

// StackWarning is something of the file that every sandbox shares with the
// others and the main stack: a literal host port or range, a port variable
// on the container side, a service on the host's network, a named volume.
type StackWarning struct {
	Service string `json:"service,omitempty"`
	Text    string `json:"text"`
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
	HostNet    bool // network_mode: host: it binds its ports on the host itself
	Profiles   []string
}

// IsDB reports whether the service is a PostgreSQL server (it has the
// official image's POSTGRES_* environment).
func (s FileService) IsDB() bool { return s.PGUser != "" }

// FilePort is one published port and the variable that chooses it.
type FilePort struct {
	Var     string // "KTRDR_API_PORT"; "" for a literal host port
	Default int    // the variable's default: the slot-0 (main) port
	Target  int    // the container port
	// Range is a literal host range ("9000-9005"); Default is its first port.
	Range string
}

// workerTypeKeys name a service that registers with the backend as a
// worker: ktrdr's first layout used WORKER_TYPE, later files KTRDR_WORKER_TYPE.
var workerTypeKeys = []string{"WORKER_TYPE", "KTRDR_WORKER_TYPE"}

// LoadStackFile reads the compose file at path, in the checkout that is its
// folder, with env as the only variables.
func LoadStackFile(ctx context.Context, path string, env map[string]string) (*StackFile, error) {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return LoadStack(ctx, composefile.Source{Root: filepath.Dir(path), Files: []string{path}, Env: env})
}

// LoadStack reads the stack of src: the sandbox compose file first, then
// the checkout's own override, if any.
func LoadStack(ctx context.Context, src composefile.Source) (*StackFile, error) {
	if r, err := filepath.Abs(src.Root); err == nil {
		src.Root = r
	}
	path := src.Files[0]
	if !filepath.IsAbs(path) {
		path = filepath.Join(src.Root, path)
	}
	models, err := loadPortModels(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("read the stack from %s: %w", path, err)
	}
	sf := &StackFile{Path: path}
	sf.project, err = models.actual.WithProfiles(nil)
	if err != nil {
		return nil, fmt.Errorf("read the stack from %s: %w", path, err)
	}
	for _, name := range models.actual.ServiceNames() {
		fs, err := models.service(name)
		if err != nil {
			return nil, &PortPlanError{File: path, Service: name, Reason: err.Error()}
		}
		if _, def := sf.project.Services[name]; def {
			sf.Services = append(sf.Services, fs)
		} else {
			sf.Profiled = append(sf.Profiled, fs)
		}
	}
	sort.Slice(sf.Services, func(i, j int) bool { return sf.Services[i].Name < sf.Services[j].Name })
	sort.Slice(sf.Profiled, func(i, j int) bool { return sf.Profiled[i].Name < sf.Profiled[j].Name })
	if err := sf.checkSharedVariables(); err != nil {
		return nil, err
	}
	sf.readResources(models.actual)
	sf.warn(models)
	return sf, nil
}

// fileService is what the file says of one service, but its ports.
func fileService(name string, svc types.ServiceConfig) FileService {
	fs := FileService{Name: name, HasBuild: svc.Build != nil, Profiles: svc.Profiles,
		Healthy: svc.HealthCheck != nil && !svc.HealthCheck.Disable && len(svc.HealthCheck.Test) > 0 && svc.HealthCheck.Test[0] != "NONE",
		HostNet: svc.NetworkMode == "host"}
	for _, p := range svc.Ports {
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
	return fs
}

// readResources records the external networks and volumes.
func (sf *StackFile) readResources(p *types.Project) {
	for key, n := range p.Networks {
		if bool(n.External) {
			sf.ExternalNetworks = append(sf.ExternalNetworks, orName(n.Name, key))
		}
	}
	for key, v := range p.Volumes {
		if bool(v.External) {
			sf.ExternalVolumes = append(sf.ExternalVolumes, orName(v.Name, key))
		}
	}
	sort.Strings(sf.ExternalNetworks)
	sort.Strings(sf.ExternalVolumes)
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

// Service returns the file's service called name (default profile first,
// then the profiled ones).
func (sf *StackFile) Service(name string) (FileService, bool) {
	for _, s := range sf.all() {
		if s.Name == name {
			return s, true
		}
	}
	return FileService{}, false
}

// all is every service, default profile first.
func (sf *StackFile) all() []FileService {
	return append(slices.Clone(sf.Services), sf.Profiled...)
}

// PortVars lists every port variable of the file with its service, default
// and container port, in service order (default profile first).
func (sf *StackFile) PortVars() []PortVar {
	var out []PortVar
	seen := map[string]bool{}
	for _, s := range sf.all() {
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
