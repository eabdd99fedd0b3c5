package merge

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

// none is how a Difference shows an absent value.
const none = "(none)"

// Difference is one way in which a compose file, loaded as a user's
// `docker compose up` in the main checkout loads it, runs a different main
// stack than another: one field of one service, or one top-level key.
type Difference struct {
	Service  string // "" for a top-level key (name, volumes, networks, secrets, configs)
	Field    string // the compose key: image, environment, healthcheck, …; "service" if the service itself came or went
	Old, New string // the rendered values; none when absent
	Accepted bool   // an -accept entry covers it
}

// Key is what -accept names: <service>.<field>, or the top-level key.
func (d Difference) Key() string {
	if d.Service == "" {
		return d.Field
	}
	return d.Service + "." + d.Field
}

// String renders the difference as `db.image: old → new`.
func (d Difference) String() string { return d.Key() + ": " + d.Old + " → " + d.New }

// Dropped reports whether the difference is a service the pre-merge file
// defines (with the default profiles or not) and the merged file does not.
// A merge never removes a service definition: only an -accept entry that
// names the service (<service>.service) accepts it.
func (d Difference) Dropped() bool { return d.Service != "" && d.Field == "service" && d.New == none }

// differ compares two loaded projects.
type differ struct {
	dir    string   // the checkout root, to show paths relative to it
	ignore []string // labels that are the suite's own
	out    []Difference
}

func (c *differ) add(service, field, old, new string) {
	if old != new {
		c.out = append(c.out, Difference{Service: service, Field: field, Old: old, New: new})
	}
}

// entries compares two maps entry by entry; absent entries show as none.
func (c *differ) entries(service, field string, old, new map[string]string) {
	keys := slices.Sorted(maps.Keys(old))
	for k := range new {
		if _, ok := old[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		o, ok := old[k]
		if !ok {
			o = none
		}
		n, ok := new[k]
		if !ok {
			n = none
		}
		c.add(service, field, o, n)
	}
}

// compareProjects reports every difference between the main stack old
// describes and the one cur describes: every service of either file field
// by field, whichever profiles it is behind (the callers load both with
// every profile active: a service behind a profile runs in the main
// checkout as soon as someone enables that profile), every service of old
// that cur lacks (a merge must not remove a service definition), every
// service cur adds, then the project name and the top-level volumes,
// networks, secrets and configs. labels named in ignore (the suite's own)
// are not compared.
func compareProjects(old, cur *types.Project, dir string, ignore ...string) []Difference {
	c := &differ{dir: dir, ignore: ignore}
	oldAll, curAll := old.AllServices(), cur.AllServices()
	names := slices.Collect(maps.Keys(old.Services))
	for n := range cur.Services {
		if _, ok := old.Services[n]; !ok {
			names = append(names, n)
		}
	}
	for n := range oldAll {
		if _, ok := curAll[n]; !ok && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		o, inOld := oldAll[n]
		s, inCur := curAll[n]
		switch {
		case !inCur:
			c.add(n, "service", definedString(o), none)
		case !inOld:
			c.add(n, "service", none, definedString(s))
		default:
			c.service(n, o, s)
		}
	}
	c.add("", "name", old.Name, cur.Name)
	c.entries("", "volumes", named(old.Volumes, volumeString), named(cur.Volumes, volumeString))
	c.entries("", "networks", named(old.Networks, networkString), named(cur.Networks, networkString))
	c.entries("", "secrets", named(old.Secrets, entryJSON[types.SecretConfig]), named(cur.Secrets, entryJSON[types.SecretConfig]))
	c.entries("", "configs", named(old.Configs, entryJSON[types.ConfigObjConfig]), named(cur.Configs, entryJSON[types.ConfigObjConfig]))
	return c.out
}

// handled are the service keys compared field by field; every other key of
// the service is compared as JSON under its own name.
var handled = []string{"image", "build", "command", "entrypoint", "environment", "env_file", "healthcheck",
	"depends_on", "profiles", "ports", "volumes", "networks", "labels", "extra_hosts", "restart", "user", "working_dir"}

func (c *differ) service(n string, o, s types.ServiceConfig) {
	c.add(n, "image", orNone(o.Image), orNone(s.Image))
	c.add(n, "build", c.buildString(o.Build), c.buildString(s.Build))
	c.add(n, "command", commandString(o.Command), commandString(s.Command))
	c.add(n, "entrypoint", commandString(o.Entrypoint), commandString(s.Entrypoint))
	c.entries(n, "environment", envEntries(o.Environment), envEntries(s.Environment))
	c.add(n, "env_file", c.envFilesString(o.EnvFiles), c.envFilesString(s.EnvFiles))
	c.add(n, "healthcheck", healthString(o.HealthCheck), healthString(s.HealthCheck))
	c.entries(n, "depends_on", dependsEntries(o.DependsOn), dependsEntries(s.DependsOn))
	c.add(n, "profiles", listString(o.Profiles), listString(s.Profiles))
	c.entries(n, "ports", portEntries(o.Ports), portEntries(s.Ports))
	c.entries(n, "volumes", c.mountEntries(o.Volumes), c.mountEntries(s.Volumes))
	c.entries(n, "networks", networkEntries(o.Networks), networkEntries(s.Networks))
	c.entries(n, "labels", c.labelEntries(o.Labels), c.labelEntries(s.Labels))
	c.add(n, "extra_hosts", listString(sortedList(o.ExtraHosts.AsList("="))), listString(sortedList(s.ExtraHosts.AsList("="))))
	c.add(n, "restart", orNone(o.Restart), orNone(s.Restart))
	c.add(n, "user", orNone(o.User), orNone(s.User))
	c.add(n, "working_dir", orNone(o.WorkingDir), orNone(s.WorkingDir))
	oRest, sRest := jsonFields(o, handled...), jsonFields(s, handled...)
	for _, k := range slices.Sorted(maps.Keys(union(oRest, sRest))) {
		c.add(n, k, orNone(oRest[k]), orNone(sRest[k]))
	}
}

// definedString shows a service that a file defines, with its profiles if it
// does not run by default.
func definedString(s types.ServiceConfig) string {
	if len(s.Profiles) == 0 {
		return "defined"
	}
	return "defined (profiles " + listString(s.Profiles) + ")"
}

func (c *differ) rel(path string) string {
	if r, err := filepath.Rel(c.dir, path); err == nil && !strings.HasPrefix(r, "..") {
		if r == "." {
			return "."
		}
		return "./" + filepath.ToSlash(r)
	}
	return path
}

func (c *differ) buildString(b *types.BuildConfig) string {
	if b == nil {
		return none
	}
	parts := []string{"context=" + c.rel(b.Context)}
	if b.Dockerfile != "" {
		parts = append(parts, "dockerfile="+b.Dockerfile)
	}
	if b.Target != "" {
		parts = append(parts, "target="+b.Target)
	}
	if len(b.Args) > 0 {
		args := envEntries(b.Args)
		parts = append(parts, "args="+listString(slices.Sorted(maps.Values(args))))
	}
	if rest := restJSON(*b, "context", "dockerfile", "target", "args"); rest != "" {
		parts = append(parts, rest)
	}
	return strings.Join(parts, " ")
}

// commandString shows a command or entrypoint; nil means the image's own.
func commandString(cmd types.ShellCommand) string {
	if cmd == nil {
		return "(the image's)"
	}
	return jsonOf(cmd)
}

// envEntries renders each variable as NAME=value, or NAME (from the
// shell) for a variable listed without a value.
func envEntries(env types.MappingWithEquals) map[string]string {
	out := make(map[string]string, len(env))
	for k, v := range env {
		if v == nil {
			out[k] = k + " (from the shell)"
		} else {
			out[k] = k + "=" + *v
		}
	}
	return out
}

func (c *differ) envFilesString(files []types.EnvFile) string {
	if len(files) == 0 {
		return none
	}
	parts := make([]string, len(files))
	for i, f := range files {
		parts[i] = c.rel(f.Path)
		if !f.Required {
			parts[i] += " (optional)"
		}
		if f.Format != "" {
			parts[i] += " (format " + f.Format + ")"
		}
	}
	return strings.Join(parts, ", ")
}

func healthString(h *types.HealthCheckConfig) string {
	switch {
	case h == nil:
		return none
	case h.Disable:
		return "disabled"
	}
	parts := []string{"test=" + jsonOf(h.Test)}
	for _, d := range []struct {
		name string
		v    *types.Duration
	}{{"interval", h.Interval}, {"timeout", h.Timeout}, {"start_period", h.StartPeriod}, {"start_interval", h.StartInterval}} {
		if d.v != nil {
			parts = append(parts, d.name+"="+time.Duration(*d.v).String())
		}
	}
	if h.Retries != nil {
		parts = append(parts, "retries="+strconv.FormatUint(*h.Retries, 10))
	}
	return strings.Join(parts, " ")
}

func dependsEntries(deps types.DependsOnConfig) map[string]string {
	out := make(map[string]string, len(deps))
	for name, d := range deps {
		s := name + " (" + d.Condition
		if !d.Required {
			s += ", not required"
		}
		if d.Restart {
			s += ", restart"
		}
		out[name] = s + ")"
	}
	return out
}

// portEntries groups the ports by container port and protocol and shows
// each as [host_ip:]published:target/protocol.
func portEntries(ports []types.ServicePortConfig) map[string]string {
	out := map[string]string{}
	for _, p := range ports {
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		key := strconv.FormatUint(uint64(p.Target), 10) + "/" + proto
		s := p.Published + ":" + key
		if p.HostIP != "" {
			s = p.HostIP + ":" + s
		}
		if p.Mode == "ingress" {
			p.Mode = "" // compose's default
		}
		if rest := restJSON(p, "target", "published", "protocol", "host_ip"); rest != "" {
			s += " " + rest
		}
		if prev, ok := out[key]; ok {
			s = prev + ", " + s
		}
		out[key] = s
	}
	for k, v := range out {
		out[k] = listString(sortedList(strings.Split(v, ", ")))
	}
	return out
}

// mountEntries shows each mount, by its target, as [type] source:target[:ro]
// and any further options.
func (c *differ) mountEntries(vs []types.ServiceVolumeConfig) map[string]string {
	out := map[string]string{}
	for _, v := range vs {
		src := v.Source
		if v.Type == types.VolumeTypeBind {
			src = c.rel(src)
		}
		s := v.Type + " " + src + ":" + v.Target
		if v.ReadOnly {
			s += ":ro"
		}
		if rest := restJSON(v, "type", "source", "target", "read_only"); rest != "" {
			s += " " + rest
		}
		if prev, ok := out[v.Target]; ok {
			s = prev + ", " + s
		}
		out[v.Target] = s
	}
	return out
}

func networkEntries(nets map[string]*types.ServiceNetworkConfig) map[string]string {
	out := make(map[string]string, len(nets))
	for name, n := range nets {
		out[name] = name
		if n != nil {
			if rest := restJSON(*n); rest != "" {
				out[name] += " " + rest
			}
		}
	}
	return out
}

func (c *differ) labelEntries(labels types.Labels) map[string]string {
	out := make(map[string]string, len(labels))
	for k, v := range labels {
		if !slices.Contains(c.ignore, k) {
			out[k] = k + "=" + v
		}
	}
	return out
}

func volumeString(name string, v types.VolumeConfig) string {
	return resourceString(name, v.Name, bool(v.External), v)
}

func networkString(name string, n types.NetworkConfig) string {
	return resourceString(name, n.Name, bool(n.External), n)
}

// resourceString renders a top-level volume or network: its key, its
// resolved name, whether it is external, and the rest of its settings.
func resourceString(key, name string, external bool, cfg any) string {
	s := key + " (name " + name
	if external {
		s += ", external"
	}
	s += ")"
	if rest := restJSON(cfg, "name", "external"); rest != "" {
		s += " " + rest
	}
	return s
}

// named renders every entry of a top-level map.
func named[V any](m map[string]V, render func(string, V) string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = render(k, v)
	}
	return out
}

// jsonOf is the canonical JSON of v (map keys sorted).
func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(b)
}

// entryJSON renders a top-level entry as its name and its JSON.
func entryJSON[V any](name string, v V) string { return name + " " + jsonOf(v) }

// jsonFields returns the JSON keys of v, minus drop, each as canonical JSON;
// empty values (null, {}, [], "") are left out, so that a key written
// empty is the same as one left out.
func jsonFields(v any, drop ...string) map[string]string {
	out := map[string]string{}
	for k, val := range jsonMap(v, drop...) {
		out[k] = jsonOf(val)
	}
	return out
}

// restJSON is the canonical JSON of the keys of v but drop, or "" if they
// are all empty.
func restJSON(v any, drop ...string) string {
	m := jsonMap(v, drop...)
	if len(m) == 0 {
		return ""
	}
	return jsonOf(m)
}

func jsonMap(v any, drop ...string) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		return map[string]any{"?": fmt.Sprintf("%v", v)}
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return map[string]any{"?": string(b)}
	}
	for k, val := range m {
		if slices.Contains(drop, k) || empty(val) {
			delete(m, k)
		}
	}
	return m
}

func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	case string:
		return x == ""
	}
	return false
}

func union(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

func listString(l []string) string {
	if len(l) == 0 {
		return none
	}
	return "[" + strings.Join(l, " ") + "]"
}

func sortedList(l []string) []string {
	l = slices.Clone(l)
	slices.Sort(l)
	return l
}
