package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ktrdr/sandboxkit/sandbox"
)

// inParallel runs run(0…n-1) on workers goroutines and returns the results
// in order. run must not call t's FailNow.
func inParallel(workers, n int, run func(i int) result) []result {
	out := make([]result, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				out[i] = run(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

// projectSubnets maps each network of a compose project to its IPv4 subnets.
func projectSubnets(t testing.TB, project string) map[string][]netip.Prefix {
	t.Helper()
	return networkSubnets(t, dockerIDs("network", "ls", "-q", "--filter", "label=com.docker.compose.project="+project))
}

// networkSubnets maps each of the networks ids to its IPv4 subnets.
func networkSubnets(t testing.TB, ids []string) map[string][]netip.Prefix {
	t.Helper()
	out := map[string][]netip.Prefix{}
	if len(ids) == 0 {
		return out
	}
	data, err := exec.Command("docker", append([]string{"network", "inspect", "--format", "{{.Name}}{{range .IPAM.Config}} {{.Subnet}}{{end}}"}, ids...)...).Output()
	if err != nil {
		return out // one removed meanwhile (another test's): the rest is read again by the caller if needed
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		out[f[0]] = nil
		for _, s := range f[1:] {
			p, err := netip.ParsePrefix(s)
			require.NoError(t, err, line)
			if p.Addr().Is4() {
				out[f[0]] = append(out[f[0]], p)
			}
		}
	}
	return out
}

// upPassed reports whether sandbox:up -json printed a passed gate.
func upPassed(r result) bool {
	var u upOut
	return r.Code == 0 && json.Unmarshal([]byte(r.Stdout), &u) == nil && u.Gate != nil && u.Gate.Passed
}

// 35 sandboxes at once on an engine with Docker's default address pools
// (about 30 bridge networks): each of the fixture's two networks gets a
// /27 from the suite's default pool, no two overlap, every gate passes,
// and destroy leaves nothing.
func TestThirtyFiveSandboxesAtOnceGetSubnetsFromThePool(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	e.withShape(t, "subnets")
	e.writeConfig(`{"max_slot": 35}`)
	const n = 35
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%ssn%d", namePrefix, i+1)
	}
	sbx := filepath.Join(binDir, "sbx")
	started := time.Now()

	created := inParallel(4, n, func(i int) result { return e.start(e.Main, sbx, "sandbox:create", names[i], "-standin")() })
	for i, r := range created {
		require.Equal(t, 0, r.Code, "create %s:\n%s", names[i], r)
	}
	tCreate := time.Since(started)

	upStart := time.Now()
	ups := inParallel(5, n, func(i int) result { return e.start(e.sandboxDir(names[i]), sbx, "sandbox:up", "-json")() })
	tUp := time.Since(upStart)
	for i, r := range ups {
		assert.True(t, upPassed(r), "up %s:\n%s", names[i], r)
	}

	pool := sandbox.DefaultSubnetPool()
	var ours []netip.Prefix
	for _, name := range names {
		id := "ktrdr--" + name
		nets := projectSubnets(t, id)
		assert.Len(t, nets, 2, "%s: the default and the back network", id)
		var rec struct {
			Networks map[string]string `json:"networks"`
		}
		data, err := os.ReadFile(filepath.Join(e.Home, ".ktrdr", "sandbox", "instances", id, sandbox.SubnetsFile))
		if assert.NoError(t, err, id) {
			require.NoError(t, json.Unmarshal(data, &rec))
		}
		for net, subnets := range nets {
			require.Len(t, subnets, 1, net)
			s := subnets[0]
			assert.True(t, pool[0].Contains(s.Addr()), "%s: %s is from the pool %s", net, s, pool)
			assert.Equal(t, 27, s.Bits(), net)
			key := strings.TrimPrefix(net, id+"_")
			assert.Equal(t, s.String(), rec.Networks[key], "%s: the record says what the network has", net)
			ours = append(ours, s)
		}
	}
	assert.Len(t, ours, 2*n, "more networks than Docker's default pools hold")
	for i, a := range ours {
		for _, b := range ours[i+1:] {
			assert.False(t, a.Overlaps(b), "%s and %s overlap", a, b)
		}
	}
	// Nor does any overlap a network that is not the suite's.
	for name, subnets := range networkSubnets(t, dockerIDs("network", "ls", "-q")) {
		if strings.HasPrefix(name, "ktrdr--"+namePrefix+"sn") {
			continue
		}
		for _, s := range subnets {
			for _, o := range ours {
				assert.False(t, s.Overlaps(o), "network %s (%s) overlaps the suite's %s", name, s, o)
			}
		}
	}

	destroyStart := time.Now()
	destroyed := inParallel(5, n, func(i int) result { return e.start(e.sandboxDir(names[i]), sbx, "sandbox:destroy", "-force")() })
	tDestroy := time.Since(destroyStart)
	for i, r := range destroyed {
		assert.Equal(t, 0, r.Code, "destroy %s:\n%s", names[i], r)
		c, v, nw := projectResources("ktrdr--" + names[i])
		assert.Zero(t, c+v+nw, "%s: no container, volume or network left", names[i])
		assert.NoDirExists(t, filepath.Join(e.Home, ".ktrdr", "sandbox", "instances", "ktrdr--"+names[i]), "its record is gone with its folder")
	}
	t.Logf("35 sandboxes, 70 networks: create %s, up %s (5 at a time), destroy %s (5 at a time); total %s",
		tCreate.Round(time.Second), tUp.Round(time.Second), tDestroy.Round(time.Second), time.Since(started).Round(time.Second))
}

// A pool with room for one of the two networks: up refuses before it makes
// anything, naming the pool and the remedy. A wider pool then serves; an up
// on the running stack leaves its networks alone, and the sandbox keeps its
// subnets across down and up.
func TestUpRefusesWhenTheSubnetPoolIsFull(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	e.withShape(t, "subnets")
	const tiny, wider = "10.213.77.0/27", "10.213.77.0/26"
	e.writeConfig(`{"subnet_pool": "` + tiny + `"}`)
	name := namePrefix + "snfull"
	id := "ktrdr--" + name
	e.must(e.Main, "sandbox:create", name, "-standin")
	dir := e.sandboxDir(name)
	state := filepath.Join(e.Home, ".ktrdr", "sandbox", "instances", id)

	r := e.sbx(dir, "sandbox:up")
	assert.Equal(t, 1, r.Code, r.String())
	assert.Contains(t, r.Stderr, "no free subnet in pool "+tiny+" on the local engine for "+id+": it needs 2, 1 free")
	assert.Contains(t, r.Stderr, "nothing was started")
	assert.Contains(t, r.Stderr, "hint: widen subnet_pool in ~/.ktrdr/sandbox/config.json")
	c, v, n := projectResources(id)
	assert.Zero(t, c+v+n, "no container, volume or network was made")
	assert.NoFileExists(t, filepath.Join(state, sandbox.SubnetsFile), "nothing recorded")

	e.writeConfig(`{"subnet_pool": "` + wider + `"}`)
	r = e.sbx(dir, "sandbox:up", "-json")
	require.True(t, upPassed(r), r.String())
	first := projectSubnets(t, id)
	require.Len(t, first, 2)
	for net, s := range first {
		require.Len(t, s, 1, net)
		assert.True(t, netip.MustParsePrefix(wider).Contains(s[0].Addr()), "%s: %s is from the configured pool", net, s[0])
	}
	// A stack that runs keeps its networks: up on it with a service stopped
	// starts that service and leaves the networks as they are.
	networkIDs := dockerIDs("network", "ls", "-q", "--no-trunc", "--filter", "label=com.docker.compose.project="+id)
	require.NoError(t, exec.Command("docker", "stop", "-t", "1", containerOf(t, id, "cache")).Run())
	r = e.sbx(dir, "sandbox:up", "-json")
	require.True(t, upPassed(r), r.String())
	assert.Len(t, dockerIDs("ps", "-q", "--filter", "label=com.docker.compose.project="+id), 4, "every service runs again")
	assert.ElementsMatch(t, networkIDs, dockerIDs("network", "ls", "-q", "--no-trunc", "--filter", "label=com.docker.compose.project="+id), "the same networks, not made anew")

	e.must(dir, "sandbox:down")
	_, _, n = projectResources(id)
	assert.Zero(t, n, "down removes the networks")
	r = e.sbx(dir, "sandbox:up", "-json")
	require.True(t, upPassed(r), r.String())
	assert.Equal(t, first, projectSubnets(t, id), "the same subnets after down and up")

	e.must(dir, "sandbox:destroy", "-force")
	c, v, n = projectResources(id)
	assert.Zero(t, c+v+n)
	assert.NoDirExists(t, state)
}
