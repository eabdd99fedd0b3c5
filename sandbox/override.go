package sandbox

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// The suite never edits the checkout's compose files. What it adds to a
// sandbox's stack goes into an override file of its own, written before
// each up into the sandbox's state folder (instances/<id>/) and passed to
// compose as the last -f:
//
//   - the instance label on every service, so that the suite recognises
//     its containers whatever the file labels;
//   - in stand-in mode, for every service: the stand-in image (never
//     pulled, never built), its entrypoint, and the role it plays, chosen
//     by kind: db (a PostgreSQL service; with the profile's StandinDBImage
//     it runs that image instead, a real PostgreSQL with its own
//     entrypoint, the file's environment, command and volumes), backend (the API's service),
//     worker (a service that registers with the backend, agents included),
//     jaeger/prometheus/grafana (a service publishing their UI port), and
//     http for anything else (it answers 200 on every port the service
//     publishes or exposes). The file's healthchecks are kept: the stand-in
//     image carries sh, curl, wget and pg_isready to run them.
//
// Healthchecks are never changed: the stack keeps the file's cadence for
// its whole life. What makes the start fast is the layered start
// (start.go), which probes a dependency often only while something waits
// for it. Workers
//     register with the backend and are reached under their container
//     names (containerName), which stay unique on shared networks;
//   - the subnet of each network compose creates for the sandbox, from the
//     suite's pool (subnets.go), as the network's ipam config.

// OverrideFile is the name of the suite's override file in the instance folder.
const OverrideFile = "compose.override.json"

// overrideDoc builds the override of instance id for the stack file sf and
// the adapted profile sp.
func overrideDoc(sp *Profile, sf *StackFile, id string, standin bool, synced map[string]string, subnets map[string]netip.Prefix) ([]byte, error) {
	services := map[string]any{}
	volumes := map[string]any{}
	api, _ := sp.Rule(sp.APIPortKey)
	backendURL := ""
	if s, ok := sf.Service(api.Service); ok {
		for _, p := range s.Ports {
			if p.Var == sp.APIPortKey {
				backendURL = fmt.Sprintf("http://%s:%d", containerName(id, api.Service), p.Target)
				break
			}
		}
	}
	for _, fs := range sf.Services {
		svc := sf.project.Services[fs.Name]
		o := map[string]any{"labels": map[string]string{sp.InstanceLabel: id}}
		// On another engine each bind mount of a local folder is the
		// sandbox's volume of that folder (sync.go), at the same target.
		var mounts []any
		for _, v := range svc.Volumes {
			name, ok := synced[v.Source]
			if v.Type != types.VolumeTypeBind || !ok {
				continue
			}
			key := "sandbox-sync-" + name[len(name)-8:]
			volumes[key] = map[string]any{"name": name, "external": true}
			mounts = append(mounts, map[string]any{"type": "volume", "source": key, "target": v.Target, "read_only": v.ReadOnly})
		}
		if len(mounts) > 0 {
			o["volumes"] = mounts
		}
		if standin && sp.StandinDBImage != "" && standinRole(sp, fs) == "db" {
			// A real PostgreSQL (driver.BuildPostgresImage): its own
			// entrypoint reads the file's POSTGRES_* and keeps its data in
			// the file's volume; the file's command reaches the server.
			o["image"] = sp.StandinDBImage
			o["pull_policy"] = "never"
			o["entrypoint"] = []string{"/standin", "pg-entrypoint"}
		} else if standin {
			role := standinRole(sp, fs)
			env := map[string]string{"KTRDR_STANDIN_ROLE": role}
			if len(fs.Targets) > 0 {
				ports := make([]string, len(fs.Targets))
				for i, t := range fs.Targets {
					ports[i] = strconv.Itoa(t)
				}
				env["KTRDR_STANDIN_PORTS"] = strings.Join(ports, ",")
			}
			if role == "worker" {
				port := 5003
				if len(fs.Targets) > 0 {
					port = fs.Targets[0]
				}
				env["WORKER_ID"] = fs.Name
				env["WORKER_PORT"] = strconv.Itoa(port)
				env["WORKER_ENDPOINT_URL"] = fmt.Sprintf("http://%s:%d", containerName(id, fs.Name), port)
				env["WORKER_TYPE"] = fs.WorkerType
				if backendURL != "" {
					env["KTRDR_API_URL"] = backendURL
				}
			}
			o["image"] = sp.StandinImage
			o["pull_policy"] = "never"
			o["entrypoint"] = []string{"/standin"}
			o["command"] = []string{role}
			o["environment"] = env
		}
		services[fs.Name] = o
	}
	doc := map[string]any{"services": services}
	if len(volumes) > 0 {
		doc["volumes"] = volumes
	}
	if len(subnets) > 0 {
		doc["networks"] = subnetOverride(subnets) // each network's subnet from the pool (subnets.go)
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	// Compose interpolates every file; nothing written here is a variable.
	return []byte(strings.ReplaceAll(string(data), "$", "$$")), nil
}

// containerName is the name compose gives the first container of service
// in project. Workers reach the backend, and the backend its workers, by
// these names rather than by service name: on a network shared with other
// stacks (an external one) a service name may resolve to another
// sandbox's container, a container name never does.
func containerName(project, service string) string { return project + "-" + service + "-1" }

// standinRole is the stand-in role that plays service fs.
func standinRole(sp *Profile, fs FileService) string {
	api, _ := sp.Rule(sp.APIPortKey)
	switch {
	case fs.Name == api.Service:
		return "backend"
	case fs.IsDB():
		return "db"
	case fs.WorkerType != "":
		return "worker"
	}
	for _, t := range fs.Targets {
		switch t {
		case 16686:
			return "jaeger"
		case 9090:
			return "prometheus"
		case 3000:
			return "grafana"
		}
	}
	return "http"
}

// writeOverride writes the override of instance id and returns its path.
func (m *Manager) writeOverride(sp *Profile, sf *StackFile, id string, standin bool, synced map[string]string, subnets map[string]netip.Prefix) (string, error) {
	data, err := overrideDoc(sp, sf, id, standin, synced, subnets)
	if err != nil {
		return "", fmt.Errorf("write the compose override of %s: %w", id, err)
	}
	dir, err := m.ownInstanceDir(id)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, OverrideFile)
	if err := WriteFileAtomic(path, data, 0o644); err != nil {
		return "", err
	}
	return path, nil
}

// sortedServiceNames lists the services of sf.
func (sf *StackFile) sortedServiceNames() []string {
	names := make([]string, 0, len(sf.Services))
	for _, s := range sf.Services {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names
}
