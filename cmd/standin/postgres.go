package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// The entrypoint of the PostgreSQL image (stack:images builds it from the
// host's Debian PostgreSQL packages, see sandbox/driver/pgimage.go):
// `standin postgres [postgres] [-c NAME=VALUE]…` prepares the data folder
// the way the usual PostgreSQL images do and then becomes the server.
//
//   - Started as root, it gives the data folder ($PGDATA, by default
//     /var/lib/postgresql/data) and the socket folder to the postgres user
//     and drops to that user: initdb and the server refuse to run as root.
//   - On the first start (no PG_VERSION in the data folder) it runs initdb
//     with the superuser $POSTGRES_USER (default postgres) whose password is
//     $POSTGRES_PASSWORD, trust for local (socket) connections and
//     scram-sha-256 over TCP from anywhere, then creates the database
//     $POSTGRES_DB (default: the user's name) in single-user mode. A data
//     folder that already holds a cluster is used as it is: the variables
//     no longer matter, as with the usual images.
//   - It then runs `postgres -D $PGDATA -c listen_addresses=*` with the
//     arguments it was given (a compose file's `command: postgres -c …`
//     reaches the server), passes signals on and exits with the server's
//     status. SIGTERM, docker stop's signal, reaches the server as SIGINT,
//     its fast shut-down (the usual images set STOPSIGNAL SIGINT, which
//     docker import cannot): with SIGTERM the server would wait for every
//     client to leave.
//
// POSTGRES_PASSWORD may be empty only with POSTGRES_HOST_AUTH_METHOD=trust
// (every TCP connection is then trusted), as with the usual images.

// pgDefaultData is where the usual images keep their cluster.
const pgDefaultData = "/var/lib/postgresql/data"

// pgSocketDir is where Debian's PostgreSQL puts its Unix socket (and where
// its pg_isready and psql look for it).
const pgSocketDir = "/var/run/postgresql"

// pgConfig is what the entrypoint reads from its environment.
type pgConfig struct {
	Data     string // PGDATA
	User     string // POSTGRES_USER
	Password string // POSTGRES_PASSWORD
	DB       string // POSTGRES_DB
	HostAuth string // POSTGRES_HOST_AUTH_METHOD: how TCP clients authenticate
	Bin      string // the folder of initdb and postgres ($KTRDR_PG_BIN, else found next to them on PATH)
}

// pgConfigFrom reads the entrypoint's environment.
func pgConfigFrom(getenv func(string) string) (pgConfig, error) {
	c := pgConfig{
		Data:     orDefault(getenv("PGDATA"), pgDefaultData),
		User:     orDefault(getenv("POSTGRES_USER"), "postgres"),
		Password: getenv("POSTGRES_PASSWORD"),
		HostAuth: orDefault(getenv("POSTGRES_HOST_AUTH_METHOD"), "scram-sha-256"),
		Bin:      getenv("KTRDR_PG_BIN"),
	}
	c.DB = orDefault(getenv("POSTGRES_DB"), c.User)
	if c.Password == "" && c.HostAuth != "trust" {
		return c, errors.New("POSTGRES_PASSWORD is empty: set it (the superuser's password for TCP clients), or set POSTGRES_HOST_AUTH_METHOD=trust to let every TCP client in without one")
	}
	if strings.ContainsAny(c.User, "\x00\n") || strings.ContainsAny(c.DB, "\x00\n") {
		return c, fmt.Errorf("POSTGRES_USER %q or POSTGRES_DB %q holds a NUL or a line break", c.User, c.DB)
	}
	return c, nil
}

// pgStep is one program the entrypoint runs before the server.
type pgStep struct {
	Name  string   // for messages: what the step does
	Args  []string // the program and its arguments
	Stdin string   // fed to the program
}

// pgInitSteps returns the steps of a first start: initdb with the user
// and password (read from pwfile, which the caller writes and removes),
// then the database when it is not one initdb makes. hba is the line
// appended to pg_hba.conf between the two (written by the caller).
func pgInitSteps(c pgConfig, pwfile string) []pgStep {
	args := []string{filepath.Join(c.Bin, "initdb"), "-D", c.Data, "-U", c.User,
		"--encoding=UTF8", "--locale=C", "--auth-local=trust", "--auth-host=" + c.HostAuth}
	if c.Password != "" {
		args = append(args, "--pwfile="+pwfile)
	}
	steps := []pgStep{{Name: "initdb", Args: args}}
	if c.DB != "postgres" && c.DB != "template0" && c.DB != "template1" {
		steps = append(steps, pgStep{
			Name:  "create database " + c.DB,
			Args:  []string{filepath.Join(c.Bin, "postgres"), "--single", "-D", c.Data, "-c", "listen_addresses=", "postgres"},
			Stdin: "CREATE DATABASE " + pgQuoteIdent(c.DB) + ";\n",
		})
	}
	return steps
}

// pgHBALine lets TCP clients from anywhere in with method (what the usual
// images append to pg_hba.conf).
func pgHBALine(method string) string {
	return "\n# Added by the ktrdr stand-in's entrypoint: TCP clients from anywhere.\nhost all all all " + method + "\n"
}

// pgServerArgs is the server's command line: the image's arguments (a
// leading "postgres", as in `command: postgres -c …`, is dropped).
func pgServerArgs(c pgConfig, extra []string) []string {
	if len(extra) > 0 && filepath.Base(extra[0]) == "postgres" {
		extra = extra[1:]
	}
	return append([]string{filepath.Join(c.Bin, "postgres"), "-D", c.Data, "-c", "listen_addresses=*"}, extra...)
}

// pgQuoteIdent quotes an SQL identifier.
func pgQuoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// pgBuildDir is where a first start builds the cluster, inside the data
// folder (the volume: the same file system, so moving is renaming).
const pgBuildDir = ".sandbox-initdb"

// pgResetBuild readies data for a first start. An empty folder is ready. A
// folder holding pgBuildDir is what a first start stopped halfway left:
// everything in it is that start's, and goes. Anything else was not made
// here and is not touched: the start is refused.
func pgResetBuild(data string) error {
	entries, err := os.ReadDir(data)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", data, err)
	}
	if len(entries) == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(data, pgBuildDir)); err != nil {
		return fmt.Errorf("%s holds files but no cluster (no PG_VERSION), and no first start of this image made them: empty it (sandbox:down -volumes removes the volume)", data)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(data, e.Name())); err != nil {
			return fmt.Errorf("remove what an interrupted first start left in %s: %w", data, err)
		}
	}
	return nil
}

// pgPublish moves the cluster built in dir into data, PG_VERSION last (its
// presence is what says a cluster is there), then removes dir.
func pgPublish(dir, data string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read the cluster built in %s: %w", dir, err)
	}
	slices.SortStableFunc(entries, func(a, b fs.DirEntry) int {
		switch {
		case a.Name() == "PG_VERSION":
			return 1
		case b.Name() == "PG_VERSION":
			return -1
		}
		return 0
	})
	for _, e := range entries {
		if err := os.Rename(filepath.Join(dir, e.Name()), filepath.Join(data, e.Name())); err != nil {
			return fmt.Errorf("move the cluster into %s: %w", data, err)
		}
	}
	return os.Remove(dir)
}

// pgInitialized reports whether dir already holds a cluster.
func pgInitialized(dir string) (bool, error) {
	_, err := os.Stat(filepath.Join(dir, "PG_VERSION"))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// pgSystem is what the entrypoint does to the machine: a seam for tests.
type pgSystem struct {
	Getuid      func() int
	LookupUser  func(name string) (uid, gid int, err error)
	PrepareDirs func(uid, gid int, dirs ...string) error // make, give to uid:gid (recursively when not theirs), 0700 for the first
	DropTo      func(uid, gid int) error
	Run         func(ctx context.Context, s pgStep, stdout, stderr io.Writer) error
	WriteFile   func(path string, data []byte, perm fs.FileMode) error
	AppendFile  func(path string, data []byte) error
	Remove      func(path string) error
	Serve       func(argv []string, stdout, stderr io.Writer) (int, error) // runs the server to its end
	TempDir     string
}

// pgEntrypoint prepares the data folder and runs the server through
// sys.Serve. It returns the server's exit status, or 1 when it cannot run it.
func pgEntrypoint(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, sys pgSystem) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "standin postgres: "+format+"\n", a...)
		return 1
	}
	c, err := pgConfigFrom(getenv)
	if err != nil {
		return fail("%v", err)
	}
	if c.Bin == "" {
		c.Bin = pgFindBin()
	}
	if sys.Getuid() == 0 {
		uid, gid, err := sys.LookupUser("postgres")
		if err != nil {
			return fail("look up the postgres user (initdb and the server refuse to run as root): %v", err)
		}
		if err := sys.PrepareDirs(uid, gid, c.Data, pgSocketDir); err != nil {
			return fail("prepare %s and %s for the postgres user: %v", c.Data, pgSocketDir, err)
		}
		if err := sys.DropTo(uid, gid); err != nil {
			return fail("become the postgres user (%d:%d): %v", uid, gid, err)
		}
	}
	done, err := pgInitialized(c.Data)
	if err != nil {
		return fail("look for a cluster in %s: %v", c.Data, err)
	}
	// The first start builds the cluster in a folder of its own inside the
	// data folder and moves it into place, PG_VERSION last: a start that is
	// stopped halfway (an interrupted up) leaves that folder, never a
	// half-made cluster that looks made.
	building := filepath.Join(c.Data, pgBuildDir)
	if done {
		os.RemoveAll(building) // moved into place already; only the empty folder can be left
		fmt.Fprintf(stdout, "standin postgres: %s holds a cluster already: starting it (POSTGRES_* are not read again)\n", c.Data)
	} else {
		if err := pgResetBuild(c.Data); err != nil {
			return fail("%v", err)
		}
		final := c
		c.Data = building
		fmt.Fprintf(stdout, "standin postgres: first start: creating the cluster in %s for user %s, database %s\n", final.Data, c.User, c.DB)
		pwfile := filepath.Join(sys.TempDir, "ktrdr-pg-password")
		if c.Password != "" {
			if err := sys.WriteFile(pwfile, []byte(c.Password+"\n"), 0o600); err != nil {
				return fail("write the password for initdb to %s: %v", pwfile, err)
			}
			defer sys.Remove(pwfile)
		}
		for i, s := range pgInitSteps(c, pwfile) {
			if err := sys.Run(ctx, s, stdout, stderr); err != nil {
				return fail("first start: %s (%s): %v", s.Name, strings.Join(s.Args, " "), err)
			}
			if i == 0 {
				sys.Remove(pwfile)
				hba := filepath.Join(c.Data, "pg_hba.conf")
				if err := sys.AppendFile(hba, []byte(pgHBALine(c.HostAuth))); err != nil {
					return fail("first start: let TCP clients in through %s: %v", hba, err)
				}
			}
		}
		if err := pgPublish(building, final.Data); err != nil {
			return fail("first start: %v", err)
		}
		c = final
	}
	argv := pgServerArgs(c, args)
	code, err := sys.Serve(argv, stdout, stderr)
	if err != nil {
		return fail("run the server (%s): %v", strings.Join(argv, " "), err)
	}
	return code
}

// pgFindBin is the folder of initdb: the PATH entry holding it, else
// Debian's folder of the newest version in the image.
func pgFindBin() string {
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		return filepath.Dir(p)
	}
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	best, bestV := "", -1
	for _, p := range m {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		if err == nil && v > bestV {
			best, bestV = filepath.Dir(p), v
		}
	}
	return best
}

// osPGSystem is the real machine.
func osPGSystem() pgSystem {
	return pgSystem{
		Getuid: os.Getuid,
		LookupUser: func(name string) (int, int, error) {
			u, err := user.Lookup(name)
			if err != nil {
				return 0, 0, err
			}
			uid, err1 := strconv.Atoi(u.Uid)
			gid, err2 := strconv.Atoi(u.Gid)
			if err := errors.Join(err1, err2); err != nil {
				return 0, 0, fmt.Errorf("user %s: %w", name, err)
			}
			return uid, gid, nil
		},
		PrepareDirs: pgPrepareDirs,
		DropTo: func(uid, gid int) error {
			if err := syscall.Setgroups([]int{gid}); err != nil {
				return fmt.Errorf("setgroups: %w", err)
			}
			if err := syscall.Setgid(gid); err != nil {
				return fmt.Errorf("setgid: %w", err)
			}
			if err := syscall.Setuid(uid); err != nil {
				return fmt.Errorf("setuid: %w", err)
			}
			return os.Setenv("HOME", "/var/lib/postgresql")
		},
		Run: func(ctx context.Context, s pgStep, stdout, stderr io.Writer) error {
			cmd := exec.CommandContext(ctx, s.Args[0], s.Args[1:]...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(s.Stdin), stdout, stderr
			return cmd.Run()
		},
		WriteFile: os.WriteFile,
		AppendFile: func(path string, data []byte) error {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			if _, err := f.Write(data); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		},
		Remove:  os.Remove,
		Serve:   pgServe,
		TempDir: os.TempDir(),
	}
}

// pgPrepareDirs makes dirs, gives them and what they hold to uid:gid
// where another owns it, and makes the first (the data folder) 0700, which
// the server demands.
func pgPrepareDirs(uid, gid int, dirs ...string) error {
	for i, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		err := filepath.WalkDir(d, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && (int(st.Uid) != uid || int(st.Gid) != gid) {
				return os.Lchown(p, uid, gid)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if i == 0 {
			if err := os.Chmod(d, 0o700); err != nil {
				return err
			}
		}
	}
	return nil
}

// pgServe runs the server as a child, passing on the signals docker and
// compose send (SIGTERM as SIGINT, the fast shut-down), and returns its
// exit status.
func pgServe(argv []string, stdout, stderr io.Writer) (int, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 1, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGTERM {
				sig = syscall.SIGINT
			}
			_ = cmd.Process.Signal(sig)
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return ee.ExitCode(), nil
			}
			if err != nil {
				return 1, err
			}
			return 0, nil
		}
	}
}
