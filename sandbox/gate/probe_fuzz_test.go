package gate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The gate's probes face whatever answers on a port: a service half
// started, another program that took the port, Docker's proxy with nothing
// behind it. The fuzz targets here serve arbitrary bytes in arbitrary ways
// (at once, one byte at a time, endlessly, then closing, resetting or
// holding the connection) and check that a probe never panics, returns
// soon after its context's deadline, returns an error a person can read,
// and passes only on an answer that says the service is up.

const (
	// fuzzProbeDeadline is the deadline of every fuzzed probe's context.
	// Short, so that inputs that make the probe wait cost little; a probe
	// cut short by it fails, which every property below allows.
	fuzzProbeDeadline = 100 * time.Millisecond
	// fuzzProbeHang is how long after the deadline a probe that has not
	// returned is declared hung: an upper bound only, generous for 2 noisy
	// cores. No assertion depends on a probe being fast.
	fuzzProbeHang = 10 * time.Second
	// probeErrMax bounds the text of a probe's error: it is a gate check's
	// last error, printed in the gate's report and kept in status -json.
	probeErrMax = 1024
)

// How the fuzzed server delivers its answer on each connection: the low two
// bits choose the delivery, the other bits what happens around it.
const (
	deliverAtOnce  = 0 // the whole answer in one write
	deliverDrip    = 1 // one byte per write, a millisecond apart
	deliverEndless = 2 // the answer again and again until the client goes
	deliverHalf    = 3 // the first half of the answer only

	serveHold        = 1 << 2 // keep the connection open after the answer (else close it)
	serveReset       = 1 << 3 // close with a reset (SO_LINGER 0) instead of a FIN
	serveWaitRequest = 1 << 4 // answer only after the client sent something
	serveNoRead      = 1 << 5 // never read what the client sends
	serveCloseListen = 1 << 6 // stop listening after the first connection
)

// fuzzServer serves answers[n] (the last one for later connections) on the
// n-th connection to a local listener, as mode says, and returns its
// address and a function that closes the listener and every connection and
// waits for the server's goroutines.
func fuzzServer(t *testing.T, answers [][]byte, mode byte) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	stop := make(chan struct{})
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	sleep := func(d time.Duration) bool {
		select {
		case <-stop:
			return false
		case <-time.After(d):
			return true
		}
	}
	serve := func(n int, c net.Conn) {
		defer c.Close()
		answer := answers[min(n, len(answers)-1)]
		if mode&serveReset != 0 {
			_ = c.(*net.TCPConn).SetLinger(0)
		}
		if mode&serveWaitRequest != 0 {
			var b [1]byte
			if _, err := c.Read(b[:]); err != nil {
				return
			}
		}
		if mode&serveNoRead == 0 {
			wg.Go(func() { _, _ = io.Copy(io.Discard, c) })
		}
		switch mode & 3 {
		case deliverAtOnce:
			_, _ = c.Write(answer)
		case deliverDrip:
			for i := range answer {
				if _, err := c.Write(answer[i : i+1]); err != nil || !sleep(time.Millisecond) {
					return
				}
			}
		case deliverEndless:
			unit := answer
			if len(unit) == 0 {
				unit = []byte{0}
			}
			chunk := bytes.Repeat(unit, 4096/len(unit)+1)
			for {
				if _, err := c.Write(chunk); err != nil {
					return
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		case deliverHalf:
			_, _ = c.Write(answer[:len(answer)/2])
		}
		if mode&serveHold != 0 {
			<-stop
		}
	}
	wg.Go(func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { serve(n, c) })
			if mode&serveCloseListen != 0 {
				ln.Close()
			}
		}
	})
	return ln.Addr().String(), func() {
		close(stop)
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}

// runProbe runs probe with a context that ends after deadline and returns
// its error; a probe still running fuzzProbeHang after the deadline fails
// the test.
func runProbe(t *testing.T, deadline time.Duration, probe Probe) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- probe(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(deadline + fuzzProbeHang):
		t.Fatalf("the probe did not return within %s of its deadline", fuzzProbeHang)
		return nil
	}
}

// assertReadableErr checks that err, a gate check's last error, is text a
// person can read in the gate's report: valid UTF-8, no control characters
// (no line breaks that would forge report lines, no terminal escapes),
// bounded, and naming what was probed.
func assertReadableErr(t *testing.T, err error, names string) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	assert.True(t, utf8.ValidString(msg), "not UTF-8: %q", msg)
	assert.False(t, strings.ContainsFunc(msg, unicode.IsControl), "control characters: %q", msg)
	assert.LessOrEqual(t, len(msg), probeErrMax, "error of %d bytes: %.200q…", len(msg), msg)
	assert.Contains(t, msg, names, "the error names what was probed")
}

// answerStream is what a client reads from a connection served in mode:
// the answer, repeated when it is endless (up to more than any probe reads).
func answerStream(answer []byte, mode byte) []byte {
	switch mode & 3 {
	case deliverHalf:
		return answer[:len(answer)/2]
	case deliverEndless:
		if len(answer) == 0 {
			return make([]byte, 2<<20)
		}
		return bytes.Repeat(answer, (2<<20)/len(answer)+1)
	}
	return answer
}

// --- PostgreSQL ----------------------------------------------------------------

// pgOutcome is what a PostgreSQL probe may conclude.
type pgOutcome struct {
	up       bool   // it may pass
	starting bool   // it may return a *PostgresStartingError …
	message  string // … with this message
	// upUnlessAnswered: it may pass only if the answer was cut short (the
	// deadline, a reset): the server accepted TLS, and its plain answer is
	// not PostgreSQL.
	upUnlessAnswered bool
}

// pgWant decodes what a server answering s0 on the probe's first connection
// and s1 on the second one says, independently of ProbePostgres. Failing
// is always allowed: the deadline may cut any exchange short.
func pgWant(s0, s1 []byte) pgOutcome {
	// decode reads one typed message the way the protocol defines it;
	// foreign is an answer no PostgreSQL server gives.
	decode := func(s []byte) (o pgOutcome, foreign bool) {
		if len(s) < 5 {
			return pgOutcome{}, false
		}
		n := binary.BigEndian.Uint32(s[1:5])
		if n < 4 || n > 1<<20 {
			return pgOutcome{}, true
		}
		if uint64(len(s)-1) < uint64(n) {
			return pgOutcome{}, false
		}
		body := s[5 : 1+n]
		switch s[0] {
		case 'R', 'v':
			return pgOutcome{up: true}, false
		case 'E':
			var code, msg string
			for f := range bytes.SplitSeq(body, []byte{0}) {
				if len(f) == 0 {
					break
				}
				switch f[0] {
				case 'C':
					code = string(f[1:])
				case 'M':
					msg = string(f[1:])
				}
			}
			if code == "57P03" {
				return pgOutcome{starting: true, message: msg}, false
			}
			return pgOutcome{up: true}, false
		}
		return pgOutcome{}, true
	}
	if len(s0) == 0 {
		return pgOutcome{}
	}
	switch s0[0] {
	case 'S': // TLS offered: the second, plain attempt decides; no answer there is up
		second, foreign := decode(s1)
		if foreign {
			return pgOutcome{upUnlessAnswered: true}
		}
		second.up = true
		return second
	case 'E': // a server too old for SSLRequest
		return pgOutcome{up: true}
	case 'N':
		o, _ := decode(s0[1:])
		return o
	}
	return pgOutcome{}
}

// pgSeeds are realistic answers: [first connection, second connection].
func pgSeeds() [][2][]byte {
	authOK := append(pgTestAuth(0),
		pgTestMsg('S', []byte("server_version\x0016.4\x00"))...)
	authOK = append(authOK, pgTestMsg('K', make([]byte, 8))...)
	authOK = append(authOK, pgTestMsg('Z', []byte("I"))...)
	starting := pgTestError("57P03", "the database system is starting up")
	n := func(b []byte) []byte { return append([]byte{'N'}, b...) }
	return [][2][]byte{
		{n(authOK), nil},
		{n(pgTestAuth(5)), nil},
		{n(pgTestMsg('R', append(binary.BigEndian.AppendUint32(nil, 10), "SCRAM-SHA-256\x00\x00"...))), nil},
		{n(starting), nil},
		{n(pgTestError("57P03", "the database system is shutting down")), nil},
		{n(pgTestError("28P01", `password authentication failed for user "ktrdr"`)), nil},
		{n(pgTestError("3D000", `database "ktrdr" does not exist`)), nil},
		{n(pgTestMsg('v', append(binary.BigEndian.AppendUint32(nil, 196608), 0, 0, 0, 0))), nil},
		{[]byte("S"), authOK},
		{[]byte("S"), starting},
		{[]byte("S"), nil},
		{pgTestError("0A000", "unsupported frontend protocol"), nil},
		{[]byte("N"), nil},
		{nil, nil},
		{[]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"), nil},
		{[]byte("SSH-2.0-OpenSSH_9.6\r\n"), nil},
		{n([]byte{'E', 0xff, 0xff, 0xff, 0xff}), nil},
		{n([]byte{'E', 0, 0, 0, 2}), nil},
		{n(pgTestError("57P03", "\x1b[2J\x1b[Hstarting\r\n✓ Database ready")), nil},
		{n(pgTestError("57P03", strings.Repeat("long ", 1000))), nil},
		{n(pgTestMsg('E', []byte("C57P03\x00Mno terminator"))), nil},
	}
}

func FuzzProbePostgres(f *testing.F) {
	for _, s := range pgSeeds() {
		for _, mode := range []byte{deliverAtOnce, deliverAtOnce | serveHold, deliverDrip, deliverEndless, deliverHalf | serveReset} {
			f.Add(s[0], s[1], mode)
		}
	}
	f.Fuzz(func(t *testing.T, first, second []byte, mode byte) {
		addr, stop := fuzzServer(t, [][]byte{first, second}, mode)
		defer stop()
		begun := time.Now()
		err := runProbe(t, fuzzProbeDeadline, func(ctx context.Context) error {
			return ProbePostgres(ctx, addr, "ktrdr", "ktrdr")
		})
		// Returned before its deadline could fire, from a server that
		// does not reset: the probe read every answer it asked for.
		answered := time.Since(begun) < fuzzProbeDeadline && mode&serveReset == 0
		assertReadableErr(t, err, addr)

		secondStream := answerStream(second, mode)
		if mode&serveCloseListen != 0 {
			secondStream = nil // the second connection is refused: no answer
		}
		want := pgWant(answerStream(first, mode), secondStream)
		var starting *PostgresStartingError
		switch {
		case err == nil:
			assert.True(t, want.up || want.upUnlessAnswered && !answered, "passed on an answer that does not say the server is up")
		case errors.As(err, &starting):
			require.True(t, want.starting, "reported starting on an answer without SQLSTATE 57P03: %v", err)
			assert.Equal(t, addr, starting.Addr)
			assert.Equal(t, pgPrintable(want.message), starting.Message, "the server's message, made printable")
		}
	})
}

func TestPgPrintable(t *testing.T) {
	long := strings.Repeat("é", 150) // 300 bytes
	for _, tc := range []struct{ name, in, want string }{
		{"plain text is kept", "the database system is starting up", "the database system is starting up"},
		{"non-ASCII text is kept", "das Datenbanksystem fährt herunter", "das Datenbanksystem fährt herunter"},
		{"line breaks and tabs become spaces", "line\r\nnext\tcol", "line  next col"},
		{"terminal escapes are replaced", "\x1b[2Jclear", "\uFFFD[2Jclear"},
		{"C1 controls are replaced", "a\u009bb", "a\uFFFDb"},
		{"invalid UTF-8 is replaced", "a\xffb", "a\uFFFDb"},
		{"long text is cut on a character boundary", long, strings.Repeat("é", 100) + "…"},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, pgPrintable(tc.in))
		})
	}
}

// TestProbePostgresTLSThenForeign: a server that answers the SSLRequest
// with "S" is up only if its plain answer is PostgreSQL or none at all. A
// service whose greeting begins with "S" (SSH) passed the check before.
func TestProbePostgresTLSThenForeign(t *testing.T) {
	ssh := []byte("SSH-2.0-OpenSSH_9.6\r\n")
	for _, tc := range []struct {
		name   string
		first  []byte
		second []byte
		up     bool
	}{
		{"SSH greets every connection", ssh, ssh, false},
		{"TLS offered, then HTTP", []byte("S"), []byte("HTTP/1.1 400 Bad Request\r\n\r\n"), false},
		{"TLS offered, then a message of no PostgreSQL type", []byte("S"), pgTestMsg('Z', []byte("I")), false},
		{"TLS offered, then nothing", []byte("S"), nil, true},
		{"TLS offered, then a message cut short", []byte("S"), pgTestAuth(0)[:6], true},
		{"TLS offered, then authentication", []byte("S"), pgTestAuth(0), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, stop := fuzzServer(t, [][]byte{tc.first, tc.second}, deliverAtOnce|serveWaitRequest)
			defer stop()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err := ProbePostgres(ctx, addr, "ktrdr", "ktrdr")
			if tc.up {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, errNotPostgres)
			assertReadableErr(t, err, addr)
		})
	}
}

// --- HTTP ----------------------------------------------------------------------

// httpWant reads the answer s the way an HTTP client does (1xx interim
// answers skipped) and returns the final status and up to probeMaxBody
// bytes of its body; ok is false when s is no complete HTTP answer.
func httpWant(s []byte) (status int, body []byte, ok bool) {
	r := bufio.NewReader(bytes.NewReader(s))
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	for range 6 {
		resp, err := http.ReadResponse(r, req)
		if err != nil {
			return 0, nil, false
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, probeMaxBody))
		resp.Body.Close()
		if err != nil {
			return 0, nil, false
		}
		return resp.StatusCode, body, true
	}
	return 0, nil, false
}

// httpAnswer is a complete HTTP/1.1 answer with a Content-Length.
func httpAnswer(status string, body string) []byte {
	return fmt.Appendf(nil, "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", status, len(body), body)
}

func httpSeeds() [][]byte {
	return [][]byte{
		httpAnswer("200 OK", `{"status":"ok","version":"standin"}`),
		httpAnswer("200 OK", `[{"worker_id":"a"},{"worker_id":"b"}]`),
		[]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n[1,2,\r\n2\r\n3]\r\n0\r\n\r\n"),
		[]byte("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n[1,2,3,4]"),
		[]byte("HTTP/1.0 200 OK\r\n\r\n{\"workers\":[1,2,3,4]}"),
		httpAnswer("503 Service Unavailable", `{"detail":"starting up"}`),
		httpAnswer("502 Bad Gateway", "<html>Bad Gateway</html>"),
		[]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]"),
		[]byte("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[1,2"),
		[]byte("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnull"),
		[]byte("HTTP/1.1 301 Moved Permanently\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"),
		[]byte("HTTP/1.1 2000 OK\r\n\r\n"),
		[]byte("HTTP/1.1 200\x1b[2J OK\r\n\r\n"),
		[]byte("\x00\x00\x00\x08\x04\xd2\x16\x2f"),
		[]byte("N"),
		[]byte("SSH-2.0-OpenSSH_9.6\r\n"),
		nil,
	}
}

func FuzzHTTPProbes(f *testing.F) {
	for _, s := range httpSeeds() {
		for _, mode := range []byte{deliverAtOnce, deliverAtOnce | serveHold, deliverDrip | serveWaitRequest, deliverEndless, deliverHalf | serveReset} {
			f.Add(s, mode, uint8(2))
		}
	}
	// net/http logs, with the standard logger, up to 4 KiB of any bytes a
	// server sends after its answer ("Unsolicited response received on idle
	// HTTP channel"): endless answers would flood the fuzzer's output.
	log.SetOutput(io.Discard)
	f.Cleanup(func() { log.SetOutput(os.Stderr) })
	f.Fuzz(func(t *testing.T, answer []byte, mode byte, minItems uint8) {
		// Both probes of one answer: a plain status check and a JSON array
		// check, each on its own connection (so the listener stays open).
		addr, stop := fuzzServer(t, [][]byte{answer}, mode&^serveCloseListen)
		defer stop()
		url := "http://" + addr + "/api/v1/workers"
		status, body, complete := httpWant(answerStream(answer, mode))

		err := runProbe(t, fuzzProbeDeadline, HTTPProbe(nil, url, 0))
		assertReadableErr(t, err, url)
		if err == nil {
			assert.True(t, complete && status == http.StatusOK, "passed on an answer that is not a 200")
		}

		err = runProbe(t, fuzzProbeDeadline, JSONArrayProbe(nil, url, int(minItems)))
		assertReadableErr(t, err, url)
		if err == nil {
			require.True(t, complete && status == http.StatusOK, "passed on an answer that is not a 200")
			var items []json.RawMessage
			require.NoError(t, json.Unmarshal(body, &items), "passed on a body that is no JSON array: %q", body)
			assert.NotNil(t, items, "passed on null")
			assert.GreaterOrEqual(t, len(items), int(minItems))
		}
	})
}

// --- the checks' own timeouts ---------------------------------------------------

// TestProbesReturnWithinTheirTimeout runs every probe kind with a context
// that has no deadline against servers that never finish answering: each
// probe must end by its own timeout (ProbeTimeout; ProbePostgres alone:
// pgProbeDefaultTimeout) and fail, well before the generous hang bound.
func TestProbesReturnWithinTheirTimeout(t *testing.T) {
	slowHTTP := []byte("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n[1,")
	for _, tc := range []struct {
		name   string
		answer []byte
		mode   byte
		probe  func(addr string) Probe
	}{
		{"postgres: silent", nil, deliverAtOnce | serveHold, func(a string) Probe { return PostgresProbe(a, "ktrdr", "ktrdr") }},
		{"postgres: drip of a long message", append([]byte{'N', 'E', 0, 0x10, 0, 0}, bytes.Repeat([]byte("x"), 5000)...), deliverDrip | serveHold, func(a string) Probe { return PostgresProbe(a, "ktrdr", "ktrdr") }},
		{"postgres directly: silent", nil, deliverAtOnce | serveHold, func(a string) Probe {
			return func(ctx context.Context) error { return ProbePostgres(ctx, a, "ktrdr", "ktrdr") }
		}},
		{"http: silent", nil, deliverAtOnce | serveHold, func(a string) Probe { return HTTPProbe(nil, "http://"+a+"/", 0) }},
		{"http: endless header", []byte("HTTP/1.1 200 OK\r\nX: "), deliverAtOnce | serveHold, func(a string) Probe { return HTTPProbe(nil, "http://"+a+"/", 0) }},
		{"http: body never finishes", slowHTTP, deliverAtOnce | serveHold, func(a string) Probe { return HTTPProbe(nil, "http://"+a+"/", 0) }},
		{"json array: body never finishes", slowHTTP, deliverAtOnce | serveHold, func(a string) Probe { return JSONArrayProbe(nil, "http://"+a+"/", 1) }},
		{"json array: endless body", slowHTTP, deliverEndless, func(a string) Probe { return JSONArrayProbe(nil, "http://"+a+"/", 1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, stop := fuzzServer(t, [][]byte{tc.answer}, tc.mode)
			defer stop()
			probe := tc.probe(addr)
			done := make(chan error, 1)
			go func() { done <- probe(context.Background()) }()
			select {
			case err := <-done:
				assert.Error(t, err)
			case <-time.After(pgProbeDefaultTimeout + fuzzProbeHang):
				t.Fatalf("no answer within %s of the probe's own timeout", fuzzProbeHang)
			}
		})
	}
}

// TestFuzzOraclesAgree keeps the fuzz targets' own decoders honest on the
// seeds: they must read realistic answers as the probes' unit tests do.
func TestFuzzOraclesAgree(t *testing.T) {
	seeds := pgSeeds()
	assert.Equal(t, pgOutcome{up: true}, pgWant(seeds[0][0], nil), "AuthenticationOk")
	assert.Equal(t, pgOutcome{starting: true, message: "the database system is starting up"}, pgWant(seeds[3][0], nil))
	assert.Equal(t, pgOutcome{up: true, starting: true, message: "the database system is starting up"}, pgWant([]byte("S"), seeds[9][1]))
	assert.Equal(t, pgOutcome{}, pgWant([]byte("HTTP/1.1 400"), nil))
	ssh := []byte("SSH-2.0-OpenSSH_9.6\r\n")
	assert.Equal(t, pgOutcome{upUnlessAnswered: true}, pgWant(ssh, ssh), "an SSH greeting begins with S")
	assert.Equal(t, pgOutcome{up: true}, pgWant([]byte("S"), nil), "TLS offered, then no answer")

	status, body, ok := httpWant(httpSeeds()[1])
	require.True(t, ok)
	assert.Equal(t, 200, status)
	assert.JSONEq(t, `[{"worker_id":"a"},{"worker_id":"b"}]`, string(body))
	status, _, ok = httpWant(httpSeeds()[7])
	require.True(t, ok)
	assert.Equal(t, 200, status, "100 Continue is skipped")
	_, _, ok = httpWant(httpSeeds()[8])
	assert.False(t, ok, "a body cut short is no complete answer")
}
