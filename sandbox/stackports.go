package sandbox

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/ktrdr/sandboxkit/sandbox/composefile"
)

// How the ports of a stack are known. The text of a ports entry says too
// little ("7000:${TOOLS_PORT:-7000}" has its variable on the container
// side; "${A:-8000}" and "${A:-8001}" in two services are one port in a
// sandbox; ranges and long syntax have shapes of their own), so the suite
// asks compose-go three times, with every profile active:
//
//   - actual: the sandbox's own variables (its env file): what compose
//     will publish for it;
//   - slot 0: without the port variables: the files' defaults, what the
//     main checkout publishes;
//   - probe: every variable that appears in a ports entry set to a
//     distinct otherwise unused port, and the sandbox's identity
//     (COMPOSE_PROJECT_NAME, INSTANCE_ID, SLOT_NUMBER) changed.
//
// A published host port that is a variable's probe value follows that
// variable (its slot-0 port is the slot-0 model's); one that does not
// change is literal: the same in every sandbox. A probe value on the
// container side, a variable that sets two different host ports, a port
// whose shape changes with its variable are named and refused or warned
// about; so are literal ports and ranges, services on the host's network,
// and volumes whose name does not change with the sandbox.

// PortPlanError refuses a stack file whose published ports the suite cannot
// plan for every slot. Nothing was made.
type PortPlanError struct {
	File    string
	Service string
	Reason  string
}

func (e *PortPlanError) Error() string {
	if e.Service == "" {
		return fmt.Sprintf("%s: %s", e.File, e.Reason)
	}
	return fmt.Sprintf("%s: service %s: %s", e.File, e.Service, e.Reason)
}

// portModels are the three readings of one stack.
type portModels struct {
	actual, slot0, probe *types.Project
	sentinel             map[int]string // probe port → variable
}

// probeIdentity is what the probe sets for the variables that make a
// sandbox's names its own.
var probeIdentity = map[string]string{"COMPOSE_PROJECT_NAME": "sandbox-probe", "INSTANCE_ID": "sandbox-probe", "SLOT_NUMBER": "997"}

func loadPortModels(ctx context.Context, src composefile.Source) (*portModels, error) {
	name := "sandbox-model"
	if n := src.Env["COMPOSE_PROJECT_NAME"]; n != "" {
		name = n
	}
	opened, err := composefile.Open(ctx, src)
	if err != nil {
		return nil, err
	}
	actual, err := opened.Load(ctx, name, composefile.Every)
	if err != nil {
		return nil, err
	}
	raw, err := opened.Model(ctx, name)
	if err != nil {
		return nil, err
	}
	// load reads the same files with other variables (the walk is done
	// again only if a path uses one of them).
	load := func(env map[string]string, name string) (*types.Project, error) {
		o, err := opened.WithEnv(ctx, env)
		if err != nil {
			return nil, err
		}
		return o.Load(ctx, name, composefile.Every)
	}
	vars := portVariableNames(raw)
	base := maps.Clone(src.Env)
	for _, v := range vars {
		delete(base, v)
	}
	slot0 := actual // when no port variable is set (a new sandbox), actual is slot 0
	if len(base) != len(src.Env) {
		if slot0, err = load(base, name); err != nil {
			return nil, err
		}
	}
	pm := &portModels{actual: actual, slot0: slot0, sentinel: map[int]string{}}
	probeEnv := maps.Clone(base)
	if probeEnv == nil {
		probeEnv = map[string]string{}
	}
	maps.Copy(probeEnv, probeIdentity)
	used := publishedPorts(slot0, actual)
	next := 60001
	for _, v := range vars {
		for used[next] {
			next++
		}
		if next > 65535 {
			return nil, fmt.Errorf("the files use more port variables (%d) than the suite can tell apart", len(vars))
		}
		pm.sentinel[next] = v
		probeEnv[v] = strconv.Itoa(next)
		next++
	}
	if pm.probe, err = load(probeEnv, "sandbox-probe"); err != nil {
		return nil, &PortPlanError{File: src.Files[0], Reason: fmt.Sprintf("with its port variables (%s) set to other ports, compose refuses it (%v): a port variable must set exactly one host port", strings.Join(vars, ", "), err)}
	}
	return pm, nil
}

// portVariableNames lists the variables that any ports entry of any
// service of the uninterpolated model uses, sorted.
func portVariableNames(raw map[string]any) []string {
	services, _ := raw["services"].(map[string]any)
	set := map[string]bool{}
	for _, s := range services {
		svc, _ := s.(map[string]any)
		for name := range template.ExtractVariables(map[string]any{"ports": svc["ports"]}, template.DefaultPattern) {
			set[name] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// publishedPorts is every single host port the projects publish.
func publishedPorts(ps ...*types.Project) map[int]bool {
	used := map[int]bool{}
	for _, p := range ps {
		for _, s := range p.Services {
			for _, port := range s.Ports {
				first, last, ok := portRange(port.Published)
				for n := first; ok && n <= last; n++ {
					used[n] = true
				}
			}
		}
	}
	return used
}

// portRange reads "8000" or "9000-9005".
func portRange(s string) (int, int, bool) {
	a, b, isRange := strings.Cut(s, "-")
	first, err := strconv.Atoi(a)
	if err != nil {
		return 0, 0, false
	}
	last := first
	if isRange {
		if last, err = strconv.Atoi(b); err != nil || last < first {
			return 0, 0, false
		}
	}
	return first, last, true
}

// service reads one service and its published ports from the three models.
func (pm *portModels) service(name string) (FileService, error) {
	svc := pm.actual.Services[name]
	fs := fileService(name, svc)
	zero, probe := pm.slot0.Services[name].Ports, pm.probe.Services[name].Ports
	if len(zero) != len(svc.Ports) || len(probe) != len(svc.Ports) {
		return fs, fmt.Errorf("its ports change in number with their variables (%d in this sandbox, %d in the main checkout): a port variable must set one port", len(svc.Ports), len(zero))
	}
	for i, p := range svc.Ports {
		if v, ok := pm.sentinel[int(probe[i].Target)]; ok {
			return fs, fmt.Errorf("${%s} sets the container side of a published port (%s): the host port would be the same in every sandbox; put the variable on the host side (\"${%s:-%s}:%d\")", v, portText(p), v, zero[i].Published, zero[i].Target)
		}
		if p.Published == "" {
			continue // compose picks a free host port: nothing to plan
		}
		first, _, ok := portRange(probe[i].Published)
		if v, isVar := pm.sentinel[first]; ok && isVar {
			if probe[i].Published != strconv.Itoa(first) {
				return fs, fmt.Errorf("${%s} starts a host port range (%s): a port variable must set one port", v, portText(p))
			}
			def, err := strconv.Atoi(zero[i].Published)
			if zero[i].Published != "" && err != nil {
				return fs, fmt.Errorf("${%s}'s default %q is not one port", v, zero[i].Published)
			}
			fs.Ports = append(fs.Ports, FilePort{Var: v, Default: def, Target: int(p.Target)})
			continue
		}
		if probe[i].Published != zero[i].Published {
			return fs, fmt.Errorf("its host port %s changes with a variable in a way the suite cannot plan (main %s, probe %s): use \"${VAR:-port}:target\"", portText(p), zero[i].Published, probe[i].Published)
		}
		lo, hi, ok := portRange(zero[i].Published)
		if !ok {
			return fs, fmt.Errorf("its host port %q is not a port or a range", zero[i].Published)
		}
		fp := FilePort{Default: lo, Target: int(p.Target)}
		if hi != lo {
			fp.Range = zero[i].Published
		}
		fs.Ports = append(fs.Ports, fp)
	}
	return fs, nil
}

func portText(p types.ServicePortConfig) string {
	s := strconv.Itoa(int(p.Target))
	if p.Published != "" {
		s = p.Published + ":" + s
	}
	if p.Protocol != "" && p.Protocol != "tcp" {
		s += "/" + p.Protocol
	}
	return s
}

// checkSharedVariables refuses a variable that sets the host port of two
// different published ports: in a sandbox both get its one value (in the
// main checkout their defaults may differ). The same container port over
// two protocols is one port.
func (sf *StackFile) checkSharedVariables() error {
	type use struct {
		service string
		target  int
	}
	first := map[string]use{}
	for _, s := range sf.all() {
		for _, p := range s.Ports {
			if p.Var == "" {
				continue
			}
			u, seen := first[p.Var]
			if !seen {
				first[p.Var] = use{s.Name, p.Target}
				continue
			}
			if u.service != s.Name || u.target != p.Target {
				return &PortPlanError{File: sf.Path, Service: s.Name, Reason: fmt.Sprintf("${%s} also sets the host port of %s (container port %d): in a sandbox both would publish the same port; give each its own variable", p.Var, u.service, u.target)}
			}
		}
	}
	return nil
}

// warn names what every sandbox shares: literal host ports and ranges,
// services on the host's network, volumes whose name is fixed.
func (sf *StackFile) warn(pm *portModels) {
	for _, s := range sf.all() {
		for _, p := range s.Ports {
			switch {
			case p.Range != "":
				sf.Warnings = append(sf.Warnings, StackWarning{Service: s.Name, Text: fmt.Sprintf("publishes the literal host range %s: every slot publishes it, so only one sandbox (or the main stack) at a time can run", p.Range)})
			case p.Var == "":
				sf.Warnings = append(sf.Warnings, StackWarning{Service: s.Name, Text: fmt.Sprintf("publishes the literal host port %d: every slot publishes it, so only one sandbox (or the main stack) at a time can run; use ${VAR:-%d} in the file", p.Default, p.Default)})
			}
		}
		if s.HostNet {
			ports := "its ports"
			if len(s.Targets) > 0 {
				ports = "ports " + joinInts(s.Targets)
			}
			sf.Warnings = append(sf.Warnings, StackWarning{Service: s.Name, Text: fmt.Sprintf("uses the host's network (network_mode: host): it binds %s on the host in every sandbox", ports)})
		}
	}
	for key, v := range pm.actual.Volumes {
		if bool(v.External) || v.Name == "" {
			continue
		}
		if pv, ok := pm.probe.Volumes[key]; ok && pv.Name == v.Name {
			sf.SharedVolumes = append(sf.SharedVolumes, SharedVolume{Key: key, Name: v.Name})
			sf.Warnings = append(sf.Warnings, StackWarning{Text: fmt.Sprintf("volume %s is named %s in the file: every sandbox and the main stack share it", key, v.Name)})
		}
	}
	slices.SortFunc(sf.SharedVolumes, func(a, b SharedVolume) int { return strings.Compare(a.Key, b.Key) })
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

// warnStack reports each warning of the stack file as an event.
func (m *Manager) warnStack(sf *StackFile) {
	for _, w := range sf.Warnings {
		m.emit(Event{Kind: EvStackWarning, Source: sf.Path, Service: w.Service, Err: w.Text})
	}
}
