package sandbox

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/apiurl"
	"github.com/ktrdr/sandboxkit/sandbox/envfile"
)

// EnvVersion is the SANDBOX_VERSION this package writes and reads.
const EnvVersion = 1

// The identity and metadata keys of .env.sandbox.
const (
	KeyInstanceID = "INSTANCE_ID"
	KeyProject    = "COMPOSE_PROJECT_NAME"
	KeySlot       = "SLOT_NUMBER"
	KeyCreatedAt  = "CREATED_AT"
	KeyVersion    = "SANDBOX_VERSION"
	KeyContext    = "SANDBOX_CONTEXT" // the Docker context of a sandbox on another engine
	KeyHost       = "SANDBOX_HOST"    // that engine's host: URLs and probes go there
)

// Env is the content of one sandbox's .env.sandbox file.
type Env struct {
	InstanceID string
	Slot       int
	Ports      map[string]int    // every port key of the profile
	SharedRoot string            // the shared-data root (KTRDR_SHARED_DIR); "" falls back to ./data-style mounts
	CreatedAt  time.Time         // UTC
	Standin    bool              // the stack runs the stand-in images
	Engine     Engine            // the Docker engine it runs on (zero: the local one)
	Extra      map[string]string // keys this package does not interpret (kept on rewrite)
}

// NewEnv returns the env of a new sandbox instance.
func (p *Profile) NewEnv(name string, slot int, sharedRoot string, now time.Time, standin bool) Env {
	return Env{
		InstanceID: p.InstanceID(name),
		Slot:       slot,
		Ports:      p.PortsFor(slot),
		SharedRoot: sharedRoot,
		CreatedAt:  now.UTC().Truncate(time.Second),
		Standin:    standin,
	}
}

// Values returns the env file's key/value pairs: the design's keys, the
// three shared mount variables, and the stand-in image variables.
func (p *Profile) Values(e Env) map[string]string {
	m := make(map[string]string, len(e.Extra)+len(e.Ports)+16)
	for k, v := range e.Extra {
		m[k] = v
	}
	m[KeyInstanceID] = e.InstanceID
	m[KeyProject] = e.InstanceID
	m[KeySlot] = strconv.Itoa(e.Slot)
	for k, port := range e.Ports {
		m[k] = strconv.Itoa(port)
	}
	m[p.SharedRootKey] = e.SharedRoot
	for _, s := range p.Shared {
		if e.SharedRoot != "" {
			m[s.Key] = filepath.Join(e.SharedRoot, s.Name)
		} else {
			m[s.Key] = "./" + s.Name
		}
	}
	m[KeyCreatedAt] = FormatTime(e.CreatedAt)
	m[KeyVersion] = strconv.Itoa(EnvVersion)
	if e.Engine.Context != "" {
		m[KeyContext] = e.Engine.Context
	}
	if e.Engine.Host != "" {
		m[KeyHost] = e.Engine.Host
	}
	if e.Standin {
		m[p.StandinKey] = "1"
		for _, k := range p.ImageKeys {
			m[k] = p.standinImageFor(k)
		}
	}
	return m
}

// WriteEnv writes e to path atomically.
func (p *Profile) WriteEnv(path string, e Env) error {
	content, err := envfile.Marshal("# Written by the sandbox tool: this sandbox's identity and ports. Do not edit while its stack runs.\n", p.Values(e))
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return WriteFileAtomic(path, content, 0o644)
}

// EnvValues returns the raw key/value pairs of the env file at path: the
// variables compose interpolates the stack file with.
func (p *Profile) EnvValues(path string) (map[string]string, error) {
	return envfile.Read(path)
}

// ReadEnv parses the env file at path (it is never loaded into the process
// environment). A missing key or a malformed value is an *EnvFileError
// naming the file and the key.
func (p *Profile) ReadEnv(path string) (Env, error) {
	vals, err := envfile.Read(path)
	if err != nil {
		return Env{}, err
	}
	return p.parseEnv(path, vals)
}

func (p *Profile) parseEnv(path string, vals map[string]string) (Env, error) {
	bad := func(key string, err error) (Env, error) { return Env{}, &EnvFileError{Path: path, Key: key, Err: err} }
	need := func(key string) (string, error) {
		v, ok := vals[key]
		if !ok {
			return "", fmt.Errorf("missing")
		}
		return v, nil
	}
	var e Env
	var err error
	if e.InstanceID, err = need(KeyInstanceID); err != nil {
		return bad(KeyInstanceID, err)
	}
	name, ok := strings.CutPrefix(e.InstanceID, p.App+"--")
	if !ok || ValidateName(name) != nil {
		return bad(KeyInstanceID, fmt.Errorf("%q is not an instance id (%s--<name>)", e.InstanceID, p.App))
	}
	if project := vals[KeyProject]; project != e.InstanceID {
		return bad(KeyProject, fmt.Errorf("%q differs from %s %q", project, KeyInstanceID, e.InstanceID))
	}
	v, err := need(KeyVersion)
	if err != nil {
		return bad(KeyVersion, err)
	}
	if v != strconv.Itoa(EnvVersion) {
		return bad(KeyVersion, fmt.Errorf("version %q is not supported (this tool reads version %d)", v, EnvVersion))
	}
	if v, err = need(KeySlot); err != nil {
		return bad(KeySlot, err)
	}
	if e.Slot, ok = envfile.ParseDecimal(v, 1<<16); !ok {
		return bad(KeySlot, fmt.Errorf("%q is not a slot number (decimal digits, no sign, no leading zero)", v))
	}
	// The API port is always there; the other ports are those of the stack
	// file the sandbox was made from (ForStack): the documented keys it
	// has, and any other <prefix>…_PORT key. A key the file gained since is
	// added by up (EnsurePorts), never read as missing here.
	e.Ports = make(map[string]int, len(p.Ports))
	if _, err := need(p.APIPortKey); err != nil {
		return bad(p.APIPortKey, err)
	}
	portKeys := map[string]bool{}
	for _, r := range p.Ports {
		portKeys[r.Key] = true
	}
	for k := range vals {
		if p.EnvPrefix != "" && strings.HasPrefix(k, p.EnvPrefix) && strings.HasSuffix(k, "_PORT") {
			portKeys[k] = true
		}
	}
	for _, k := range slices.Sorted(maps.Keys(portKeys)) {
		v, ok := vals[k]
		if !ok {
			continue
		}
		n, ok := envfile.ParsePort(v)
		if !ok {
			return bad(k, fmt.Errorf("%q is not a port number (1–65535, decimal digits, no sign, no leading zero)", v))
		}
		e.Ports[k] = n
	}
	e.SharedRoot = vals[p.SharedRootKey]
	if v, ok := vals[KeyCreatedAt]; ok && v != "" {
		if e.CreatedAt, err = ParseTime(v); err != nil {
			return bad(KeyCreatedAt, fmt.Errorf("%q is not an RFC 3339 time", v))
		}
	}
	e.Standin = vals[p.StandinKey] == "1"
	e.Engine.Context = vals[KeyContext]
	if c := e.Engine.Context; c != "" && (strings.HasPrefix(c, "-") || strings.ContainsAny(c, " \t/")) {
		return bad(KeyContext, fmt.Errorf("%q is not a Docker context name", c))
	}
	if h := vals[KeyHost]; h != "" {
		if !apiurl.ValidHost(h) {
			return bad(KeyHost, fmt.Errorf("%q is not a host name or IP address", h))
		}
		e.Engine.Host = h
	}
	known := map[string]bool{KeyInstanceID: true, KeyProject: true, KeySlot: true, KeyCreatedAt: true, KeyVersion: true, p.StandinKey: true, p.SharedRootKey: true, KeyContext: true, KeyHost: true}
	for k := range e.Ports {
		known[k] = true
	}
	for _, s := range p.Shared {
		known[s.Key] = true
	}
	if e.Standin {
		for _, k := range p.ImageKeys {
			known[k] = true
		}
	}
	for k, v := range vals {
		if !known[k] {
			if e.Extra == nil {
				e.Extra = map[string]string{}
			}
			e.Extra[k] = v
		}
	}
	return e, nil
}

// WriteFileAtomic writes data to path through a temporary file in the same
// folder, fsyncs it and renames it into place, so readers see the old
// content or the new, never a part.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
