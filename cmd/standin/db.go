package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Just enough of the PostgreSQL v3 wire protocol for pg_isready, the
// sandbox gate and connection checks: SSLRequest/GSSENCRequest are refused
// ('N'), a StartupMessage gets AuthenticationOk, ParameterStatus,
// BackendKeyData and ReadyForQuery (or a FATAL 57P03 while "starting up"),
// Terminate closes. Queries are answered with an error: nothing is stored.
const (
	pgSSLRequest    = 80877103
	pgGSSENCRequest = 80877104
	pgCancelRequest = 80877102
	pgProtocol3     = 196608
)

func serveDB(ctx context.Context, cfg config, logger *log.Logger, ln net.Listener) error {
	var wg sync.WaitGroup
	var conns sync.Map
	var pid atomic.Int32
	go func() {
		<-ctx.Done()
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				wg.Wait()
				return nil
			}
			return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
		}
		conns.Store(c, true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conns.Delete(c)
			defer c.Close()
			if err := dbSession(cfg, logger, c, pid.Add(1)); err != nil && !errors.Is(err, io.EOF) && ctx.Err() == nil {
				logger.Printf("connection from %s: %v", c.RemoteAddr(), err)
			}
		}()
	}
}

func dbSession(cfg config, logger *log.Logger, c net.Conn, pid int32) error {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	var params map[string]string
	for params == nil {
		body, err := readStartup(r)
		if err != nil {
			return err
		}
		code := binary.BigEndian.Uint32(body[:4])
		switch code {
		case pgSSLRequest, pgGSSENCRequest:
			if _, err := c.Write([]byte{'N'}); err != nil {
				return err
			}
		case pgCancelRequest:
			logger.Printf("cancel request from %s ignored", c.RemoteAddr())
			return nil
		case pgProtocol3:
			params = parseParams(body[4:])
		default:
			logger.Printf("connection from %s: unsupported protocol %d.%d", c.RemoteAddr(), code>>16, code&0xffff)
			return writeMsg(c, 'E', errorBody("FATAL", "0A000", fmt.Sprintf("unsupported frontend protocol %d.%d: server supports 3.0 to 3.0", code>>16, code&0xffff)))
		}
	}
	who := fmt.Sprintf("%s (user=%s database=%s)", c.RemoteAddr(), params["user"], params["database"])
	if why := cfg.notReady(time.Now()); why != "" {
		logger.Printf("connection from %s refused: the database system is starting up [%s]", who, why)
		return writeMsg(c, 'E', errorBody("FATAL", "57P03", "the database system is starting up"))
	}
	logger.Printf("connection from %s accepted", who)
	var out bytes.Buffer
	appendMsg(&out, 'R', be32(0)) // AuthenticationOk
	for _, kv := range [][2]string{
		{"server_version", "16.0 (ktrdr standin)"}, {"server_encoding", "UTF8"}, {"client_encoding", "UTF8"},
		{"DateStyle", "ISO, MDY"}, {"integer_datetimes", "on"}, {"standard_conforming_strings", "on"},
		{"TimeZone", "UTC"}, {"application_name", params["application_name"]},
	} {
		appendMsg(&out, 'S', []byte(kv[0]+"\x00"+kv[1]+"\x00"))
	}
	appendMsg(&out, 'K', append(be32(uint32(pid)), be32(uint32(pid)*2654435761)...)) // BackendKeyData
	appendMsg(&out, 'Z', []byte{'I'})                                                // ReadyForQuery
	if _, err := c.Write(out.Bytes()); err != nil {
		return err
	}
	inError := false
	for {
		_ = c.SetDeadline(time.Now().Add(10 * time.Minute))
		typ, _, err := readMsg(r)
		if err != nil {
			return err
		}
		switch typ {
		case 'X':
			logger.Printf("connection from %s terminated by client", who)
			return nil
		case 'Q':
			out.Reset()
			appendMsg(&out, 'E', errorBody("ERROR", "0A000", "the ktrdr stand-in database does not run queries"))
			appendMsg(&out, 'Z', []byte{'I'})
			if _, err := c.Write(out.Bytes()); err != nil {
				return err
			}
		case 'S': // Sync ends an extended-protocol batch.
			inError = false
			if err := writeMsg(c, 'Z', []byte{'I'}); err != nil {
				return err
			}
		default:
			if !inError {
				inError = true
				if err := writeMsg(c, 'E', errorBody("ERROR", "0A000", "the ktrdr stand-in database does not run queries")); err != nil {
					return err
				}
			}
		}
	}
}

func readStartup(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 8 || n > 10000 {
		return nil, fmt.Errorf("invalid startup packet length %d", n)
	}
	body := make([]byte, n-4)
	_, err := io.ReadFull(r, body)
	return body, err
}

func readMsg(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n < 4 || n > 1<<24 {
		return 0, nil, fmt.Errorf("invalid message length %d", n)
	}
	body := make([]byte, n-4)
	_, err := io.ReadFull(r, body)
	return hdr[0], body, err
}

func parseParams(b []byte) map[string]string {
	params := map[string]string{}
	parts := bytes.Split(b, []byte{0})
	for i := 0; i+1 < len(parts); i += 2 {
		if len(parts[i]) == 0 {
			break
		}
		params[string(parts[i])] = string(parts[i+1])
	}
	return params
}

func errorBody(severity, code, msg string) []byte {
	var b bytes.Buffer
	for _, f := range [][2]string{{"S", severity}, {"V", severity}, {"C", code}, {"M", msg}} {
		b.WriteString(f[0] + f[1] + "\x00")
	}
	b.WriteByte(0)
	return b.Bytes()
}

func appendMsg(buf *bytes.Buffer, typ byte, body []byte) {
	buf.WriteByte(typ)
	buf.Write(be32(uint32(len(body) + 4)))
	buf.Write(body)
}

func writeMsg(w io.Writer, typ byte, body []byte) error {
	var buf bytes.Buffer
	appendMsg(&buf, typ, body)
	_, err := w.Write(buf.Bytes())
	return err
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
