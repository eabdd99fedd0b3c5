package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
)

// Config is the user's settings file, $HOME/.<app>/sandbox/config.json.
// Every field is optional:
//
//	{"max_slot": 20, "subnet_pool": ["10.50.0.0/16"], "subnet_prefix": 27, "min_free_memory": "4GiB"}
//
// MaxSlot widens (or narrows) the sandbox slot range, up to RuleSlots
// (100). The documented ktrdr port rules are collision-free up to slot 42;
// in a wider range ForStack keeps those that still hold and chooses
// collision-free rules for the others (the worker ports), so every slot's
// ports stay distinct. A range over RuleSlots is refused.
//
// SubnetPool is the IPv4 space the sandboxes' networks get their subnets
// from (one CIDR or a list; default DefaultSubnetPool, 172.16.0.0/16), and
// SubnetPrefix the size of the smallest subnet (default /27): see
// subnets.go.
//
// MinFreeMemory is the memory up keeps free on the engine it starts a stack
// on (budget.go): bytes as a number, or a string with a unit ("2GiB",
// "512MB", "2g"); absent is DefaultMinFreeMemory (2 GiB), 0 turns the
// check off.
//
// AllowSync lists folders outside the checkout and the shared root that a
// sandbox on another engine may still send there (outside.go), e.g.
// {"allow_sync": ["/srv/ktrdr-data"]}: absolute paths, each allowing
// exactly that folder (where it leads after its links), not what lies
// below it.
//
// SecretsCommand prints the stack's secrets in the env file's form (see
// secrets.go): an argument list run without a shell, e.g.
// {"secrets_command": ["op", "inject", "-i", "/home/me/ktrdr-secrets.tpl"]}.
type Config struct {
	MaxSlot       int        `json:"max_slot,omitempty"`
	SubnetPool    SubnetPool `json:"subnet_pool,omitempty"`
	SubnetPrefix  int        `json:"subnet_prefix,omitempty"`
	MinFreeMemory *ByteSize  `json:"min_free_memory,omitempty"`
	AllowSync     []string   `json:"allow_sync,omitempty"`
	// Hooks are the user's steps after start, for every sandbox (hooks.go).
	Hooks []HookSpec `json:"hooks,omitempty"`
	// SecretsCommand is nil when absent; present, it may not be empty.
	SecretsCommand []string `json:"secrets_command,omitempty"`
}

// ByteSize is a size in bytes that the settings file may write as a number
// or as a string with a unit (driver.ParseSize).
type ByteSize int64

func (b *ByteSize) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	var n int64
	switch v := v.(type) {
	case float64:
		if v < 0 || v != math.Trunc(v) || v >= math.MaxInt64 {
			return fmt.Errorf("size %s is not a whole number of bytes", data)
		}
		n = int64(v)
	case string:
		var err error
		if n, err = driver.ParseSize(v); err != nil {
			return err
		}
	default:
		return fmt.Errorf("size %s is neither a number of bytes nor a string such as \"2GiB\"", data)
	}
	*b = ByteSize(n)
	return nil
}

// ConfigPath is where the settings file of profile p lives under home.
func (p *Profile) ConfigPath(home string) string {
	return filepath.Join(p.StateDir(home), "config.json")
}

// LoadConfig reads the settings file; a missing file is the zero Config.
func (p *Profile) LoadConfig(home string) (Config, error) {
	var c Config
	path := p.ConfigPath(home)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read settings %s: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("settings %s: %w (expected e.g. {\"max_slot\": 20, \"min_free_memory\": \"2GiB\"})", path, err)
	}
	return c, nil
}

// LoadManager is NewManager with the user's settings applied.
func LoadManager(home string) (*Manager, error) {
	m := NewManager(home)
	c, err := m.Profile.LoadConfig(home)
	if err != nil {
		return nil, err
	}
	if c.MaxSlot != 0 {
		p, err := m.Profile.WithSlots(m.Profile.MinSlot, c.MaxSlot)
		var pc *PortCollisionError
		if errors.As(err, &pc) && c.MaxSlot <= RuleSlots {
			// The documented rules stop holding somewhere in this range:
			// ForStack chooses collision-free rules for those that do not.
			q := *m.Profile
			q.MinSlot, q.MaxSlot = m.Profile.MinSlot, c.MaxSlot
			p, err = &q, nil
		}
		if err != nil {
			return nil, fmt.Errorf("settings %s: max_slot %d: %w", m.Profile.ConfigPath(home), c.MaxSlot, err)
		}
		m.Profile = p
	}
	m.Subnets = SubnetSettings{Pool: c.SubnetPool, Prefix: c.SubnetPrefix}
	if err := m.Subnets.Validate(); err != nil {
		return nil, fmt.Errorf("settings %s: %w", m.Profile.ConfigPath(home), err)
	}
	if c.MinFreeMemory != nil {
		m.MinFreeMemory = int64(*c.MinFreeMemory)
	}
	if err := ValidateAllowSync(c.AllowSync); err != nil {
		return nil, fmt.Errorf("settings %s: allow_sync: %w", m.Profile.ConfigPath(home), err)
	}
	m.AllowSync = c.AllowSync
	for _, h := range c.Hooks {
		if h.Name == "" || h.Service == "" || len(h.Command) == 0 {
			return nil, fmt.Errorf("settings %s: each of hooks needs a name, a service and a command", m.Profile.ConfigPath(home))
		}
	}
	m.Hooks = c.Hooks
	if err := ValidateSecretsCommand(c.SecretsCommand); err != nil {
		return nil, fmt.Errorf("settings %s: secrets_command: %w", m.Profile.ConfigPath(home), err)
	}
	m.SecretsCommand = c.SecretsCommand
	return m, nil
}
