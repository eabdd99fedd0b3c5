package sandbox

import (
	"context"
	"errors"
	"regexp"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
)

// An engine fault seen on Docker 20.10 when stacks are taken down side by
// side: a network that has no container left still counts an endpoint, and
// the engine refuses to remove it ("has active endpoints") until it is
// restarted. The stack is down all the same (every container stopped and
// removed, the data kept): down reports the network it left, rather than
// failing a stop that happened.

// leakedNetwork matches compose's report of that refusal.
var leakedNetwork = regexp.MustCompile(`error while removing network: network (\S+) id \S+ has active endpoints`)

// onlyNetworksLeft reports whether err, from compose down of project, is
// only the engine refusing to remove networks of it while no container of
// the project is left; each such network is reported (EvNetworkLeft).
func (m *Manager) onlyNetworksLeft(ctx context.Context, project string, err error) bool {
	var ee *driver.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	found := leakedNetwork.FindAllStringSubmatch(ee.Stderr, -1)
	if len(found) == 0 {
		return false
	}
	states, serr := driver.StackStates(ctx, m.Runner, m.Profile.InstanceLabel)
	if serr != nil {
		return false
	}
	if st := states[project]; st != nil && len(st.Services) > 0 {
		return false
	}
	for _, f := range found {
		m.emit(Event{Kind: EvNetworkLeft, ID: project, Source: f[1]})
	}
	return true
}
