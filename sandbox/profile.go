package sandbox

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ktrdr/sandboxkit/sandbox/shared"
)

// PortRule says which host port a service publishes in each slot:
// Slot0 in slot 0 (the main checkout), Base+Step*N in slot N ≥ 1.
type PortRule struct {
	Key     string // the .env.sandbox / compose variable, e.g. KTRDR_API_PORT
	Service string // the compose service that publishes it, e.g. backend
	Label   string // what a person calls it, e.g. "API", "OTLP gRPC"
	Slot0   int
	Base    int
	Step    int
	Chosen  bool // chosen by ForStack for a variable the profile does not document
	// Until, when set, ends the rule at that slot: beyond it slot N gets
	// Then+N (ForStack keeps a documented rule where it holds and chooses
	// a block beyond, so that no sandbox of the earlier slots moves).
	Until int
	Then  int
}

// Port returns the host port of the rule in slot.
func (r PortRule) Port(slot int) int {
	if slot == 0 {
		return r.Slot0
	}
	if r.Until > 0 && slot > r.Until {
		return r.Then + slot
	}
	return r.Base + r.Step*slot
}

// Service is one compose service of a stack.
type Service struct {
	Name   string
	Worker bool // registers with the backend; counted by the workers check
}

// CheckKind is how a gate check probes its service.
type CheckKind string

// The kinds of gate check.
const (
	CheckPostgres  CheckKind = "postgres"   // PostgreSQL startup handshake, like pg_isready
	CheckHTTP      CheckKind = "http"       // GET returns the expected status
	CheckJSONArray CheckKind = "json-array" // GET returns 200 and a JSON array with at least MinItems entries
	CheckTCP       CheckKind = "tcp"        // a TCP connect succeeds
)

// Check is one startability-gate check, declared as data. It probes the host
// port named by PortKey on localhost.
type Check struct {
	Name     string    // "Database ready"
	Service  string    // the compose service behind it, whose logs explain a failure
	Kind     CheckKind //
	PortKey  string    // which port of the slot to probe
	Path     string    // HTTP path, for CheckHTTP and CheckJSONArray
	Status   int       // expected HTTP status for CheckHTTP (0 means 200)
	MinItems int       // for CheckJSONArray; 0 means the number of worker services
	User     string    // for CheckPostgres
	Database string    // for CheckPostgres
	// Password, for CheckPostgres, is the file's POSTGRES_PASSWORD: the gate
	// then authenticates (a volume kept from an earlier start may not
	// accept it). Never printed or saved.
	Password string `json:"-"`
}

// Endpoint is a URL that status prints for a person.
type Endpoint struct {
	Label    string // "API docs"
	PortKey  string
	Scheme   string // "http" or "postgresql"
	UserInfo string // "user:password" for a DSN
	Path     string // "/docs", "/ktrdr"
}

// URL returns the endpoint's URL on localhost for the given ports.
func (e Endpoint) URL(ports map[string]int) string { return e.URLAt("localhost", ports) }

// URLAt returns the endpoint's URL on host (a URL host part: brackets
// around an IPv6 address) for the given ports.
func (e Endpoint) URLAt(host string, ports map[string]int) string {
	u := e.Scheme + "://"
	if e.UserInfo != "" {
		u += e.UserInfo + "@"
	}
	return fmt.Sprintf("%s%s:%d%s", u, host, ports[e.PortKey], e.Path)
}

// URLs returns every endpoint of the profile for the given ports on localhost.
func (p *Profile) URLs(ports map[string]int) []NamedURL { return p.URLsOn(Engine{}, ports) }

// URLsOn returns every endpoint of the profile for the given ports on the
// host of engine e.
func (p *Profile) URLsOn(e Engine, ports map[string]int) []NamedURL {
	urls := make([]NamedURL, 0, len(p.Endpoints))
	for _, ep := range p.Endpoints {
		urls = append(urls, NamedURL{Label: ep.Label, URL: ep.URLAt(e.URLHost(), ports)})
	}
	return urls
}

// SharedDir is one of the folders shared between sandboxes.
type SharedDir struct {
	Name string // "data": the folder under the shared root
	Key  string // KTRDR_DATA_DIR: the compose variable that mounts it
}

// Profile describes one application's stack: everything in this package that
// is specific to ktrdr lives in a Profile value. Build one with NewProfile,
// which validates it; KTRDR returns the default.
type Profile struct {
	App            string      // "ktrdr": instance ids are App+"--"+name, state lives in ~/.App
	SandboxCompose string      // compose file sandboxes run, relative to the checkout root
	MainCompose    string      // the main (merged) compose file
	EnvFile        string      // ".env.sandbox"
	APIPortKey     string      // the port the API URL resolver reads
	SharedRootKey  string      // KTRDR_SHARED_DIR
	Ports          []PortRule  // in the order .env.sandbox lists them
	Services       []Service   // every compose service of one stack
	Shared         []SharedDir // the shared folders
	Checks         []Check     // the startability gate
	Endpoints      []Endpoint  // the URLs status prints
	MinSlot        int         // lowest sandbox slot (slot 0 is the main checkout)
	MaxSlot        int         // highest sandbox slot
	StandinImage   string      // the locally built stand-in image
	// StandinDBImage is stand-in mode's database: a real PostgreSQL built
	// locally from the host's Debian packages (driver.BuildPostgresImage);
	// "" runs the stand-in's db role instead.
	StandinDBImage string
	ImageKeys      []string // compose variables that choose each service's image
	DBImageKey     string   // the one of ImageKeys that chooses the database's image
	StandinSource  string   // the Go package of the stand-in, relative to the checkout root
	StandinKey     string   // the env-file key that marks a stand-in sandbox
	EnvPrefix      string   // the app's variables: scrubbed from compose's environment
	InstanceLabel  string   // container label naming the instance (set by the compose file)
	// Literal are host ports the stack file publishes without a variable
	// (set by ForStack): every sandbox publishes them, so only one at a
	// time can run; the preflight checks them too.
	Literal      []PortRule
	MainInstance string // that label's value on the main stack (the compose file's default)
}

// InstanceID returns the instance id and compose project name for name.
func (p *Profile) InstanceID(name string) string { return p.App + "--" + name }

// NameOf returns the sandbox name of instance id, and false when id is not
// one of this profile's instance ids.
func (p *Profile) NameOf(id string) (string, bool) {
	name, ok := strings.CutPrefix(id, p.App+"--")
	if !ok || ValidateName(name) != nil {
		return "", false
	}
	return name, true
}

// WorkerCount is the number of services that register as workers.
func (p *Profile) WorkerCount() int {
	n := 0
	for _, s := range p.Services {
		if s.Worker {
			n++
		}
	}
	return n
}

// PortsFor returns every host port of slot, keyed by variable.
func (p *Profile) PortsFor(slot int) map[string]int {
	m := make(map[string]int, len(p.Ports))
	for _, r := range p.Ports {
		m[r.Key] = r.Port(slot)
	}
	return m
}

// Rule returns the port rule for key.
func (p *Profile) Rule(key string) (PortRule, bool) {
	for _, r := range p.Ports {
		if r.Key == key {
			return r, true
		}
	}
	return PortRule{}, false
}

// DefaultAPIURL is the URL of the main checkout's API (slot 0).
func (p *Profile) DefaultAPIURL() string {
	r, _ := p.Rule(p.APIPortKey)
	return fmt.Sprintf("http://localhost:%d", r.Slot0)
}

// StateDir is where the registry lives: $HOME/.<app>/sandbox.
func (p *Profile) StateDir(home string) string { return filepath.Join(home, "."+p.App, "sandbox") }

// SharedRoot is the default shared-data root: $HOME/.<app>/shared.
func (p *Profile) SharedRoot(home string) string { return filepath.Join(home, "."+p.App, "shared") }

// SharedOptions returns the options of shared.Init for the profile's
// shared folders under its shared root in home.
func (p *Profile) SharedOptions(home string) shared.Options {
	names := make([]string, len(p.Shared))
	for i, s := range p.Shared {
		names[i] = s.Name
	}
	return shared.Options{Root: p.SharedRoot(home), Folders: names}
}

// PortCollisionError reports two (slot, port rule) pairs that publish the same port.
type PortCollisionError struct {
	Port         int
	SlotA, SlotB int
	KeyA, KeyB   string
}

func (e *PortCollisionError) Error() string {
	return fmt.Sprintf("port rules collide: port %d is used by slot %d %s and by slot %d %s",
		e.Port, e.SlotA, e.KeyA, e.SlotB, e.KeyB)
}

// NewProfile validates p and returns it: names are set, slots are in range,
// and every port of every slot from 0 to MaxSlot is distinct and within
// 1024–65535 (slot 0, the main checkout's file defaults: 1–65535). A colliding rule set is refused with a *PortCollisionError
// naming both (slot, port) pairs.
func NewProfile(p Profile) (*Profile, error) {
	if p.App == "" || p.EnvFile == "" || p.SandboxCompose == "" || p.APIPortKey == "" || p.InstanceLabel == "" || p.StandinKey == "" {
		return nil, errors.New("profile: App, EnvFile, SandboxCompose, APIPortKey, InstanceLabel and StandinKey are required")
	}
	if p.MinSlot < 1 || p.MaxSlot < p.MinSlot {
		return nil, fmt.Errorf("profile %s: slot range %d–%d: want 1 ≤ min ≤ max", p.App, p.MinSlot, p.MaxSlot)
	}
	if _, ok := p.Rule(p.APIPortKey); !ok {
		return nil, fmt.Errorf("profile %s: no port rule for the API key %s", p.App, p.APIPortKey)
	}
	keys := map[string]bool{}
	for _, r := range p.Ports {
		if keys[r.Key] {
			return nil, fmt.Errorf("profile %s: port key %s is declared twice", p.App, r.Key)
		}
		keys[r.Key] = true
	}
	for _, c := range p.Checks {
		if c.PortKey != "" && !keys[c.PortKey] {
			return nil, fmt.Errorf("profile %s: check %q probes unknown port key %s", p.App, c.Name, c.PortKey)
		}
	}
	type owner struct {
		slot int
		key  string
	}
	seen := map[int]owner{}
	for slot := 0; slot <= p.MaxSlot; slot++ {
		for _, r := range p.Ports {
			port := r.Port(slot)
			// Slot 0 is the main checkout's: its port is the file's default,
			// whatever it is (80 too); a sandbox's is never privileged.
			if lo := minPort(slot); port < lo || port > 65535 {
				return nil, fmt.Errorf("profile %s: slot %d %s gets port %d, outside %d–65535", p.App, slot, r.Key, port, lo)
			}
			if o, dup := seen[port]; dup {
				return nil, &PortCollisionError{Port: port, SlotA: o.slot, KeyA: o.key, SlotB: slot, KeyB: r.Key}
			}
			seen[port] = owner{slot, r.Key}
		}
	}
	pp := p
	return &pp, nil
}

// minPort is the lowest port slot may get.
func minPort(slot int) int {
	if slot == 0 {
		return 1
	}
	return 1024
}

// WithSlots returns a validated copy of p whose sandboxes use slots min–max.
func (p *Profile) WithSlots(min, max int) (*Profile, error) {
	q := *p
	q.MinSlot, q.MaxSlot = min, max
	return NewProfile(q)
}

// MaxCollisionFreeSlot returns the highest max slot for which p's port rules
// stay collision-free (searching up to limit).
func (p *Profile) MaxCollisionFreeSlot(limit int) int {
	best := 0
	for n := p.MinSlot; n <= limit; n++ {
		if _, err := p.WithSlots(p.MinSlot, n); err != nil {
			break
		}
		best = n
	}
	return best
}

// standinImageFor is the image stand-in mode gives the image variable key:
// the database's is StandinDBImage when there is one.
func (p *Profile) standinImageFor(key string) string {
	if key == p.DBImageKey && p.StandinDBImage != "" {
		return p.StandinDBImage
	}
	return p.StandinImage
}
