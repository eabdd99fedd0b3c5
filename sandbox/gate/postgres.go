package gate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// PostgreSQL wire protocol constants used by ProbePostgres.
const (
	pgSSLRequestCode   = 80877103
	pgProtocolVersion3 = 196608 // 3.0
	pgCannotConnectNow = "57P03"

	// pgMessageMax bounds the bytes of a server's message that an error
	// keeps (PostgreSQL's own messages are far shorter).
	pgMessageMax = 200

	// pgProbeDefaultTimeout bounds a probe whose context has no deadline,
	// like pg_isready's default -t 3.
	pgProbeDefaultTimeout = 3 * time.Second
)

// errNotPostgres marks an answer that no PostgreSQL server gives.
var errNotPostgres = errors.New("not a PostgreSQL server")

// PostgresStartingError reports a PostgreSQL server that answered but refused
// the connection with SQLSTATE 57P03 (cannot_connect_now): it is starting up,
// shutting down, or a standby that does not accept connections yet. It is
// what pg_isready calls "rejecting connections" (exit status 1). Callers that
// wait for a database keep polling on this error.
type PostgresStartingError struct {
	Addr    string // the address probed
	Message string // the server's message, e.g. "the database system is starting up", made printable (see pgPrintable)
}

func (e *PostgresStartingError) Error() string {
	return fmt.Sprintf("postgres at %s is not accepting connections yet (SQLSTATE %s): %s", e.Addr, pgCannotConnectNow, e.Message)
}

// ProbePostgres checks the PostgreSQL server at addr the way pg_isready does:
// it sends an SSLRequest, then a protocol 3.0 StartupMessage for user and
// database, and reads the first answer.
//
// It returns nil when the server is up: it asked for any kind of
// authentication, or refused with an error other than 57P03 (a wrong
// password or a missing database still means the server accepts
// connections). It returns a *PostgresStartingError on SQLSTATE 57P03, and
// another error, naming addr, when nothing answers (refused, timed out,
// connection closed, or not PostgreSQL).
//
// addr is host:port, or the path of a Unix socket (containing a "/", e.g.
// /var/run/postgresql/.s.PGSQL.5432). The whole exchange respects ctx's
// deadline; without one it gives up after 3 seconds.
//
// If the server agrees to TLS ('S'), ProbePostgres does not negotiate TLS:
// it reconnects without SSLRequest to read the startup answer, and treats
// the server as up if that second attempt gets no answer (the server
// answered the SSLRequest, so it is listening), but not if it answers with
// what no PostgreSQL server sends: a greeting that merely begins with "S",
// such as SSH's, is not PostgreSQL.
func ProbePostgres(ctx context.Context, addr, user, database string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, pgProbeDefaultTimeout)
		defer cancel()
	}
	sslAccepted, err := pgProbeOnce(ctx, addr, user, database, true)
	if !sslAccepted {
		return err
	}
	// The server offered TLS. Ask again in plain text to learn its state.
	_, err = pgProbeOnce(ctx, addr, user, database, false)
	var starting *PostgresStartingError
	if errors.As(err, &starting) || errors.Is(err, errNotPostgres) {
		return err
	}
	return nil
}

// pgProbeOnce runs one connection of the probe. sslAccepted reports that the
// server answered the SSLRequest with 'S' (the exchange stops there).
func pgProbeOnce(ctx context.Context, addr, user, database string, sslRequest bool) (sslAccepted bool, err error) {
	network := "tcp"
	if strings.Contains(addr, "/") {
		network = "unix"
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return false, fmt.Errorf("probe postgres at %s: no response: %w", addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	noResponse := func(step string, err error) error {
		var ne net.Error
		switch {
		case ctx.Err() != nil:
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		case errors.As(err, &ne) && ne.Timeout():
			// The connection deadline is ctx's; it can fire just before ctx does.
			err = fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
		}
		return fmt.Errorf("probe postgres at %s: no response to %s: %w", addr, step, err)
	}

	r := bufio.NewReader(conn)
	if sslRequest {
		var req [8]byte
		binary.BigEndian.PutUint32(req[0:4], 8)
		binary.BigEndian.PutUint32(req[4:8], pgSSLRequestCode)
		if _, err := conn.Write(req[:]); err != nil {
			return false, noResponse("SSLRequest", err)
		}
		b, err := r.ReadByte()
		if err != nil {
			return false, noResponse("SSLRequest", err)
		}
		switch b {
		case 'S':
			return true, nil
		case 'N':
		case 'E':
			// A server too old for SSLRequest answers with an error; it is up.
			return false, nil
		default:
			return false, fmt.Errorf("probe postgres at %s: %w: SSLRequest answered with byte 0x%02x", addr, errNotPostgres, b)
		}
	}

	if _, err := conn.Write(pgStartupMessage(user, database)); err != nil {
		return false, noResponse("StartupMessage", err)
	}
	typ, body, err := pgReadMessage(r)
	if errors.Is(err, errNotPostgres) {
		return false, fmt.Errorf("probe postgres at %s: %w", addr, err)
	}
	if err != nil {
		return false, noResponse("StartupMessage", err)
	}
	switch typ {
	case 'R', 'v':
		// Authentication request of any kind, or NegotiateProtocolVersion:
		// the server accepts connections.
		return false, nil
	case 'E':
		fields := pgErrorFields(body)
		if fields['C'] == pgCannotConnectNow {
			return false, &PostgresStartingError{Addr: addr, Message: pgPrintable(fields['M'])}
		}
		return false, nil
	default:
		return false, fmt.Errorf("probe postgres at %s: %w: StartupMessage answered with message type %q", addr, errNotPostgres, typ)
	}
}

// pgStartupMessage encodes a protocol 3.0 StartupMessage.
func pgStartupMessage(user, database string) []byte {
	var params bytes.Buffer
	for _, kv := range [][2]string{{"user", user}, {"database", database}, {"application_name", "pg_isready"}} {
		if kv[1] == "" {
			continue
		}
		params.WriteString(kv[0])
		params.WriteByte(0)
		params.WriteString(kv[1])
		params.WriteByte(0)
	}
	params.WriteByte(0)
	msg := make([]byte, 8, 8+params.Len())
	binary.BigEndian.PutUint32(msg[0:4], uint32(8+params.Len()))
	binary.BigEndian.PutUint32(msg[4:8], pgProtocolVersion3)
	return append(msg, params.Bytes()...)
}

// pgReadMessage reads one typed backend message.
func pgReadMessage(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:5])
	if n < 4 || n > 1<<20 {
		return 0, nil, fmt.Errorf("%w: StartupMessage answered with message type %q of implausible length %d", errNotPostgres, hdr[0], n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return hdr[0], body, nil
}

// pgErrorFields decodes the fields of an ErrorResponse or NoticeResponse body.
func pgErrorFields(body []byte) map[byte]string {
	fields := map[byte]string{}
	for len(body) > 0 && body[0] != 0 {
		code := body[0]
		body = body[1:]
		i := bytes.IndexByte(body, 0)
		if i < 0 {
			fields[code] = string(body)
			break
		}
		fields[code] = string(body[:i])
		body = body[i+1:]
	}
	return fields
}

// pgPrintable makes a message from whatever answers on a port safe to print
// in the gate's report and keep in its status: invalid UTF-8 and control
// characters (line breaks that would forge report lines, terminal escapes)
// are replaced, line breaks and tabs by a space, and the text is cut to
// pgMessageMax bytes, ending in "…" when cut.
func pgPrintable(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f':
			return ' '
		case unicode.IsControl(r):
			return '\uFFFD'
		}
		return r
	}, s)
	if len(s) <= pgMessageMax {
		return s
	}
	cut := pgMessageMax
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
