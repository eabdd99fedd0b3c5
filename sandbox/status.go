package sandbox

import (
	"context"
	"fmt"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
)

// Status is the state of one sandbox: the JSON shape of `sandbox:status
// -json`, which scripts may rely on (fields are only ever added).
type Status struct {
	ID         string                `json:"id"`
	Slot       int                   `json:"slot"`
	Path       string                `json:"path"`
	Branch     string                `json:"branch"`
	Registered bool                  `json:"registered"`
	IsWorktree bool                  `json:"is_worktree"`
	State      string                `json:"state"` // running, partial x/y, stopped
	Services   []driver.ServiceState `json:"services"`
	URLs       []NamedURL            `json:"urls"`
	Ports      map[string]int        `json:"ports"`
	Engine     string                `json:"engine"`            // "local", or the Docker context of another engine
	LastGate   *LastGate             `json:"last_gate"`         // null until a gate has run
	Warning    string                `json:"warning,omitempty"` // e.g. docker could not be asked
}

// StatusOptions are the inputs of Status.
type StatusOptions struct {
	Dir string // a folder of the sandbox
}

// Status reports the sandbox that holds o.Dir.
func (m *Manager) Status(ctx context.Context, o StatusOptions) (*Status, error) {
	l, err := m.locate(o.Dir)
	if err != nil {
		return nil, err
	}
	// The stack the file describes; a file that does not load still leaves
	// the env file's own view.
	p := m.Profile
	var fileWarning string
	// A file may require a secret (${VAR:?}): read it with them, in memory;
	// what Status returns is masked.
	sec := m.bestEffortSecrets(ctx)
	l.Secrets = sec
	if sp, _, err := m.locatedStack(ctx, &l); err == nil {
		p = sp
	} else {
		fileWarning = sec.Mask(err.Error())
	}
	id := l.Env.InstanceID
	m = m.on(l.Env.Engine)
	s := &Status{ID: id, Slot: l.Env.Slot, Path: l.Root, Branch: readBranch(l.Root), Ports: l.Env.Ports, Engine: l.Env.Engine.Name(),
		URLs: p.URLsOn(l.Env.Engine, l.Env.Ports), Services: []driver.ServiceState{}, LastGate: m.lastGate(id)}
	for i := range s.URLs {
		s.URLs[i].URL = sec.Mask(s.URLs[i].URL)
	}
	if s.LastGate != nil {
		sec.maskGate(&s.LastGate.Result)
	}
	if _, in, ok, err := m.Registry().Lookup(l.Root); err != nil {
		return nil, err
	} else if ok {
		s.Registered, s.IsWorktree = true, in.IsWorktree
	}
	states, err := driver.StackStates(ctx, m.Runner, m.Profile.InstanceLabel)
	if err != nil {
		s.Warning = fmt.Sprintf("states unknown: %v", err)
	}
	if fileWarning != "" && s.Warning == "" {
		s.Warning = "services unknown: " + fileWarning
	}
	st := states[id]
	s.State, _ = m.state(st, len(p.Services))
	if s.Warning != "" {
		s.State = StateUnknown
	}
	for _, svc := range p.Services {
		ss := driver.ServiceState{Service: svc.Name, State: "not created"}
		if s.Warning != "" {
			ss.State = StateUnknown
		}
		if st != nil {
			if got, ok := st.Services[svc.Name]; ok {
				ss = got
			}
		}
		s.Services = append(s.Services, ss)
	}
	return s, nil
}
