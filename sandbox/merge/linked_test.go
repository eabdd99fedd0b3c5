package merge

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A project laid out the way some real ones are: docker-compose.yml is a
// committed symbolic link to the file of one deployment environment, and
// the main file has services the suite knows nothing about: tool
// containers attached over stdio (one of them only for a profile) and
// agents on ports of their own.
const (
	linkText  = "deploy/environments/local/docker-compose.yml"
	linkedRel = "deploy/environments/local/docker-compose.yml"
)

// toolServices are in the main file and, unless a test drops them, in the
// merge source.
const toolServices = `
  mcp-local:
    image: ktrdr-tools:dev
    command: ["python", "-m", "tools.mcp", "--api", "http://backend:8000/api/v1"]
    stdin_open: true
    tty: false
    restart: "no"

  mcp-preprod:
    image: ktrdr-tools:dev
    command: ["python", "-m", "tools.mcp", "--api", "https://preprod.example.invalid/api/v1"]
    stdin_open: true
    profiles: [preprod]
`

// agentsMain publish fixed ports in the pre-merge file; agentsParam publish
// the same ports through variables the port table does not know.
const (
	agentsMain = `
  design-agent:
    image: ktrdr-agent:dev
    command: ["agent", "--role", "design", "--port", "5010"]
    ports:
      - "5010:5010"

  assessment-agent:
    image: ktrdr-agent:dev
    command: ["agent", "--role", "assessment", "--port", "5020"]
    ports:
      - "5020:5020"
`
	agentsParam = `
  design-agent:
    image: ktrdr-agent:dev
    command: ["agent", "--role", "design", "--port", "5010"]
    ports:
      - "${KTRDR_DESIGN_AGENT_PORT:-5010}:5010"

  assessment-agent:
    image: ktrdr-agent:dev
    command: ["agent", "--role", "assessment", "--port", "5020"]
    ports:
      - "${KTRDR_ASSESSMENT_AGENT_PORT:-5020}:5020"
`
)

// withServices inserts services at the end of the services: of a compose
// file of this repository.
func withServices(t testing.TB, file string, services ...string) []byte {
	t.Helper()
	s := string(readT(t, file))
	require.Contains(t, s, "\nvolumes:\n", "the compose files changed: update this test")
	return []byte(strings.Replace(s, "\nvolumes:\n", strings.Join(services, "")+"\nvolumes:\n", 1))
}

// linkedRepo is a checkout whose committed docker-compose.yml is a link to
// deploy/environments/local/docker-compose.yml, which holds main; the merge
// source, docker-compose.sandbox.yml, holds source. Everything is committed.
func linkedRepo(t *testing.T, main, source []byte) string {
	t.Helper()
	dir := newRepoWith(t, main)
	link := filepath.Join(dir, "docker-compose.yml")
	target := filepath.Join(dir, linkedRel)
	require.NoError(t, os.MkdirAll(filepath.Dir(target), 0o755))
	require.NoError(t, os.Rename(link, target))
	require.NoError(t, os.Symlink(linkText, link))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "docker-compose.sandbox.yml"), source, 0o644))
	gitT(t, dir, "add", "-A")
	gitT(t, dir, "commit", "-q", "-m", "compose file per environment, linked")
	require.Empty(t, gitT(t, dir, "status", "--porcelain", "--untracked-files=all"), "a clean checkout")
	return dir
}

// linkedMain is the pre-merge file: this repository's main file with the
// tool services and the agents on fixed ports.
func linkedMain(t testing.TB) []byte {
	return withServices(t, "../../docker-compose.yml", toolServices, agentsMain)
}

// assertLink checks that docker-compose.yml is still the same link.
func assertLink(t *testing.T, dir string) {
	t.Helper()
	link := filepath.Join(dir, "docker-compose.yml")
	fi, err := os.Lstat(link)
	require.NoError(t, err)
	assert.NotZero(t, fi.Mode()&fs.ModeSymlink, "docker-compose.yml is still a link")
	l, err := os.Readlink(link)
	require.NoError(t, err)
	assert.Equal(t, linkText, l, "the link's text is byte-identical")
}

// A clean checkout whose docker-compose.yml is a link is clean: the check
// compares the target's content at HEAD with the target, not the link's
// text. A changed target, or a link repointed since HEAD, is refused.
func TestLinkedMainFileCleanCheck(t *testing.T) {
	t.Parallel()
	source := withServices(t, "../../docker-compose.sandbox.yml", toolServices, agentsParam)
	tests := []struct {
		name    string
		change  func(t *testing.T, dir string)
		wantErr string
	}{
		{"clean", func(*testing.T, string) {}, ""},
		{"target edited", func(t *testing.T, dir string) {
			f := filepath.Join(dir, linkedRel)
			require.NoError(t, os.WriteFile(f, append(readT(t, f), "# local edit\n"...), 0o644))
		}, linkedRel + " (the target of the link docker-compose.yml) has uncommitted changes"},
		{"link repointed", func(t *testing.T, dir string) {
			other := filepath.Join(dir, "deploy", "environments", "other", "docker-compose.yml")
			require.NoError(t, os.MkdirAll(filepath.Dir(other), 0o755))
			require.NoError(t, os.WriteFile(other, readT(t, filepath.Join(dir, linkedRel)), 0o644))
			gitT(t, dir, "add", other)
			gitT(t, dir, "commit", "-q", "-m", "another environment")
			link := filepath.Join(dir, "docker-compose.yml")
			require.NoError(t, os.Remove(link))
			require.NoError(t, os.Symlink("deploy/environments/other/docker-compose.yml", link))
		}, "docker-compose.yml is a link to deploy/environments/other/docker-compose.yml, but HEAD has it as a link to " + linkText},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := linkedRepo(t, linkedMain(t), source)
			tt.change(t, dir)
			before := snapshot(t, dir)

			res, err := Apply(t.Context(), opts(dir))
			if tt.wantErr == "" {
				require.NoError(t, err, "%v", res.Report.Items)
				assert.Equal(t, testTag, res.Tag)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.NotContains(t, err.Error(), "sandbox-merge/", "refused before any tag")
			assert.Equal(t, before, snapshot(t, dir), "nothing changed in the checkout")
			assert.Empty(t, gitT(t, dir, "tag", "--list"))
			assert.NoDirExists(t, filepath.Join(homeOf(dir), ".ktrdr"), "no merge state")
		})
	}
}

// Apply writes the merged content to the link's target; the link stays the
// same link; the backup, the tag, the state, Verify and Rollback all cover
// the target.
func TestLinkedApplyWritesTheTargetAndKeepsTheLink(t *testing.T) {
	t.Parallel()
	main := linkedMain(t)
	source := withServices(t, "../../docker-compose.sandbox.yml", toolServices, agentsParam)
	dir := linkedRepo(t, main, source)
	target := filepath.Join(dir, linkedRel)

	res, err := Apply(t.Context(), opts(dir))
	require.NoError(t, err, "%v", res.Report.Items)
	assert.Equal(t, target, res.File)
	assertLink(t, dir)
	merged := readT(t, target)
	assert.True(t, strings.HasSuffix(string(merged), string(source)), "the target holds the merged file")
	assert.Equal(t, " M "+linkedRel+"\n", gitT(t, dir, "status", "--porcelain", "--untracked-files=all"), "only the target changed")

	s := storeOf(t, dir)
	assert.Equal(t, main, readT(t, s.backupPath()), "the backup is the target's pre-merge content")
	assert.Equal(t, string(main), gitT(t, dir, "show", testTag+":"+linkedRel), "the tag holds the target")
	assert.Equal(t, linkText, gitT(t, dir, "show", testTag+":docker-compose.yml"), "and the link")
	st, err := readState(s)
	require.NoError(t, err)
	assert.Equal(t, linkedRel, st.File)
	assert.Equal(t, sum(main), st.SHA256)
	assert.Equal(t, sum(merged), st.MergedSHA256)

	rep, err := Verify(t.Context(), opts(dir))
	require.NoError(t, err)
	assert.True(t, rep.OK(), "%v", rep.Items)

	rb, err := Rollback(t.Context(), opts(dir))
	require.NoError(t, err)
	assert.Equal(t, RestoredFromBackup, rb.Action)
	assert.Equal(t, target, rb.File)
	assert.Equal(t, linkedRel, rb.Rel)
	assert.Contains(t, rb.Message, "restored "+linkedRel+" (the target of the link docker-compose.yml) from the backup")
	assert.Equal(t, main, readT(t, target), "byte for byte")
	assertLink(t, dir)
	assert.Empty(t, gitT(t, dir, "status", "--porcelain", "--untracked-files=all"), "the checkout is as committed")
}

// A merge source that lacks services of the main file is refused, naming
// them, whether they run by default or only for a profile; nothing changes
// (link, target, tree, tags, state). Only -accept entries naming each
// dropped service accept it: field entries and *.service do not.
func TestDroppedServicesAreRefused(t *testing.T) {
	t.Parallel()
	source := withServices(t, "../../docker-compose.sandbox.yml", agentsParam) // no mcp-local, no mcp-preprod
	tests := []struct {
		name    string
		accept  []string
		wantErr []string
	}{
		{"no accept", nil, []string{"the merged file drops services mcp-local, mcp-preprod, which the main file has"}},
		{"field accepts", []string{"*.environment", "*.profiles", "*.image"}, []string{"drops services mcp-local, mcp-preprod"}},
		{"*.service", []string{"*.service"}, []string{
			"drops services mcp-local, mcp-preprod",
			"-accept *.service: no such difference (a dropped service is accepted only by its own name, such as mcp-local.service)",
		}},
		{"one of two by name", []string{"mcp-local.service"}, []string{"the merged file drops service mcp-preprod, which the main file has"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := linkedRepo(t, linkedMain(t), source)
			before := snapshot(t, dir)
			head := gitT(t, dir, "rev-parse", "HEAD")

			o := opts(dir)
			o.Accept = tt.accept
			res, err := Apply(t.Context(), o)
			var ve *VerifyError
			require.ErrorAs(t, err, &ve)
			assert.Equal(t, NothingWritten, ve.Outcome)
			for _, want := range tt.wantErr {
				assert.Contains(t, err.Error(), want)
			}
			var dropped []string
			for _, d := range res.Report.Unaccepted() {
				if d.Dropped() {
					dropped = append(dropped, d.String())
				}
			}
			assert.Subset(t, []string{"mcp-local.service: defined → (none)", "mcp-preprod.service: defined (profiles [preprod]) → (none)"}, dropped)
			assert.NotEmpty(t, dropped)

			assert.Equal(t, before, snapshot(t, dir), "link, target and tree byte-identical")
			assertLink(t, dir)
			assert.Equal(t, head, gitT(t, dir, "rev-parse", "HEAD"))
			assert.Empty(t, gitT(t, dir, "tag", "--list"), "no tag")
			assert.NoDirExists(t, filepath.Join(homeOf(dir), ".ktrdr"), "no merge state")
			assert.Empty(t, gitT(t, dir, "status", "--porcelain", "--untracked-files=all", "--ignored"))
		})
	}

	// Named, each one: applied, and the report says what was accepted.
	t.Run("both by name", func(t *testing.T) {
		t.Parallel()
		main := linkedMain(t)
		dir := linkedRepo(t, main, source)
		o := opts(dir)
		o.Accept = []string{"mcp-local.service", "mcp-preprod.service"}
		res, err := Apply(t.Context(), o)
		require.NoError(t, err, "%v", res.Report.Items)
		compat, _ := itemNamed(res.Report, ItemCompatible)
		assert.Contains(t, compat.Reason, "mcp-preprod.service: defined (profiles [preprod]) → (none)")
		st, err := readState(storeOf(t, dir))
		require.NoError(t, err)
		assert.Contains(t, st.Accepted, "mcp-local.service: defined → (none)")
		_, err = Rollback(t.Context(), opts(dir))
		require.NoError(t, err)
		assert.Equal(t, main, readT(t, filepath.Join(dir, linkedRel)))
	})
}

// Published ports on variables the port table does not know count as
// parameterised when they are ${VAR:-<port>}; a fixed port is not.
func TestOwnPortVariablesCountAsParameterised(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		agents   string
		ok       bool
		slot0    string // in the slot-0 item's reason
		slotN    string // in the slot-N item's reason
		slotNNot string
	}{
		{name: "parameterised, unknown variables", agents: agentsParam, ok: true,
			slotN: "parameterised by variables the port table does not know, which sandboxes leave at their defaults: " +
				"assessment-agent →5020 ${KTRDR_ASSESSMENT_AGENT_PORT:-5020}, design-agent →5010 ${KTRDR_DESIGN_AGENT_PORT:-5010}",
			slotNNot: "not parameterised"},
		{name: "fixed ports", agents: agentsMain,
			slot0: "design-agent →5010 publishes 5010, which is no slot-0 port of the stack model",
			slotN: "slot 1: design-agent →5010 publishes 5010 as in slot 0: not parameterised"},
		{name: "one of each", agents: strings.Replace(agentsParam, "${KTRDR_ASSESSMENT_AGENT_PORT:-5020}", "5020", 1),
			slot0:    "assessment-agent →5020 publishes 5020, which is no slot-0 port",
			slotN:    "slot 1: assessment-agent →5020 publishes 5020 as in slot 0: not parameterised",
			slotNNot: "design-agent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// The checkout's main file is the merged file itself: no merge
			// state, so only the items about the file run.
			merged := withServices(t, "../../docker-compose.sandbox.yml", tt.agents)
			dir := linkedRepo(t, merged, merged)
			rep, err := Verify(t.Context(), opts(dir))
			require.NoError(t, err)

			slot0, ok := itemNamed(rep, ItemSlot0)
			require.True(t, ok)
			slotN, ok := itemNamed(rep, ItemSlotN)
			require.True(t, ok)
			assert.Equal(t, tt.ok, rep.OK(), "%v", rep.Items)
			assert.Equal(t, tt.ok, slot0.OK, slot0.String())
			assert.Equal(t, tt.ok, slotN.OK, slotN.String())
			assert.Contains(t, slot0.Reason, tt.slot0)
			assert.Contains(t, slotN.Reason, tt.slotN)
			if tt.slotNNot != "" {
				assert.NotContains(t, slotN.Reason, tt.slotNNot)
			}
		})
	}
}
