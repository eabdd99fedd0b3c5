package merge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ktrdr/sandboxkit/internal/text"
	"github.com/ktrdr/sandboxkit/sandbox"

	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/ktrdr/sandboxkit/sandbox/composefile"
)

// The checklist item names, in the order Verify reports them.
const (
	ItemParses     = "merged file parses"
	ItemSlot0      = "no variables: slot-0 ports and ./data, ./models, ./strategies mounts"
	ItemCompatible = "as the main checkout runs it (every profile, its .env, this environment), the same main stack as the pre-merge file"
	ItemSlotN      = "every host port and shared mount follows the slot variables"
	ItemNoName     = "no container_name"
	ItemServices   = "same services as the merge source"
	ItemLive       = "live: main stack on the standard ports"
)

// Item is one line of the checklist.
type Item struct {
	Name    string
	OK      bool
	Skipped bool   // OK because there was nothing to check; Reason says why
	Reason  string // what is wrong (service, port, expected vs got), why it was skipped, or what was accepted
}

// String renders the item as `✓ name`, `✓ name — note` or `✗ name: reason`.
func (i Item) String() string {
	switch {
	case !i.OK:
		return "✗ " + i.Name + ": " + i.Reason
	case i.Reason != "":
		return "✓ " + i.Name + " — " + i.Reason
	default:
		return "✓ " + i.Name
	}
}

// Report is the result of Verify.
type Report struct {
	File  string // the verified compose file
	Items []Item
	// Differences are the ways the main stack changes against the pre-merge
	// file, each marked if it is accepted; empty if there is no pre-merge
	// file to compare with.
	Differences []Difference
	// NewVariables are the variables the merged file reads that the
	// pre-merge file did not, and where the main checkout sets them; empty
	// if there is no pre-merge file to compare with.
	NewVariables []Variable
}

// Unaccepted returns the differences no -accept entry covers.
func (r Report) Unaccepted() []Difference {
	var out []Difference
	for _, d := range r.Differences {
		if !d.Accepted {
			out = append(out, d)
		}
	}
	return out
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
// checklist. Apply has undone everything it did by then.
type VerifyError struct {
	Failed  []Item
	Outcome string // what was left: "nothing was written", or what undoing did
}

func (e *VerifyError) Error() string {
	parts := make([]string, len(e.Failed))
	for i, it := range e.Failed {
		parts[i] = it.Name + ": " + it.Reason
	}
	return fmt.Sprintf("merged file failed verification (%s): %s", e.Outcome, strings.Join(parts, "; "))
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

// subject is what the checklist examines.
type subject struct {
	merged []byte // the content of the main compose file

	pre     []byte // the pre-merge file; nil if there is none
	preFrom string // where pre came from
	preNote string // why there is none
	preErr  error  // it could not be read

	source     []byte // the merge source; nil if it is not known
	sourceName string
	sourceNote string // why it is not known
	sourceErr  error  // it could not be read

	recorded []string // -accept entries recorded by Apply in the merge state
}

// Verify runs the checklist on the main compose file of the checkout. The
// pre-merge file is the backup of the merge in place (else its rollback
// tag); the merge source is Options.From, else the one the merge state
// names, else the sandbox compose file; the changes accepted are
// Options.Accept and those recorded by Apply. The error is only for a
// checklist that could not run (a cancelled context); a failing item is in
// the Report.
func Verify(ctx context.Context, opts Options) (Report, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return Report{}, err
	}
	var subj subject
	mf, err := locateMain(o)
	if err == nil {
		subj.merged, err = os.ReadFile(mf.Path)
	}
	rep := Report{File: o.mainPath()}
	if err != nil {
		rep.Items = append(rep.Items, Item{Name: ItemParses, Reason: err.Error()})
		for _, n := range []string{ItemSlot0, ItemCompatible, ItemSlotN, ItemNoName, ItemServices} {
			rep.Items = append(rep.Items, Item{Name: n, Reason: "not checked: " + o.Profile.MainCompose + " cannot be read"})
		}
	} else {
		st, serr := stateFor(ctx, o)
		subj.pre, subj.preFrom, subj.preNote, subj.preErr = preMerge(ctx, o, mf, st, serr)
		subj.source, subj.sourceName, subj.sourceNote, subj.sourceErr = mergeSource(o, st)
		if st.active() {
			subj.recorded = st.Accept
		}
		rep = checklist(ctx, o, subj)
	}
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	if o.Live != nil {
		if err := o.Live(ctx); err != nil {
			rep.Items = append(rep.Items, Item{Name: ItemLive, Reason: err.Error()})
		} else {
			rep.Items = append(rep.Items, Item{Name: ItemLive, OK: true})
		}
	}
	return rep, ctx.Err()
}

// stateFor reads the checkout's merge state.
func stateFor(ctx context.Context, o Options) (*loaded, error) {
	s, err := locateStore(ctx, o)
	if err != nil {
		return nil, err
	}
	return readState(s)
}

// checklist runs every item but the live one on subj.
func checklist(ctx context.Context, o Options, subj subject) Report {
	rep := Report{File: o.mainPath()}
	add := func(it Item) { rep.Items = append(rep.Items, it) }
	cur, err := load(ctx, o.Dir, o.mainPath(), subj.merged, nil, every)
	if err != nil {
		add(Item{Name: ItemParses, Reason: err.Error()})
		for _, n := range []string{ItemSlot0, ItemCompatible, ItemSlotN, ItemNoName, ItemServices} {
			add(Item{Name: n, Reason: "not checked: " + o.Profile.MainCompose + " does not load"})
		}
		return rep
	}
	add(Item{Name: ItemParses, OK: true})
	own := ownPortVars(ctx, o, subj.merged, cur)
	add(checkSlot0(o, stackModel(ctx, o, subj), cur, own))
	it, diffs, vars := checkCompatible(ctx, o, subj)
	rep.Differences, rep.NewVariables = diffs, vars
	add(it)
	add(checkSlotN(ctx, o, subj.merged, cur, own))
	add(checkNoContainerName(cur.Project))
	add(checkServices(ctx, o, subj, cur.Project))
	return rep
}

// composeFile is a compose file as this package reads it: loaded and
// interpolated, and its model before interpolation (which variables it
// reads, and how its ports use them).
type composeFile struct {
	*types.Project
	raw map[string]any
}

// every activates every profile: each service of a file, whichever
// profiles it is behind.
var every = []string{"*"}

// load is the one place this package loads a compose file: content, which
// is the file at path, with relative paths resolved against dir (the
// checkout root), interpolated with exactly env (nil: no variables; never
// the process environment unless the caller put it there), with profiles
// active (every: all services; nil: the default ones). The project name is
// the one compose derives in dir: the file's name:, else the folder's
// name. Images are not pulled or checked; compose's consistency check
// applies (with nil profiles, a default service that depends on a service
// behind a profile is refused, as docker compose up refuses it).
func load(ctx context.Context, dir, path string, content []byte, env map[string]string, profiles []string) (composeFile, error) {
	src := composefile.Source{Root: dir, Files: []string{path}, Env: env, Contents: map[string][]byte{path: content}}
	opened, err := composefile.Open(ctx, src)
	if err != nil {
		return composeFile{}, fmt.Errorf("load %s: %w", relTo(dir, path), err)
	}
	p, err := opened.Load(ctx, "", profiles)
	if err != nil {
		return composeFile{}, fmt.Errorf("load %s: %w", relTo(dir, path), err)
	}
	raw, err := opened.Model(ctx, p.Name)
	if err != nil {
		return composeFile{}, fmt.Errorf("load %s: read its variables: %w", relTo(dir, path), err)
	}
	return composeFile{Project: p, raw: raw}, nil
}

// variables returns every variable the file reads, with its default.
func (f composeFile) variables() map[string]template.Variable {
	return template.ExtractVariables(f.raw, template.DefaultPattern)
}

func (o Options) rel(path string) string { return relTo(o.Dir, path) }

// relTo shows path relative to dir (./x) when it is inside it.
func relTo(dir, path string) string {
	if r, err := filepath.Rel(dir, path); err == nil && !strings.HasPrefix(r, "..") {
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

// ruleFor returns the index in Profile.Ports of the rule that covers the
// published port k (its service, and host port pub in slot 0), or -1.
func ruleFor(o Options, k portKey, pub string) int {
	for i, r := range o.Profile.Ports {
		if r.Service == k.service && strconv.Itoa(r.Slot0) == pub {
			return i
		}
	}
	return -1
}

// portVar is a variable the port table does not know that sets a published
// host port: "${Name:-Default}".
type portVar struct{ Name, Default string }

func (v portVar) String() string { return "${" + v.Name + ":-" + v.Default + "}" }

// firstProbePort is where ownPortVars starts numbering its probe ports.
const firstProbePort = 61000

// ownPortVars finds the published ports of p0 (the merged file loaded with no
// variables) that no port rule covers but that are parameterised all the
// same, by a variable of their own the port table does not know, such as
// "${DESIGN_AGENT_PORT:-5010}:5010": it loads the file with each variable
// that is not a slot variable and has a numeric default set to a distinct
// probe port, and keeps the ports that move to their variable's probe.
// A file whose variables cannot be read has none.
func ownPortVars(ctx context.Context, o Options, merged []byte, p0 composeFile) map[portKey]portVar {
	pub0 := published(p0.Project)
	uncovered := false
	for k, v := range pub0 {
		if ruleFor(o, k, v) < 0 {
			uncovered = true
		}
	}
	if !uncovered {
		return nil
	}
	taken := map[string]bool{}
	known := map[string]bool{}
	for n := 0; n <= o.Profile.MaxSlot; n++ {
		for k, v := range slotEnv(o, n) {
			known[k], taken[v] = true, true
		}
	}
	for _, v := range pub0 {
		taken[v] = true
	}
	vars := p0.variables()
	probe := map[string]string{} // variable → probe port
	byProbe := map[string]portVar{}
	next := firstProbePort
	for _, name := range slices.Sorted(maps.Keys(vars)) {
		v := vars[name]
		if known[name] {
			continue
		}
		if n, err := strconv.Atoi(v.DefaultValue); err != nil || n < 1 || n > 65535 {
			continue
		}
		for taken[strconv.Itoa(next)] {
			next++
		}
		p := strconv.Itoa(next)
		taken[p] = true
		probe[name], byProbe[p] = p, portVar{Name: name, Default: v.DefaultValue}
	}
	if len(probe) == 0 {
		return nil
	}
	pp, err := load(ctx, o.Dir, o.mainPath(), merged, probe, every)
	if err != nil {
		return nil
	}
	out := map[portKey]portVar{}
	for k, got := range published(pp.Project) {
		if v, ok := byProbe[got]; ok && ruleFor(o, k, pub0[k]) < 0 && v.Default == pub0[k] {
			out[k] = v
		}
	}
	return out
}

// checkSlot0: with no variables the file publishes exactly the slot-0 port
// of every port rule of the checkout's stack model on its service, every
// port it publishes is one of them, and it mounts ./<shared> for every
// shared folder. A port no rule covers is allowed only if a variable of its
// own sets it (own); the compatibility item checks it keeps the main
// file's port.
func checkSlot0(o Options, m slotModel, p composeFile, own map[portKey]portVar) Item {
	name := ItemSlot0
	if m.from != "" {
		name = fmt.Sprintf("%s (port plan of %s)", ItemSlot0, m.from)
	}
	if m.err != nil {
		return Item{Name: name, Reason: m.err.Error()}
	}
	var problems []string
	pub := published(p.Project)
	type sp struct{ service, port string }
	want := map[sp]string{} // → rule key
	for _, r := range m.profile.Ports {
		want[sp{r.Service, strconv.Itoa(r.Slot0)}] = r.Key
	}
	got := map[sp]portKey{}
	for _, k := range sortedKeys(pub, portKey.String) {
		got[sp{k.service, pub[k]}] = k
	}
	for _, r := range m.profile.Ports {
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
		if _, ok := own[k]; ok {
			continue
		}
		if _, ok := want[sp{k.service, pub[k]}]; !ok {
			problems = append(problems, fmt.Sprintf("%s publishes %s, which is no slot-0 port of the stack model (no ${VAR:-%s} of its service sets it there)", k, pub[k], pub[k]))
		}
	}
	for _, sd := range m.profile.Shared {
		if len(sharedMounts(p.Project, filepath.Join(o.Dir, sd.Name))) == 0 {
			problems = append(problems, fmt.Sprintf("no service mounts ./%s (the %s fallback)", sd.Name, sd.Key))
		}
	}
	it := itemOf(ItemSlot0, problems)
	it.Name = name
	return it
}

// slotModel is the port plan the slot-0 item holds the merged file to.
type slotModel struct {
	profile *sandbox.Profile // the profile adapted to the stack (ForStack)
	from    string           // the compose file it was built from
	err     error            // it could not be built
}

// stackModel is the checkout's own stack model, the one its sandboxes run
// by (Profile.ForStack): built from the checkout's sandbox compose file,
// every profile active and no variables set, or from the merged file if
// the checkout has no sandbox compose file. Only the port rules (which
// variable publishes which port of which service, its default the slot-0
// port) and the shared folders come from it, never a compiled-in list of
// services.
func stackModel(ctx context.Context, o Options, subj subject) slotModel {
	path, content := o.sandboxPath(), []byte(nil)
	data, err := readInCheckout(o.Dir, o.Profile.SandboxCompose, sandbox.MaxCheckoutFile)
	switch {
	case err != nil:
		return slotModel{from: o.rel(path), err: fmt.Errorf("the checkout's stack model: %w", err)}
	case data != nil:
		content = data
	default:
		path, content = o.mainPath(), subj.merged
	}
	sf, err := sandbox.LoadStack(ctx, composefile.Source{Root: o.Dir, Files: []string{path}, Contents: map[string][]byte{path: content}})
	if err != nil {
		return slotModel{from: o.rel(path), err: fmt.Errorf("the checkout's stack model: %w", err)}
	}
	sp, err := o.Profile.ForStack(sf)
	if err != nil {
		return slotModel{from: o.rel(path), err: fmt.Errorf("the checkout's stack model: %w", err)}
	}
	return slotModel{profile: sp, from: o.rel(path)}
}

// mountKey is one mount point of a service.
type mountKey struct{ service, target string }

func (k mountKey) String() string { return k.service + ":" + k.target }

// sharedMounts returns the bind mounts of p whose source is source.
func sharedMounts(p *types.Project, source string) []mountKey {
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
//
// A port that no rule covers but that a variable of its own sets (own, such
// as "${DESIGN_AGENT_PORT:-5010}:5010") is parameterised: it passes, and the
// item notes that sandboxes leave such a variable at its default.
func checkSlotN(ctx context.Context, o Options, merged []byte, p0 composeFile, own map[portKey]portVar) Item {
	var problems []string
	pub0 := published(p0.Project)
	rules := map[portKey]int{} // → index in Profile.Ports
	for _, k := range sortedKeys(pub0, portKey.String) {
		if i := ruleFor(o, k, pub0[k]); i >= 0 {
			rules[k] = i
		}
	}
	slots := verifySlots(o)
	for _, n := range slots {
		env := slotEnv(o, n)
		pn, err := load(ctx, o.Dir, o.mainPath(), merged, env, every)
		if err != nil {
			problems = append(problems, fmt.Sprintf("slot %d: %v", n, err))
			continue
		}
		pubN := published(pn.Project)
		for _, k := range sortedKeys(pub0, portKey.String) {
			i, ok := rules[k]
			got, present := pubN[k]
			_, isOwn := own[k]
			switch {
			case !present:
				problems = append(problems, fmt.Sprintf("slot %d: %s is no longer published", n, k))
			case !ok && isOwn:
				// parameterised by its own variable, which slot n leaves unset
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
			for _, mk := range sharedMounts(p0.Project, filepath.Join(o.Dir, sd.Name)) {
				if !slices.Contains(sharedMounts(pn.Project, want), mk) {
					problems = append(problems, fmt.Sprintf("slot %d: %s does not mount $%s: use ${%s:-./%s}", n, mk, sd.Key, sd.Key, sd.Name))
				}
			}
		}
	}
	it := itemOf(ItemSlotN, problems)
	it.Name = fmt.Sprintf("%s (slots %s)", ItemSlotN, joinInts(slots))
	if it.OK && len(own) > 0 {
		var notes []string
		for _, k := range sortedKeys(own, portKey.String) {
			notes = append(notes, fmt.Sprintf("%s %s", k, own[k]))
		}
		what := "variables the port table does not know, which sandboxes leave at their defaults"
		if len(own) == 1 {
			what = "a variable the port table does not know, which sandboxes leave at its default"
		}
		it.Reason = "parameterised by " + what + ": " + strings.Join(notes, ", ")
	}
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

// checkServices: the merged file has the same services as the merge source.
func checkServices(ctx context.Context, o Options, subj subject, p *types.Project) Item {
	name := ItemServices
	if subj.sourceName != "" {
		name = fmt.Sprintf("%s (%s)", ItemServices, subj.sourceName)
	}
	switch {
	case subj.sourceErr != nil:
		return Item{Name: name, Reason: subj.sourceErr.Error()}
	case subj.source == nil:
		return Item{Name: name, OK: true, Skipped: true, Reason: "skipped: " + subj.sourceNote}
	}
	// Read as the merged file will be: in the main checkout, where its
	// relative paths lead.
	sb, err := load(ctx, o.Dir, o.mainPath(), subj.source, nil, every)
	if err != nil {
		return Item{Name: name, Reason: fmt.Sprintf("%s, read in place of %s: %v", subj.sourceName, o.Profile.MainCompose, err)}
	}
	var problems []string
	for _, n := range serviceNames(sb.Project) {
		if _, ok := p.Services[n]; !ok {
			problems = append(problems, fmt.Sprintf("%s is in %s but not in %s", n, subj.sourceName, o.Profile.MainCompose))
		}
	}
	for _, n := range serviceNames(p) {
		if _, ok := sb.Services[n]; !ok {
			problems = append(problems, fmt.Sprintf("%s is in %s but not in %s", n, o.Profile.MainCompose, subj.sourceName))
		}
	}
	it := itemOf(ItemServices, problems)
	it.Name = name
	return it
}

// mergeSource returns the merge source for Verify: Options.From, else the
// one the merge in place names, else the sandbox compose file. A source
// named by the merge state that is gone is not an error (a temporary file
// given to -from), only a skipped item.
func mergeSource(o Options, st *loaded) (b []byte, name, note string, err error) {
	path, fromState := o.From, false
	if path == "" && st.active() && st.Source != "" {
		path, fromState = st.Source, true
		if !filepath.IsAbs(path) {
			path = filepath.Join(o.Dir, path)
		}
	}
	if path == "" {
		path = o.sandboxPath()
	}
	b, err = os.ReadFile(path)
	switch {
	case err == nil:
		return b, o.rel(path), "", nil
	case fromState && errors.Is(err, fs.ErrNotExist):
		return nil, o.rel(path), "the merge source " + o.rel(path) + " is gone", nil
	default:
		return nil, o.rel(path), "", fmt.Errorf("read the merge source: %w", err)
	}
}

// preMerge returns the pre-merge file of the merge in place and where it
// came from: the backup, else the rollback tag. Without a merge in place
// there is none, and note says why.
func preMerge(ctx context.Context, o Options, mf mainFile, st *loaded, serr error) (b []byte, from, note string, err error) {
	switch {
	case serr != nil:
		return nil, "", "", serr
	case st == nil:
		return nil, "", "no merge state (merge:apply never ran here)", nil
	case !st.active():
		return nil, "", fmt.Sprintf("the last merge (tag %s) was rolled back at %s", st.Tag, st.RolledBackAt), nil
	}
	if b, err := os.ReadFile(st.Backup); err == nil && sum(b) == st.SHA256 {
		return b, "backup " + o.rel(st.Backup), "", nil
	}
	if st.Tag == "" {
		return nil, "", "", fmt.Errorf("the backup %s is gone or damaged and the merge state names no tag", o.rel(st.Backup))
	}
	rel := mf.Rel
	if st.File != "" {
		rel = st.File
	}
	b, err = gitShow(ctx, o, st.Tag, rel)
	if err != nil {
		return nil, "", "", fmt.Errorf("read the pre-merge file from tag %s: %w", st.Tag, err)
	}
	return b, "tag " + st.Tag, "", nil
}

// checkCompatible: loaded as `docker compose` in the main checkout loads
// it (every profile active, interpolated with the checkout's .env under the
// process environment), the merged file runs the same main stack as the
// pre-merge file, every service and every field, but for the differences
// accepted by name. It also lists the variables the merged file reads that
// the pre-merge file did not.
func checkCompatible(ctx context.Context, o Options, subj subject) (Item, []Difference, []Variable) {
	name := ItemCompatible
	if subj.preFrom != "" {
		name = fmt.Sprintf("%s (%s)", ItemCompatible, subj.preFrom)
	}
	switch {
	case subj.preErr != nil:
		return Item{Name: name, Reason: subj.preErr.Error()}, nil, nil
	case subj.pre == nil:
		return Item{Name: name, OK: true, Skipped: true, Reason: "skipped: " + subj.preNote}, nil, nil
	}
	env, err := loadMainEnv(o)
	if err != nil {
		return Item{Name: name, Reason: err.Error()}, nil, nil
	}
	prev, err := load(ctx, o.Dir, o.mainPath(), subj.pre, env.vars, every)
	if err != nil {
		return Item{Name: name, Reason: "the pre-merge file does not load: " + err.Error()}, nil, nil
	}
	cur, err := load(ctx, o.Dir, o.mainPath(), subj.merged, env.vars, every)
	if err != nil {
		return Item{Name: name, Reason: err.Error()}, nil, nil
	}
	vars := newVariables(prev, cur, env)
	diffs := compareProjects(prev.Project, cur.Project, o.Dir, o.Profile.InstanceLabel)
	unused := applyAccept(diffs, o.Accept, subj.recorded)
	var refused, accepted, dropped []string
	for _, d := range diffs {
		switch {
		case d.Accepted:
			accepted = append(accepted, d.String())
		case d.Dropped():
			dropped = append(dropped, d.Service)
		default:
			refused = append(refused, d.String())
		}
	}
	var problems []string
	if len(dropped) > 0 {
		problems = append(problems, fmt.Sprintf("the merged file drops %s %s, which the main file has (a merge never removes a service definition, whatever its profiles)",
			text.Plural(len(dropped), "service", "services"), strings.Join(dropped, ", ")))
	}
	if len(refused) > 0 {
		problems = append(problems, fmt.Sprintf("%d %s not accepted:\n    %s", len(refused), text.Plural(len(refused), "change", "changes"), strings.Join(refused, "\n    ")))
	}
	for _, e := range unused {
		msg := fmt.Sprintf("-accept %s: no such difference", e)
		if e == "*.service" && len(dropped) > 0 {
			msg += " (a dropped service is accepted only by its own name, such as " + dropped[0] + ".service)"
		}
		problems = append(problems, msg)
	}
	if _, err := load(ctx, o.Dir, o.mainPath(), subj.merged, env.vars, nil); err != nil {
		problems = append(problems, "docker compose up would refuse the main stack: "+err.Error())
	}
	var notes []string
	if len(vars) > 0 {
		list := make([]string, len(vars))
		for i, v := range vars {
			list[i] = v.String()
		}
		notes = append(notes, fmt.Sprintf("the merged file reads %s the pre-merge file did not: %s",
			text.Plural(len(vars), "a variable", "variables"), strings.Join(list, ", ")))
	}
	if len(problems) > 0 {
		return Item{Name: name, Reason: strings.Join(append(problems, notes...), "\n  ")}, diffs, vars
	}
	it := Item{Name: name, OK: true}
	if len(accepted) > 0 {
		notes = append([]string{fmt.Sprintf("%d accepted %s:\n    %s", len(accepted), text.Plural(len(accepted), "change", "changes"), strings.Join(accepted, "\n    "))}, notes...)
	}
	it.Reason = strings.Join(notes, "\n  ")
	return it, diffs, vars
}
