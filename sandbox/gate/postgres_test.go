package gate

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ktrdr/sandboxkit/internal/pgtest"
)

func TestProbePostgresRealServerUp(t *testing.T) {
	addr := pgtest.Start(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	assert.NoError(t, ProbePostgres(ctx, addr, "ktrdr", "ktrdr"))
	assert.NoError(t, ProbePostgres(ctx, addr, "nosuchuser", "nosuchdb"), "an authentication error still means the server is up")
}

func TestProbePostgresRealServerStarting(t *testing.T) {
	addr := pgtest.Start(t, pgtest.Options{Standby: true})
	// A standby without hot standby rejects connections for as long as it runs.
	for range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err := ProbePostgres(ctx, addr, "ktrdr", "ktrdr")
		cancel()
		var starting *PostgresStartingError
		require.ErrorAs(t, err, &starting)
		assert.Equal(t, addr, starting.Addr)
		assert.NotEmpty(t, starting.Message)
		assert.Contains(t, err.Error(), addr)
		time.Sleep(100 * time.Millisecond)
	}
}

func TestProbePostgresNotListening(t *testing.T) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePortForTest(t)))
	err := ProbePostgres(t.Context(), addr, "ktrdr", "ktrdr")
	require.Error(t, err)
	var starting *PostgresStartingError
	assert.False(t, errors.As(err, &starting))
	assert.Contains(t, err.Error(), addr)
}

// --- protocol corners, against a scripted server -----------------------------

// pgTestFakeServer answers each connection with serve (given the 0-based
// connection number) and returns its address.
func pgTestFakeServer(t *testing.T, serve func(n int, c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				serve(n, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// pgTestReadStartup reads one untyped startup-phase packet and returns its code.
func pgTestReadStartup(c net.Conn) uint32 {
	var hdr [8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return 0
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	_, _ = io.CopyN(io.Discard, c, int64(n)-8)
	return binary.BigEndian.Uint32(hdr[4:])
}

func pgTestMsg(typ byte, body []byte) []byte {
	out := []byte{typ}
	out = binary.BigEndian.AppendUint32(out, uint32(len(body)+4))
	return append(out, body...)
}

func pgTestError(code, msg string) []byte {
	return pgTestMsg('E', []byte("SFATAL\x00VFATAL\x00C"+code+"\x00M"+msg+"\x00\x00"))
}

func pgTestAuth(code uint32) []byte {
	return pgTestMsg('R', binary.BigEndian.AppendUint32(nil, code))
}

func TestProbePostgresProtocol(t *testing.T) {
	// plain: answer the SSLRequest with 'N', then reply to the StartupMessage.
	plain := func(reply []byte) func(int, net.Conn) {
		return func(_ int, c net.Conn) {
			if pgTestReadStartup(c) != pgSSLRequestCode {
				return
			}
			_, _ = c.Write([]byte{'N'})
			if pgTestReadStartup(c) != pgProtocolVersion3 {
				return
			}
			_, _ = c.Write(reply)
		}
	}
	// tls: agree to TLS on the first connection; the second gets reply (nil: close).
	tls := func(reply []byte) func(int, net.Conn) {
		return func(n int, c net.Conn) {
			code := pgTestReadStartup(c)
			if n == 0 && code == pgSSLRequestCode {
				_, _ = c.Write([]byte{'S'})
				return
			}
			if code == pgProtocolVersion3 && reply != nil {
				_, _ = c.Write(reply)
			}
		}
	}
	for _, tc := range []struct {
		name     string
		serve    func(int, net.Conn)
		up       bool
		starting string // the expected message of a *PostgresStartingError
	}{
		{name: "authentication ok", serve: plain(pgTestAuth(0)), up: true},
		{name: "md5 password requested", serve: plain(pgTestAuth(5)), up: true},
		{name: "SASL requested", serve: plain(pgTestMsg('R', append(binary.BigEndian.AppendUint32(nil, 10), "SCRAM-SHA-256\x00\x00"...))), up: true},
		{name: "password failed", serve: plain(pgTestError("28P01", `password authentication failed for user "ktrdr"`)), up: true},
		{name: "database missing", serve: plain(pgTestError("3D000", `database "ktrdr" does not exist`)), up: true},
		{name: "starting up", serve: plain(pgTestError("57P03", "the database system is starting up")), starting: "the database system is starting up"},
		{name: "keyed on the code not the text", serve: plain(pgTestError("57P03", "das Datenbanksystem startet")), starting: "das Datenbanksystem startet"},
		{name: "shutting down message, other code", serve: plain(pgTestError("53300", "the database system is starting up")), up: true},
		{name: "TLS offered then auth", serve: tls(pgTestAuth(0)), up: true},
		{name: "TLS offered then starting", serve: tls(pgTestError("57P03", "the database system is starting up")), starting: "the database system is starting up"},
		{name: "TLS offered then plain refused", serve: tls(nil), up: true},
		{name: "accepted then closed (docker proxy, no server)", serve: func(int, net.Conn) {}},
		{name: "not postgres", serve: func(_ int, c net.Conn) { _, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")) }},
		{name: "closed after N", serve: func(_ int, c net.Conn) { pgTestReadStartup(c); _, _ = c.Write([]byte{'N'}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := pgTestFakeServer(t, tc.serve)
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			err := ProbePostgres(ctx, addr, "ktrdr", "ktrdr")
			var starting *PostgresStartingError
			switch {
			case tc.up:
				assert.NoError(t, err)
			case tc.starting != "":
				require.ErrorAs(t, err, &starting)
				assert.Equal(t, &PostgresStartingError{Addr: addr, Message: tc.starting}, starting)
			default:
				require.Error(t, err)
				assert.False(t, errors.As(err, &starting), "not a starting error: %v", err)
				assert.Contains(t, err.Error(), addr)
			}
		})
	}
}

func TestProbePostgresRespectsDeadline(t *testing.T) {
	// A server that accepts and never answers, for as long as the test runs:
	// only the context's deadline can end the probe, and its error says so.
	silent := make(chan struct{})
	defer close(silent)
	addr := pgTestFakeServer(t, func(_ int, c net.Conn) { <-silent })
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := ProbePostgres(ctx, addr, "ktrdr", "ktrdr")
	require.Error(t, err)
	assert.Contains(t, err.Error(), addr)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func freePortForTest(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
