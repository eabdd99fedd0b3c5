package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
	"github.com/ktrdr/sandboxkit/sandbox/envfile"
	"github.com/ktrdr/sandboxkit/sandbox/gate"
)

// A stack's secrets (a JWT secret, the database password, API keys) come
// from two places, both optional:
//
//   - the secrets file, $HOME/.<app>/sandbox/secrets.env, in the env file's
//     one form (package envfile): a regular file (not a symlink) of the
//     current user that no one else may read or write (mode 0600 or
//     stricter), else up refuses (*SecretsFileError, with the fix);
//   - the secrets command, config.json's "secrets_command": an argument
//     list run without a shell (["op", "inject", "-i", "/home/me/ktrdr.tpl"],
//     ["sops", "-d", "/home/me/ktrdr.env"]) whose standard output is that
//     form; it has SecretsTimeout and prints at most SecretsMaxOutput
//     (*SecretsCommandError).
//
// Where both set a key, the file wins: it is this machine's own, explicit
// choice (a local override of one value of the shared vault).
//
// Secrets reach compose only as one more --env-file that has no path in a
// folder the suite keeps (driver.SecretEnv), and the suite's own reading of
// the stack at up interpolates with them in memory. They are never written
// to .env.sandbox, the override, the registry, the state folder, logs or
// JSON: every text up returns that could hold one (compose's errors, log
// tails, gate results, URLs with a password) is masked first (Secrets.Mask).
// Secrets may not set what the sandbox's env file decides (its identity and
// ports) nor COMPOSE_* settings.

const (
	// SecretsFileName is the secrets file in the state folder.
	SecretsFileName = "secrets.env"
	// SecretsTimeout bounds the secrets command.
	SecretsTimeout = 60 * time.Second
	// SecretsMaxOutput bounds what the secrets command may print.
	SecretsMaxOutput = envfile.MaxSize
	// maskMin is the shortest value masked: shorter ones would mask
	// ordinary words and numbers throughout a message.
	maskMin = 4
)

// SecretsPath is where the secrets file of profile p lives under home.
func (p *Profile) SecretsPath(home string) string {
	return filepath.Join(p.StateDir(home), SecretsFileName)
}

// SecretsFileError reports a secrets file that up will not read: not a
// regular file, readable or writable by others, someone else's, or not in
// the env file's form. Fix is the command or step that repairs it.
type SecretsFileError struct {
	Path   string
	Reason string
	Fix    string
}

func (e *SecretsFileError) Error() string {
	return fmt.Sprintf("secrets file %s %s: refused, nothing was started", e.Path, e.Reason)
}

// SecretsCommandError reports a secrets command that failed, ran too long,
// printed too much, or printed something other than the env file's form.
// Stderr is its error output, masked.
type SecretsCommandError struct {
	Argv     []string
	ExitCode int // -1 when it did not exit by itself
	Reason   string
	Stderr   string
}

func (e *SecretsCommandError) Error() string {
	msg := fmt.Sprintf("secrets_command %s %s", driver.Cmd{Name: e.Argv[0], Args: e.Argv[1:]}, e.Reason)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg + "\n  (refused: nothing was started)"
}

// Secrets are a stack's secret variables, in memory only.
type Secrets struct {
	vals   map[string]string
	masked []string // the values to mask, longest first
}

// newSecrets returns the secrets vals; every value of at least maskMin
// bytes is masked in texts (also those of extra, values seen elsewhere).
func newSecrets(vals map[string]string, extra ...string) *Secrets {
	s := &Secrets{vals: vals}
	for _, v := range vals {
		extra = append(extra, v)
	}
	for _, v := range extra {
		if len(v) >= maskMin && !slices.Contains(s.masked, v) {
			s.masked = append(s.masked, v)
		}
	}
	slices.SortFunc(s.masked, func(a, b string) int { return len(b) - len(a) })
	return s
}

// Len is how many secret variables there are (0 for nil).
func (s *Secrets) Len() int {
	if s == nil {
		return 0
	}
	return len(s.vals)
}

// Keys are the names of the secret variables, sorted.
func (s *Secrets) Keys() []string {
	if s == nil {
		return nil
	}
	keys := make([]string, 0, len(s.vals))
	for k := range s.vals {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Mask replaces every secret value in text with "***".
func (s *Secrets) Mask(text string) string {
	if s == nil {
		return text
	}
	for _, v := range s.masked {
		text = strings.ReplaceAll(text, v, "***")
	}
	return text
}

// MaskError returns err with its text masked; errors.Is and errors.As see
// what it wraps.
func (s *Secrets) MaskError(err error) error {
	if err == nil || s.Len() == 0 {
		return err
	}
	text := s.Mask(err.Error())
	if text == err.Error() {
		return err
	}
	return &maskedError{text: text, err: err}
}

type maskedError struct {
	text string
	err  error
}

func (e *maskedError) Error() string { return e.text }
func (e *maskedError) Unwrap() error { return e.err }

// with returns vals and the secrets in one new map (vals wins).
func (s *Secrets) with(vals map[string]string) map[string]string {
	if s.Len() == 0 {
		return vals
	}
	out := make(map[string]string, len(vals)+len(s.vals))
	for k, v := range s.vals {
		out[k] = v
	}
	for k, v := range vals {
		out[k] = v
	}
	return out
}

// env is what compose receives (nil when there are no secrets).
func (s *Secrets) env() (*driver.SecretEnv, error) {
	if s.Len() == 0 {
		return nil, nil
	}
	return driver.NewSecretEnv(s.vals)
}

// maskResult masks what up returns and keeps: URLs (a database URL holds
// its password), log tails and the gate's messages.
func (s *Secrets) maskResult(res *UpResult) {
	if res == nil || s.Len() == 0 {
		return
	}
	for i := range res.URLs {
		res.URLs[i].URL = s.Mask(res.URLs[i].URL)
	}
	for k, v := range res.Logs {
		res.Logs[k] = s.Mask(v)
	}
	if res.Gate != nil {
		s.maskGate(res.Gate)
	}
}

func (s *Secrets) maskGate(gr *gate.Result) {
	if s.Len() == 0 {
		return
	}
	gr.Aborted = s.Mask(gr.Aborted)
	gr.Checks = slices.Clone(gr.Checks)
	for i := range gr.Checks {
		gr.Checks[i].LastError = s.Mask(gr.Checks[i].LastError)
	}
}

// maskProgress wraps a gate progress function so that it sees masked
// messages only.
func (s *Secrets) maskProgress(f func(gate.State)) func(gate.State) {
	if f == nil || s.Len() == 0 {
		return f
	}
	return func(st gate.State) {
		st.Checks = slices.Clone(st.Checks)
		for i := range st.Checks {
			st.Checks[i].LastError = s.Mask(st.Checks[i].LastError)
		}
		f(st)
	}
}

// loadSecrets reads the secrets file and runs the secrets command, if
// either is there; decided are the values of the sandbox's env file, whose
// keys secrets may not set. No secrets is nil.
func (m *Manager) loadSecrets(ctx context.Context, decided map[string]string) (*Secrets, error) {
	path := m.Profile.SecretsPath(m.Home)
	fromFile, err := readSecretsFile(path)
	if err != nil {
		return nil, err
	}
	fileSecrets := newSecrets(fromFile)
	var fromCmd map[string]string
	if len(m.SecretsCommand) > 0 {
		if fromCmd, err = m.runSecretsCommand(ctx, fileSecrets); err != nil {
			return nil, err
		}
	}
	if len(fromFile) == 0 && len(fromCmd) == 0 {
		return nil, nil
	}
	vals := map[string]string{}
	for k, v := range fromCmd {
		vals[k] = v
	}
	for k, v := range fromFile {
		vals[k] = v // the file wins
	}
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		_, inFile := fromFile[k]
		reason := ""
		switch _, d := decided[k]; {
		case d:
			reason = "sets " + k + ", which the sandbox's " + m.Profile.EnvFile + " decides (its identity and ports)"
		case strings.HasPrefix(k, "COMPOSE_"):
			reason = "sets " + k + ", a setting of compose itself, not a secret"
		default:
			continue
		}
		if inFile {
			return nil, &SecretsFileError{Path: path, Reason: reason, Fix: "remove " + k + " from " + path}
		}
		return nil, &SecretsCommandError{Argv: m.SecretsCommand, ExitCode: 0, Reason: "printed a secret that " + strings.TrimPrefix(reason, "sets ") + " (key " + k + ")"}
	}
	return newSecrets(vals), nil
}

// readSecretsFile reads the secrets file at path: nil when there is none.
// It must be a regular file, not a symlink, of the current user, with no
// permission for group or others (*SecretsFileError with the fix).
func readSecretsFile(path string) (map[string]string, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &SecretsFileError{Path: path, Reason: "cannot be examined: " + err.Error(), Fix: "check the permissions of " + filepath.Dir(path)}
	}
	if err := checkSecretsFile(path, fi); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|oNoFollow, 0)
	if err != nil {
		return nil, &SecretsFileError{Path: path, Reason: "cannot be opened: " + err.Error(), Fix: "make it readable by you only: chmod 600 " + path}
	}
	defer f.Close()
	// What was opened is what was checked (not swapped for a link meanwhile).
	if ofi, err := f.Stat(); err != nil || !os.SameFile(fi, ofi) {
		return nil, &SecretsFileError{Path: path, Reason: "changed while it was opened", Fix: "run the command again"}
	}
	data, err := io.ReadAll(io.LimitReader(f, envfile.MaxSize+1))
	if err != nil {
		return nil, &SecretsFileError{Path: path, Reason: "cannot be read: " + err.Error()}
	}
	if len(data) > envfile.MaxSize {
		return nil, &SecretsFileError{Path: path, Reason: fmt.Sprintf("is larger than %d bytes", envfile.MaxSize), Fix: "keep only KEY=value lines of the stack's secrets in it"}
	}
	vals, err := envfile.Parse(data)
	if err != nil {
		return nil, &SecretsFileError{Path: path, Reason: "is not in the env file's form: " + syntaxReason(data, err),
			Fix: `write one KEY=value or KEY="value" line per secret (no '$', '\', quotes, '` + "`" + `' or '!' in a value)`}
	}
	return vals, nil
}

// checkSecretsFile refuses a secrets file others could read or change.
func checkSecretsFile(path string, fi fs.FileInfo) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return &SecretsFileError{Path: path, Reason: "is a symlink", Fix: "put the secrets in the file itself: replace the link with a regular file (mode 600) holding them"}
	case !fi.Mode().IsRegular():
		return &SecretsFileError{Path: path, Reason: "is not a regular file (" + fi.Mode().Type().String() + ")", Fix: "replace it with a regular file (mode 600) holding the secrets"}
	case fi.Mode().Perm()&0o077 != 0:
		return &SecretsFileError{Path: path, Reason: fmt.Sprintf("may be read or written by others (mode %04o)", fi.Mode().Perm()), Fix: "chmod 600 " + path}
	}
	if uid, me, ok := fileOwner(fi); ok && uid != me {
		return &SecretsFileError{Path: path, Reason: fmt.Sprintf("belongs to user %d, not to you (%d)", uid, me), Fix: fmt.Sprintf("chown %d %s (or replace it with a file of your own, mode 600)", me, path)}
	}
	return nil
}

// syntaxReason is why data is not in the env file's form, naming the line
// and at most its key: envfile's reason quotes the text of a line whose key
// is not one, which may be a secret.
func syntaxReason(data []byte, err error) string {
	var se *envfile.SyntaxError
	if !errors.As(err, &se) {
		return "unreadable"
	}
	lines := strings.Split(string(data), "\n")
	if se.Line >= 1 && se.Line <= len(lines) {
		key, _, ok := strings.Cut(lines[se.Line-1], "=")
		if !ok || !envfile.ValidKey(key) {
			return fmt.Sprintf("line %d does not start with KEY=", se.Line)
		}
	}
	return se.Error()
}

// runSecretsCommand runs config.json's secrets_command without a shell and
// parses what it prints. known are the secrets already read, masked in
// what the command says.
func (m *Manager) runSecretsCommand(ctx context.Context, known *Secrets) (map[string]string, error) {
	argv := m.SecretsCommand
	r := m.base
	if r == nil {
		r = m.Runner
	}
	tctx, cancel := context.WithTimeout(ctx, SecretsTimeout)
	defer cancel()
	out := &limitedBuffer{max: SecretsMaxOutput}
	_, err := r.Run(tctx, driver.Cmd{Name: argv[0], Args: argv[1:], Stdout: out})
	// What it printed, even when cut short, is masked in what it said.
	mask := newSecrets(known.vals, valuesIn(out.Bytes())...)
	fail := func(code int, reason, stderr string) error {
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		stderr = strings.Join(lines[max(0, len(lines)-6):], "\n") // where tools put the reason
		return &SecretsCommandError{Argv: argv, ExitCode: code, Reason: mask.Mask(reason), Stderr: mask.Mask(stderr)}
	}
	var ee *driver.ExitError
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("secrets_command %s: %w", argv[0], ctx.Err())
	case tctx.Err() != nil:
		return nil, fail(-1, fmt.Sprintf("did not finish within %s (does it wait for input? it runs without a terminal on its standard input)", SecretsTimeout), "")
	case out.over:
		return nil, fail(-1, fmt.Sprintf("printed more than %d bytes", SecretsMaxOutput), "")
	case errors.As(err, &ee):
		return nil, fail(ee.Code, fmt.Sprintf("failed with exit status %d", ee.Code), ee.Stderr)
	case err != nil:
		return nil, fail(-1, "could not be run: "+err.Error(), "")
	}
	vals, err := envfile.Parse(out.Bytes())
	if err != nil {
		return nil, fail(0, "printed something other than the env file's form: "+syntaxReason(out.Bytes(), err), "")
	}
	return vals, nil
}

// valuesIn returns what follows '=' on each line of data, unquoted: the
// values a text may echo, to be masked, also from output that is not in
// the form.
func valuesIn(data []byte) []string {
	var out []string
	for line := range strings.Lines(string(data)) {
		if _, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			out = append(out, v, strings.Trim(v, `"'`))
		}
	}
	return out
}

// limitedBuffer keeps up to max bytes and fails the write that goes over.
// It has only Write (no ReadFrom or WriteString that would pass the limit).
type limitedBuffer struct {
	buf  []byte
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if len(b.buf)+len(p) > b.max {
		b.over = true
		return 0, errors.New("output limit reached")
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *limitedBuffer) Bytes() []byte { return b.buf }

// ValidateSecretsCommand checks config.json's secrets_command: absent, or
// a non-empty argument list whose first element is a program name (looked
// up in PATH) or an absolute path.
func ValidateSecretsCommand(argv []string) error {
	if argv == nil {
		return nil
	}
	if len(argv) == 0 || argv[0] == "" {
		return errors.New(`an argument list starting with the program, e.g. ["op", "inject", "-i", "/home/me/ktrdr-secrets.tpl"]`)
	}
	if p := argv[0]; !filepath.IsAbs(p) && strings.ContainsRune(p, filepath.Separator) {
		return fmt.Errorf("program %q is neither a name looked up in PATH nor an absolute path", p)
	}
	return nil
}

// maskingWriter passes what compose prints on to w line by line, masked.
type maskingWriter struct {
	mu      sync.Mutex
	w       io.Writer
	s       *Secrets
	pending []byte
}

func (mw *maskingWriter) Write(p []byte) (int, error) {
	mw.mu.Lock()
	defer mw.mu.Unlock()
	mw.pending = append(mw.pending, p...)
	if i := bytes.LastIndexByte(mw.pending, '\n'); i >= 0 {
		lines := mw.pending[:i+1]
		if _, err := io.WriteString(mw.w, mw.s.Mask(string(lines))); err != nil {
			return 0, err
		}
		mw.pending = append([]byte(nil), mw.pending[i+1:]...)
	}
	if len(mw.pending) > 64<<10 { // a line without end: pass it on anyway
		mw.flush()
	}
	return len(p), nil
}

// Flush writes what is left of an unfinished line.
func (mw *maskingWriter) Flush() {
	mw.mu.Lock()
	defer mw.mu.Unlock()
	mw.flush()
}

func (mw *maskingWriter) flush() {
	if len(mw.pending) > 0 {
		_, _ = io.WriteString(mw.w, mw.s.Mask(string(mw.pending)))
		mw.pending = nil
	}
}

// bestEffortSecrets are the secrets of the commands that stop or read a
// stack (down, logs, destroy, status): compose interpolates the whole file
// for them too, and a ${VAR:?} without its secret would stop it. They are loaded
// once per command; when they cannot be, the command goes on without them
// (a note goes to Log), so that a sandbox can always be stopped.
func (m *Manager) bestEffortSecrets(ctx context.Context) *Secrets {
	load := func() *Secrets {
		sec, err := m.loadSecrets(ctx, nil)
		if err != nil {
			fmt.Fprintf(m.log(), "note: going on without the secrets: %v\n", err)
			return nil
		}
		return sec
	}
	if m.lazySecrets == nil {
		return load()
	}
	m.lazySecrets.once.Do(func() { m.lazySecrets.sec = load() })
	return m.lazySecrets.sec
}

// withSecrets is stack with the secrets sec, if they can be passed.
func withSecrets(stack driver.Stack, sec *Secrets) driver.Stack {
	if env, err := sec.env(); err == nil {
		stack.Secrets = env
	}
	return stack
}

// lazySecrets are the secrets of one command, loaded at most once.
type lazySecrets struct {
	once sync.Once
	sec  *Secrets
}
