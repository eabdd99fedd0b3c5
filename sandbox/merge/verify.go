package merge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// The checklist item names, in the order Verify reports them.
const (
	ItemParses     = "merged file parses"
	ItemSlot0      = "no variables: slot-0 ports and ./data, ./models, ./strategies mounts"
	ItemCompatible = "nothing the pre-merge file offered disappeared or changed"
	ItemSlotN      = "every host port and shared mount follows the slot variables"
	ItemNoName     = "no container_name"
	ItemServices   = "same services as the sandbox compose file"
	ItemLive       = "live: main stack on the standard ports"
)

// Item is one line of the checklist.
type Item struct {
	Name    string
	OK      bool
	Skipped bool   // OK because there was nothing to check; Reason says why
	Reason  string // what is wrong (service, port, expected vs got), or why it was skipped
}

// String renders the item as `✓ name` or `✗ name: reason`.
func (i Item) String() string {
	switch {
	case !i.OK:
		return "✗ " + i.Name + ": " + i.Reason
	case i.Skipped:
		return "✓ " + i.Name + " — " + i.Reason
	default:
		return "✓ " + i.Name
	}
}

// Report is the result of Verify.
type Report struct {
	File  string // the verified compose file
	Items []Item
}

// OK reports whether every item passed.
func (r Report) OK() bool { return len(r.Failed()) == 0 }

// Failed returns the items that failed.
func (r Report) Failed() []Item {
	var out []Item
	for _, it := range r.Items {
		if !it.OK {
			out = append(out, it)
		}
	}
	return out
}

// VerifyError is returned by Apply when the merged file failed the
// checklist (Apply has rolled back by then).
type VerifyError struct {
	Failed     []Item
	RolledBack string // what the rollback did
}

func (e *VerifyError) Error() string {
	parts := make([]string, len(e.Failed))
	for i, it := range e.Failed {
		parts[i] = it.Name + ": " + it.Reason
	}
	return fmt.Sprintf("merged file failed verification (%s): %s", e.RolledBack, strings.Join(parts, "; "))
}

// maxProblems caps how many problems one item lists.
const maxProblems = 8

func itemOf(name string, problems []string) Item {
	if len(problems) == 0 {
		return Item{Name: name, OK: true}
	}
	if len(problems) > maxProblems {
		problems = append(problems[:maxProblems:maxProblems], fmt.Sprintf("and %d more", len(problems)-maxProblems))
	}
	return Item{Name: name, Reason: strings.Join(problems, "; ")}
}

// Verify runs the checklist on <Dir>/docker-compose.yml. The error is only
// for a checklist that could not run (a cancelled context); a failing item is
// in the Report.
func Verify(ctx context.Context, opts Options) (Report, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return Report{}, err
	}
	rep := Report{File: o.mainPath()}
	add := func(it Item) { rep.Items = append(rep.Items, it) }

	cur, err := loadFile(ctx, o, o.mainPath(), nil)
	if err != nil {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		add(Item{Name: ItemParses, Reason: err.Error()})
		for _, n := range []string{ItemSlot0, ItemCompatible, ItemSlotN, ItemNoName, ItemServices} {
			add(Item{Name: n, Reason: "not checked: " + o.Profile.MainCompose + " does not load"})
		}
	} else {
		add(Item{Name: ItemParses, OK: true})
		add(checkSlot0(o, cur))
		add(checkCompatible(ctx, o, cur))
		add(checkSlotN(ctx, o, cur))
		add(checkNoContainerName(cur))
		add(checkServices(ctx, o, cur))
	}
	if o.Live != nil {
		if err := o.Live(ctx); err != nil {
			add(Item{Name: ItemLive, Reason: err.Error()})
		} else {
			add(Item{Name: ItemLive, OK: true})
		}
	}
	return rep, ctx.Err()
}

// loadFile loads path with exactly env as the variables (nil: none).
func loadFile(ctx context.Context, o Options, path string, env map[string]string) (*types.Project, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return loadBytes(ctx, o, path, b, env)
}

// loadBytes parses and interpolates one compose file with compose-go. The
// variables are exactly env, never the process environment; relative paths
// resolve against the checkout root; images are not pulled or checked.
func loadBytes(ctx context.Context, o Options, path string, content []byte, env map[string]string) (*types.Project, error) {
	m := types.Mapping{}
	for k, v := range env {
		m[k] = v
	}
	details := types.ConfigDetails{
		WorkingDir:  o.Dir,
		ConfigFiles: []types.ConfigFile{{Filename: path, Content: content}},
		Environment: m,
	}
	p, err := loader.LoadWithContext(ctx, details, func(lo *loader.Options) {
		lo.SetProjectName("ktrdr-merge-verify", true)
		lo.ResolvePaths = true
		lo.SkipResolveEnvironment = true
		lo.SkipResolveLabels = true
		lo.Profiles = []string{"*"}
	})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", o.rel(path), err)
	}
	return p, nil
}

func (o Options) rel(path string) string {
	if r, err := filepath.Rel(o.Dir, path); err == nil && !strings.HasPrefix(r, "..") {
		if r == "." {
			return "."
		}
		return "./" + filepath.ToSlash(r)
	}
	return path
}

// portKey identifies a published port of a service independently of its
// host port: the container port, protocol and host address.
type portKey struct {
	service, hostIP, proto string
	target                 uint32
}

func (k portKey) String() string {
	s := k.service + " →" + strconv.FormatUint(uint64(k.target), 10)
	if k.proto != "" && k.proto != "tcp" {
		s += "/" + k.proto
	}
	if k.hostIP != "" {
		s += " on " + k.hostIP
	}
	return s
}

// published maps every published port of p to its host port.
func published(p *types.Project) map[portKey]string {
	m := map[portKey]string{}
	for name, s := range p.Services {
		for _, pc := range s.Ports {
			if pc.Published == "" {
				continue
			}
			m[portKey{name, pc.HostIP, pc.Protocol, pc.Target}] = pc.Published
		}
	}
	return m
}

func sortedKeys[K comparable, V any](m map[K]V, str func(K) string) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b K) int { return strings.Compare(str(a), str(b)) })
	return ks
}

func serviceNames(p *types.Project) []string {
	names := make([]string, 0, len(p.Services))
	for n := range p.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// checkSlot0: with no variables the file publishes exactly the slot-0 port of
// every rule on its service, and mounts ./<shared> for every shared folder.
func checkSlot0(o Options, p *types.Project) Item {
	var problems []string
	pub := published(p)
	type sp struct{ service, port string }
	want := map[sp]string{} // → rule key
	for _, r := range o.Profile.Ports {
		want[sp{r.Service, strconv.Itoa(r.Slot0)}] = r.Key
	}
	got := map[sp]portKey{}
	for _, k := range sortedKeys(pub, portKey.String) {
		got[sp{k.service, pub[k]}] = k
	}
	for _, r := range o.Profile.Ports {
		if _, ok := got[sp{r.Service, strconv.Itoa(r.Slot0)}]; ok {
			continue
		}
		var has []string
		for _, k := range sortedKeys(pub, portKey.String) {
			if k.service == r.Service {
				has = append(has, pub[k]+"→"+strconv.FormatUint(uint64(k.target), 10))
			}
		}
		problems = append(problems, fmt.Sprintf("%s does not publish %d (%s); it publishes [%s]",
			r.Service, r.Slot0, r.Key, strings.Join(has, " ")))
	}
	for _, k := range sortedKeys(pub, portKey.String) {
		if _, ok := want[sp{k.service, pub[k]}]; !ok {
			problems = append(problems, fmt.Sprintf("%s publishes %s, which is no slot-0 port of the profile", k, pub[k]))
		}
	}
	for _, sd := range o.Profile.Shared {
		if len(sharedMounts(o, p, filepath.Join(o.Dir, sd.Name))) == 0 {
			problems = append(problems, fmt.Sprintf("no service mounts ./%s (the %s fallback)", sd.Name, sd.Key))
		}
	}
	return itemOf(ItemSlot0, problems)
}

// mountKey is one mount point of a service.
type mountKey struct{ service, target string }

func (k mountKey) String() string { return k.service + ":" + k.target }

// sharedMounts returns the bind mounts of p whose source is source.
func sharedMounts(o Options, p *types.Project, source string) []mountKey {
	var out []mountKey
	for _, name := range serviceNames(p) {
		for _, v := range p.Services[name].Volumes {
			if v.Type == types.VolumeTypeBind && filepath.Clean(v.Source) == filepath.Clean(source) {
				out = append(out, mountKey{name, v.Target})
			}
		}
	}
	return out
}

// slotEnv is the variable map of slot n: its ports and distinct shared mounts.
func slotEnv(o Options, n int) map[string]string {
	env := map[string]string{}
	for k, v := range o.Profile.PortsFor(n) {
		env[k] = strconv.Itoa(v)
	}
	root := fmt.Sprintf("/ktrdr-merge-verify/slot-%d", n)
	if o.Profile.SharedRootKey != "" {
		env[o.Profile.SharedRootKey] = root
	}
	for _, sd := range o.Profile.Shared {
		env[sd.Key] = root + "/" + sd.Name
	}
	return env
}

// verifySlots are the sandbox slots item 4 tries: 1, 2 and the highest.
func verifySlots(o Options) []int {
	var out []int
	for _, n := range []int{1, 2, o.Profile.MaxSlot} {
		if n >= o.Profile.MinSlot && n <= o.Profile.MaxSlot && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// checkSlotN: loaded with slot N's variables, every published port is slot
// N's port for its rule (so every host port is a ${VAR:-default}), and every
// ./<shared> mount follows its variable.
func checkSlotN(ctx context.Context, o Options, p0 *types.Project) Item {
	var problems []string
	pub0 := published(p0)
	rules := map[portKey]int{} // → index in Profile.Ports
	for _, k := range sortedKeys(pub0, portKey.String) {
		for i, r := range o.Profile.Ports {
			if r.Service == k.service && strconv.Itoa(r.Slot0) == pub0[k] {
				rules[k] = i
			}
		}
	}
	slots := verifySlots(o)
	for _, n := range slots {
		env := slotEnv(o, n)
		pn, err := loadFile(ctx, o, o.mainPath(), env)
		if err != nil {
			problems = append(problems, fmt.Sprintf("slot %d: %v", n, err))
			continue
		}
		pubN := published(pn)
		for _, k := range sortedKeys(pub0, portKey.String) {
			i, ok := rules[k]
			got, present := pubN[k]
			switch {
			case !present:
				problems = append(problems, fmt.Sprintf("slot %d: %s is no longer published", n, k))
			case !ok && got == pub0[k]:
				problems = append(problems, fmt.Sprintf("slot %d: %s publishes %s as in slot 0: not parameterised", n, k, got))
			case !ok:
				problems = append(problems, fmt.Sprintf("slot %d: %s publishes %s: no port rule covers it", n, k, got))
			default:
				r := o.Profile.Ports[i]
				if want := strconv.Itoa(r.Port(n)); got != want {
					hint := ""
					if got == pub0[k] {
						hint = fmt.Sprintf(": not parameterised, use \"${%s:-%d}:%d\"", r.Key, r.Slot0, k.target)
					}
					problems = append(problems, fmt.Sprintf("slot %d: %s publishes %s, want %s (%s)%s", n, k, got, want, r.Key, hint))
				}
			}
		}
		for _, k := range sortedKeys(pubN, portKey.String) {
			if _, ok := pub0[k]; !ok {
				problems = append(problems, fmt.Sprintf("slot %d: %s publishes %s, which slot 0 does not", n, k, pubN[k]))
			}
		}
		for _, sd := range o.Profile.Shared {
			want := env[sd.Key]
			for _, mk := range sharedMounts(o, p0, filepath.Join(o.Dir, sd.Name)) {
				if !slices.Contains(sharedMounts(o, pn, want), mk) {
					problems = append(problems, fmt.Sprintf("slot %d: %s does not mount $%s: use ${%s:-./%s}", n, mk, sd.Key, sd.Key, sd.Name))
				}
			}
		}
	}
	it := itemOf(ItemSlotN, problems)
	it.Name = fmt.Sprintf("%s (slots %s)", ItemSlotN, joinInts(slots))
	return it
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

func checkNoContainerName(p *types.Project) Item {
	var problems []string
	for _, name := range serviceNames(p) {
		if cn := p.Services[name].ContainerName; cn != "" {
			problems = append(problems, fmt.Sprintf("%s sets container_name: %s (two stacks would clash; remove it)", name, cn))
		}
	}
	return itemOf(ItemNoName, problems)
}

func checkServices(ctx context.Context, o Options, p *types.Project) Item {
	sb, err := loadFile(ctx, o, o.sandboxPath(), nil)
	if err != nil {
		return Item{Name: ItemServices, Reason: err.Error()}
	}
	var problems []string
	for _, n := range serviceNames(sb) {
		if _, ok := p.Services[n]; !ok {
			problems = append(problems, fmt.Sprintf("%s is in %s but not in %s", n, o.Profile.SandboxCompose, o.Profile.MainCompose))
		}
	}
	for _, n := range serviceNames(p) {
		if _, ok := sb.Services[n]; !ok {
			problems = append(problems, fmt.Sprintf("%s is in %s but not in %s", n, o.Profile.MainCompose, o.Profile.SandboxCompose))
		}
	}
	return itemOf(ItemServices, problems)
}

// preMerge returns the pre-merge file and where it came from: the backup,
// else the rollback tag of the merge state; nil if there is neither.
func preMerge(ctx context.Context, o Options) ([]byte, string, error) {
	b, err := os.ReadFile(o.backupPath())
	if err == nil {
		return b, o.rel(o.backupPath()), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("read backup: %w", err)
	}
	st, err := readState(o)
	if err != nil {
		return nil, "", err
	}
	if st == nil || st.Tag == "" {
		return nil, "", nil
	}
	b, err = gitShow(ctx, o, st.Tag)
	if err != nil {
		return nil, "", fmt.Errorf("read the pre-merge file from tag %s: %w", st.Tag, err)
	}
	return b, "tag " + st.Tag, nil
}

// checkCompatible compares the merged file (no variables) with the pre-merge
// file: every service, published port, mount, named volume and network the
// old workflow relied on is still there, unchanged.
func checkCompatible(ctx context.Context, o Options, cur *types.Project) Item {
	old, from, err := preMerge(ctx, o)
	if err != nil {
		return Item{Name: ItemCompatible, Reason: err.Error()}
	}
	if old == nil {
		return Item{Name: ItemCompatible, OK: true, Skipped: true, Reason: "skipped: no pre-merge file (never applied)"}
	}
	name := fmt.Sprintf("%s (%s)", ItemCompatible, from)
	prev, err := loadBytes(ctx, o, o.mainPath(), old, nil)
	if err != nil {
		return Item{Name: name, Reason: "the pre-merge file does not load: " + err.Error()}
	}
	var problems []string
	pubOld, pubCur := published(prev), published(cur)
	for _, sname := range serviceNames(prev) {
		s, ok := cur.Services[sname]
		if !ok {
			problems = append(problems, "service "+sname+" disappeared")
			continue
		}
		for _, v := range prev.Services[sname].Volumes {
			if !hasMount(s.Volumes, v) {
				problems = append(problems, fmt.Sprintf("%s: mount %s is gone (now: %s)", sname, o.mountString(v), o.mountsAt(s.Volumes, v.Target)))
			}
		}
	}
	for _, k := range sortedKeys(pubOld, portKey.String) {
		if _, ok := cur.Services[k.service]; !ok {
			continue
		}
		got, ok := pubCur[k]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s: published port %s disappeared", k, pubOld[k]))
		case got != pubOld[k]:
			problems = append(problems, fmt.Sprintf("%s: default host port changed: was %s, now %s", k, pubOld[k], got))
		}
	}
	for _, vname := range sortedKeys(prev.Volumes, func(s string) string { return s }) {
		v, ok := cur.Volumes[vname]
		switch {
		case !ok:
			problems = append(problems, "named volume "+vname+" disappeared")
		case v.Name != prev.Volumes[vname].Name || bool(v.External) != bool(prev.Volumes[vname].External):
			problems = append(problems, fmt.Sprintf("named volume %s changed: was %s (external %v), now %s (external %v)",
				vname, prev.Volumes[vname].Name, bool(prev.Volumes[vname].External), v.Name, bool(v.External)))
		}
	}
	for _, nname := range sortedKeys(prev.Networks, func(s string) string { return s }) {
		n, ok := cur.Networks[nname]
		switch {
		case !ok:
			problems = append(problems, "network "+nname+" disappeared")
		case n.Name != prev.Networks[nname].Name || bool(n.External) != bool(prev.Networks[nname].External):
			problems = append(problems, fmt.Sprintf("network %s changed: was %s, now %s", nname, prev.Networks[nname].Name, n.Name))
		}
	}
	it := itemOf(name, problems)
	return it
}

func hasMount(vs []types.ServiceVolumeConfig, want types.ServiceVolumeConfig) bool {
	for _, v := range vs {
		if v.Type == want.Type && v.Target == want.Target && v.ReadOnly == want.ReadOnly &&
			filepath.Clean(v.Source) == filepath.Clean(want.Source) {
			return true
		}
	}
	return false
}

func (o Options) mountString(v types.ServiceVolumeConfig) string {
	src := v.Source
	if v.Type == types.VolumeTypeBind {
		src = o.rel(src)
	}
	s := src + ":" + v.Target
	if v.ReadOnly {
		s += ":ro"
	}
	return s
}

func (o Options) mountsAt(vs []types.ServiceVolumeConfig, target string) string {
	var out []string
	for _, v := range vs {
		if v.Target == target {
			out = append(out, o.mountString(v))
		}
	}
	if len(out) == 0 {
		return "nothing at " + target
	}
	return strings.Join(out, ", ")
}
