package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/gate"
)

// The curl, wget and pg_isready personalities: just what healthchecks
// written for the real images use, with the real tools' exit statuses.

// Exit statuses of curl.
const (
	curlOK             = 0
	curlUsage          = 2
	curlBadURL         = 3
	curlCouldntConnect = 7
	curlHTTPError      = 22 // with -f / --fail
	curlTimeout        = 28
	curlOther          = 56
)

// shortFlags splits combined short options ("-fsS", "-qO-", "-o/dev/null")
// into (flag, inline value) pairs; takesArg names the letters with a value.
func shortFlags(arg, takesArg string) (flags []string, value string, hasValue bool) {
	for i := 1; i < len(arg); i++ {
		f := string(arg[i])
		flags = append(flags, f)
		if strings.Contains(takesArg, f) {
			if i+1 < len(arg) {
				return flags, arg[i+1:], true
			}
			return flags, "", false
		}
	}
	return flags, "", false
}

type toolArgs struct {
	args []string
	i    int
}

func (t *toolArgs) next() (string, bool) {
	if t.i >= len(t.args) {
		return "", false
	}
	t.i++
	return t.args[t.i-1], true
}

// curlMain understands -f/--fail, -s, -S, -L, -o FILE, -m SECS,
// --connect-timeout SECS, -H HEADER, -X METHOD, -d DATA, -I, -w (ignored).
func curlMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		fail, silent, showErr, follow bool
		output, method, data          string
		maxTime                       = 5 * time.Minute
		headers                       []string
		urls                          []string
	)
	t := &toolArgs{args: args}
	set := func(flag, value string) error {
		switch flag {
		case "o", "output":
			output = value
		case "m", "max-time", "connect-timeout":
			secs, err := strconv.ParseFloat(value, 64)
			if err != nil {
				return fmt.Errorf("option --%s: expected a proper numerical parameter", flag)
			}
			maxTime = time.Duration(secs * float64(time.Second))
		case "H", "header":
			headers = append(headers, value)
		case "X", "request":
			method = value
		case "d", "data", "data-raw", "data-binary":
			data = value
		case "w", "write-out", "retry", "retry-delay", "A", "user-agent":
		}
		return nil
	}
	const withArg = "omHXdwA"
	for {
		a, ok := t.next()
		if !ok {
			break
		}
		var err error
		switch {
		case a == "--":
			urls = append(urls, t.args[t.i:]...)
			t.i = len(t.args)
		case strings.HasPrefix(a, "--"):
			name, value, inline := strings.Cut(a[2:], "=")
			switch name {
			case "fail", "fail-with-body":
				fail = true
			case "silent":
				silent = true
			case "show-error":
				showErr = true
			case "location":
				follow = true
			case "head":
				method = "HEAD"
			case "insecure", "no-progress-meter", "compressed", "ipv4", "http1.1":
			case "output", "max-time", "connect-timeout", "header", "request", "data", "data-raw", "data-binary", "write-out", "retry", "retry-delay", "user-agent":
				if !inline {
					if value, ok = t.next(); !ok {
						fmt.Fprintf(stderr, "curl: option --%s: requires parameter\n", name)
						return curlUsage
					}
				}
				err = set(name, value)
			default:
				fmt.Fprintf(stderr, "curl: option --%s: is unknown\n", name)
				return curlUsage
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags, value, inline := shortFlags(a, withArg)
			for _, f := range flags {
				switch f {
				case "f":
					fail = true
				case "s":
					silent = true
				case "S":
					showErr = true
				case "L":
					follow = true
				case "I":
					method = "HEAD"
				case "k", "v", "4", "q":
				default:
					if !strings.Contains(withArg, f) {
						fmt.Fprintf(stderr, "curl: option -%s: is unknown\n", f)
						return curlUsage
					}
					if !inline {
						if value, ok = t.next(); !ok {
							fmt.Fprintf(stderr, "curl: option -%s: requires parameter\n", f)
							return curlUsage
						}
					}
					err = set(f, value)
				}
			}
		default:
			urls = append(urls, a)
		}
		if err != nil {
			fmt.Fprintf(stderr, "curl: %v\n", err)
			return curlUsage
		}
	}
	report := func(code int, format string, a ...any) int {
		if !silent || showErr {
			fmt.Fprintf(stderr, "curl: (%d) %s\n", code, fmt.Sprintf(format, a...))
		}
		return code
	}
	if len(urls) == 0 {
		fmt.Fprintln(stderr, "curl: no URL specified!")
		return curlUsage
	}
	out := stdout
	if output != "" && output != "-" {
		f, err := os.Create(toolPath(ctx, output))
		if err != nil {
			return report(23, "Failure writing output to destination: %v", err)
		}
		defer f.Close()
		out = f
	}
	ctx, cancel := context.WithTimeout(ctx, maxTime)
	defer cancel()
	client := &http.Client{}
	if !follow {
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	if method == "" {
		method = http.MethodGet
		if data != "" {
			method = http.MethodPost
		}
	}
	for _, raw := range urls {
		if !strings.Contains(raw, "://") {
			raw = "http://" + raw
		}
		var body io.Reader
		if data != "" {
			body = strings.NewReader(data)
		}
		req, err := http.NewRequestWithContext(ctx, method, raw, body)
		if err != nil {
			return report(curlBadURL, "URL using bad/illegal format or missing URL")
		}
		if data != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for _, h := range headers {
			if k, v, ok := strings.Cut(h, ":"); ok {
				req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			switch {
			case ctx.Err() != nil || isTimeout(err):
				return report(curlTimeout, "Operation timed out after %s", maxTime)
			case isConnectFailure(err):
				return report(curlCouldntConnect, "Failed to connect to %s: %v", req.URL.Host, rootCause(err))
			}
			return report(curlOther, "Failure when receiving data from the peer: %v", err)
		}
		if fail && resp.StatusCode >= 400 {
			resp.Body.Close()
			return report(curlHTTPError, "The requested URL returned error: %d", resp.StatusCode)
		}
		_, err = io.Copy(out, resp.Body)
		resp.Body.Close()
		if err != nil {
			return report(curlOther, "Failure when receiving data from the peer: %v", err)
		}
	}
	return curlOK
}

// wgetMain understands -q, --spider, -O FILE (- for stdout), -T SECS,
// --timeout=SECS, -t/--tries (ignored). Exit 0 on a 2xx answer, else 1
// (busybox wget's status). Without -O the body is discarded.
func wgetMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		quiet, spider bool
		output        string
		timeout       = 5 * time.Minute
		urls          []string
	)
	t := &toolArgs{args: args}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "wget: "+format+"\n", a...)
		return 1
	}
	setTimeout := func(v string) bool {
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil || secs < 0 {
			return false
		}
		if secs > 0 {
			timeout = time.Duration(secs * float64(time.Second))
		}
		return true
	}
	for {
		a, ok := t.next()
		if !ok {
			break
		}
		switch {
		case strings.HasPrefix(a, "--"):
			name, value, inline := strings.Cut(a[2:], "=")
			switch name {
			case "quiet":
				quiet = true
			case "spider":
				spider = true
			case "no-verbose", "no-check-certificate", "server-response", "no-cache":
			case "output-document", "timeout", "tries", "header", "user-agent":
				if !inline {
					if value, ok = t.next(); !ok {
						return fail("option '--%s' requires an argument", name)
					}
				}
				if name == "output-document" {
					output = value
				}
				if name == "timeout" && !setTimeout(value) {
					return fail("invalid timeout %q", value)
				}
			default:
				return fail("unrecognized option '--%s'", name)
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags, value, inline := shortFlags(a, "OTtYU")
			for _, f := range flags {
				switch f {
				case "q":
					quiet = true
				case "S", "c":
				case "O", "T", "t", "Y", "U":
					if !inline {
						if value, ok = t.next(); !ok {
							return fail("option requires an argument -- '%s'", f)
						}
					}
					if f == "O" {
						output = value
					}
					if f == "T" && !setTimeout(value) {
						return fail("invalid timeout %q", value)
					}
				default:
					return fail("invalid option -- '%s'", f)
				}
			}
		default:
			urls = append(urls, a)
		}
	}
	if len(urls) == 0 {
		return fail("missing URL")
	}
	var out io.Writer = io.Discard
	switch {
	case spider:
	case output == "-":
		out = stdout
	case output != "":
		f, err := os.Create(toolPath(ctx, output))
		if err != nil {
			return fail("can't open '%s': %v", output, err)
		}
		defer f.Close()
		out = f
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, raw := range urls {
		if !strings.Contains(raw, "://") {
			raw = "http://" + raw
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
		if err != nil {
			return fail("bad address '%s'", raw)
		}
		if !quiet {
			fmt.Fprintf(stderr, "Connecting to %s\n", req.URL.Host)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			if ctx.Err() != nil || isTimeout(err) {
				return fail("download timed out")
			}
			return fail("can't connect to remote host (%s): %v", req.URL.Host, rootCause(err))
		}
		if resp.StatusCode/100 != 2 {
			resp.Body.Close()
			return fail("server returned error: %s %s", resp.Proto, resp.Status)
		}
		_, err = io.Copy(out, resp.Body)
		resp.Body.Close()
		if err != nil {
			return fail("error getting response: %v", err)
		}
		if spider && !quiet {
			fmt.Fprintln(stderr, "remote file exists")
		}
	}
	return 0
}

// pgIsReadyMain understands -h/--host, -p/--port, -U/--username,
// -d/--dbname, -q/--quiet, -t/--timeout (default 3, 0 = wait forever), and
// PGHOST, PGPORT, PGUSER, PGDATABASE. Unlike the real tool the default host
// is localhost over TCP; a host starting with / is a Unix socket folder.
// Exit: 0 accepting, 1 rejecting (57P03), 2 no response, 3 bad arguments.
func pgIsReadyMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	host := orDefault(getenv("PGHOST"), "localhost")
	port := orDefault(getenv("PGPORT"), "5432")
	user := orDefault(getenv("PGUSER"), "postgres")
	dbname := getenv("PGDATABASE")
	timeout := "3"
	quiet := false
	t := &toolArgs{args: args}
	long := map[string]string{"host": "h", "port": "p", "username": "U", "dbname": "d", "timeout": "t", "quiet": "q"}
	for {
		a, ok := t.next()
		if !ok {
			break
		}
		var flags []string
		var value string
		var inline bool
		switch {
		case strings.HasPrefix(a, "--"):
			name, v, in := strings.Cut(a[2:], "=")
			f, known := long[name]
			if !known {
				fmt.Fprintf(stderr, "pg_isready: unrecognized option '%s'\n", a)
				return 3
			}
			flags, value, inline = []string{f}, v, in
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags, value, inline = shortFlags(a, "hpUdt")
		default:
			fmt.Fprintf(stderr, "pg_isready: too many command-line arguments (first is %q)\n", a)
			return 3
		}
		for _, f := range flags {
			if f == "q" {
				quiet = true
				continue
			}
			if !strings.Contains("hpUdt", f) {
				fmt.Fprintf(stderr, "pg_isready: invalid option -- '%s'\n", f)
				return 3
			}
			if !inline {
				if value, ok = t.next(); !ok {
					fmt.Fprintf(stderr, "pg_isready: option requires an argument -- '%s'\n", f)
					return 3
				}
			}
			switch f {
			case "h":
				host = value
			case "p":
				port = value
			case "U":
				user = value
			case "d":
				dbname = value
			case "t":
				timeout = value
			}
		}
	}
	secs, err := strconv.Atoi(timeout)
	if err != nil || secs < 0 {
		fmt.Fprintf(stderr, "pg_isready: invalid timeout %q\n", timeout)
		return 3
	}
	d := time.Duration(secs) * time.Second
	if secs == 0 {
		d = 100 * 365 * 24 * time.Hour
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	addr := net.JoinHostPort(host, port)
	if strings.HasPrefix(host, "/") {
		addr = strings.TrimRight(host, "/") + "/.s.PGSQL." + port
	}
	err = gate.ProbePostgres(ctx, addr, user, orDefault(dbname, user))
	var starting *gate.PostgresStartingError
	code, state := 0, "accepting connections"
	switch {
	case errors.As(err, &starting):
		code, state = 1, "rejecting connections"
	case err != nil:
		code, state = 2, "no response"
	}
	if !quiet {
		fmt.Fprintf(stdout, "%s:%s - %s\n", host, port, state)
	}
	return code
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func isConnectFailure(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return (errors.As(err, &op) && op.Op == "dial") || errors.As(err, &dns)
}

func rootCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
