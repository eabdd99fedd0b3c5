package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// kill -9 of the MCP server (its whole process group) during a create with
// up, at two moments: just after the slot was reserved (git is making the
// worktree) and once the stack starts. A new server lists the sandbox and
// destroys it, and nothing of it is left.
func TestMCPServerKilledDuringCreate(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	ctx := t.Context()
	for i, moment := range []string{"Reserved slot", "Starting "} {
		name := fmt.Sprintf("%skill%d", namePrefix, i)
		project := "ktrdr--" + name
		hit := make(chan struct{})
		var once sync.Once
		srv := startMCP(t, e, ctx, func(msg string) {
			if strings.HasPrefix(msg, moment) {
				once.Do(func() { close(hit) })
			}
		})
		p := &mcp.CallToolParams{Name: "create", Arguments: map[string]any{"name": name, "standin": true, "up": true}}
		p.SetProgressToken(name)
		called := make(chan error, 1)
		go func() {
			res, err := srv.cs.CallTool(ctx, p)
			if err == nil {
				err = fmt.Errorf("the call ended: error %v", res.IsError)
			}
			called <- err
		}()
		select {
		case <-hit:
		case err := <-called:
			t.Fatalf("create ended before %q: %v", moment, err)
		case <-time.After(3 * time.Minute):
			t.Fatalf("no %q in 3 minutes", moment)
		}
		srv.kill()
		<-srv.exited
		t.Logf("killed at %q", moment)

		again := startMCP(t, e, ctx, nil)
		res, err := again.cs.CallTool(ctx, &mcp.CallToolParams{Name: "list"})
		require.NoError(t, err)
		require.False(t, res.IsError)
		listed, err := json.Marshal(res.StructuredContent)
		require.NoError(t, err)
		assert.Contains(t, string(listed), `"`+project+`"`, "the half-made sandbox is listed")

		res, err = again.cs.CallTool(ctx, &mcp.CallToolParams{Name: "destroy", Arguments: map[string]any{"name": name, "force": true}})
		require.NoError(t, err)
		require.False(t, res.IsError, "destroy after the kill: %v", res.Content)
		c, v, n := projectResources(project)
		assert.Zero(t, c+v+n, "no containers, volumes or networks of %s", project)
		assert.NoDirExists(t, e.sandboxDir(name))
		reg, _ := os.ReadFile(filepath.Join(e.Home, ".ktrdr", "sandbox", "instances.json"))
		assert.NotContains(t, string(reg), project)
		assert.False(t, e.hasBranch(name), "the branch create made is gone")
		require.NoError(t, again.cs.Close())
	}
}
