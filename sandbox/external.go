package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
)

// MissingExternalError names the external networks and volumes that a
// stack file needs and the engine lacks. Nothing was started.
type MissingExternalError struct {
	File     string
	Engine   Engine
	Networks []string
	Volumes  []string
}

func (e *MissingExternalError) Error() string {
	var parts []string
	if len(e.Networks) > 0 {
		parts = append(parts, "network "+strings.Join(e.Networks, ", network "))
	}
	if len(e.Volumes) > 0 {
		parts = append(parts, "volume "+strings.Join(e.Volumes, ", volume "))
	}
	engine := "the Docker engine"
	if e.Engine.Context != "" {
		engine = "Docker engine " + e.Engine.Name()
	}
	return fmt.Sprintf("%s needs external %s, which %s does not have; nothing was started", e.File, strings.Join(parts, " and "), engine)
}

// Commands returns the docker commands that create what is missing.
func (e *MissingExternalError) Commands() []string {
	docker := "docker"
	if e.Engine.Context != "" {
		docker += " --context " + e.Engine.Context
	}
	var cmds []string
	for _, n := range e.Networks {
		cmds = append(cmds, docker+" network create "+n)
	}
	for _, v := range e.Volumes {
		cmds = append(cmds, docker+" volume create "+v)
	}
	return cmds
}

// checkExternal asks the engine for each external network and volume of sf
// and returns a *MissingExternalError naming those it lacks.
func (m *Manager) checkExternal(ctx context.Context, sf *StackFile) error {
	missing := &MissingExternalError{File: sf.Path, Engine: m.engine}
	probe := func(kind, name string) (bool, error) {
		_, err := m.Runner.Run(ctx, driver.Cmd{Name: "docker", Args: []string{kind, "inspect", "--format", "{{.Name}}", name}})
		var ee *driver.ExitError
		switch {
		case err == nil:
			return true, nil
		case errors.As(err, &ee) && ee.Code == 1:
			return false, nil
		default:
			return false, fmt.Errorf("ask the Docker engine for external %s %s: %w", kind, name, err)
		}
	}
	for _, n := range sf.ExternalNetworks {
		ok, err := probe("network", n)
		if err != nil {
			return err
		}
		if !ok {
			missing.Networks = append(missing.Networks, n)
		}
	}
	for _, v := range sf.ExternalVolumes {
		ok, err := probe("volume", v)
		if err != nil {
			return err
		}
		if !ok {
			missing.Volumes = append(missing.Volumes, v)
		}
	}
	if len(missing.Networks)+len(missing.Volumes) > 0 {
		return missing
	}
	return nil
}
