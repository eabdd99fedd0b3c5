package sandbox

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
)

func TestOnlyNetworksLeft(t *testing.T) {
	leak := &driver.ExitError{Code: 1, Stderr: " Network ktrdr--x_default  Error\nfailed to remove network ktrdr--x_default: Error response from daemon: error while removing network: network ktrdr--x_default id 8b77a7ece0f8 has active endpoints\n"}
	for name, c := range map[string]struct {
		err        error
		containers string // docker ps answer
		want       bool
	}{
		"the engine keeps a network with no container left": {leak, "", true},
		"a container is left":                               {leak, "ktrdr--x\tdb\trunning\t\torg.ktrdr.sandbox.instance=ktrdr--x\n", false},
		"another failure":                                   {&driver.ExitError{Code: 1, Stderr: "no such service"}, "", false},
		"not compose's exit":                                {errors.New("interrupted"), "", false},
	} {
		t.Run(name, func(t *testing.T) {
			var events []Event
			f := &fakeRunner{handle: func(cmd driver.Cmd) ([]byte, error) { return []byte(c.containers), nil }}
			m := &Manager{Profile: KTRDR(), Home: t.TempDir(), Runner: f, Events: func(e Event) { events = append(events, e) }}
			assert.Equal(t, c.want, m.onlyNetworksLeft(context.Background(), "ktrdr--x", c.err))
			if c.want {
				assert.Equal(t, []Event{{Kind: EvNetworkLeft, ID: "ktrdr--x", Source: "ktrdr--x_default"}}, events)
			} else {
				assert.Empty(t, events)
			}
		})
	}
}
