package gate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Probe is one attempt at a gate check: nil means the check passes.
type Probe func(ctx context.Context) error

// ProbeTimeout bounds each probe attempt, so a hung service costs one slow
// attempt, not the gate.
const ProbeTimeout = time.Second

const probeMaxBody = 1 << 20

// probeClient does not keep connections alive: every attempt sees the
// service as a new client would, and nothing lingers after the gate.
var probeClient = &http.Client{Transport: &http.Transport{
	Proxy:             nil,
	DisableKeepAlives: true,
	DialContext:       (&net.Dialer{Timeout: ProbeTimeout}).DialContext,
}}

// ArrayTooShortError reports a JSON array with fewer entries than required.
type ArrayTooShortError struct {
	URL       string
	Got, Want int
}

func (e *ArrayTooShortError) Error() string {
	return fmt.Sprintf("get %s: array has %d entries, want ≥ %d", e.URL, e.Got, e.Want)
}

// HTTPProbe passes when GET url answers with status (0 means 200).
// A nil client means a client without keep-alives.
func HTTPProbe(client *http.Client, url string, status int) Probe {
	if status == 0 {
		status = http.StatusOK
	}
	return func(ctx context.Context) error {
		_, err := probeGet(ctx, client, url, status)
		return err
	}
}

// JSONArrayProbe passes when GET url answers 200 with a bare JSON array of
// at least min entries (an object wrapping an array does not count).
func JSONArrayProbe(client *http.Client, url string, min int) Probe {
	return func(ctx context.Context) error {
		body, err := probeGet(ctx, client, url, http.StatusOK)
		if err != nil {
			return err
		}
		trimmed := bytes.TrimLeft(body, " \t\r\n")
		if len(trimmed) == 0 {
			return fmt.Errorf("get %s: empty response, want a JSON array", url)
		}
		var items []json.RawMessage
		if err := json.Unmarshal(trimmed, &items); err != nil {
			switch {
			case trimmed[0] == '{':
				return fmt.Errorf("get %s: response is a JSON object, want a bare array", url)
			case !json.Valid(trimmed):
				return fmt.Errorf("get %s: response is not JSON: %q", url, snippet(trimmed))
			default:
				return fmt.Errorf("get %s: response is not a JSON array: %q", url, snippet(trimmed))
			}
		}
		if items == nil { // JSON null
			return fmt.Errorf("get %s: response is null, want a JSON array", url)
		}
		if len(items) < min {
			return &ArrayTooShortError{URL: url, Got: len(items), Want: min}
		}
		return nil
	}
}

// TCPProbe passes when a TCP connection to addr (host:port) opens. It is
// weak evidence: Docker's port forwarding accepts before the service does.
func TCPProbe(addr string) Probe {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
		defer cancel()
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("connect %s: %w", addr, unwrapOp(err))
		}
		return conn.Close()
	}
}

// PostgresProbe passes when the PostgreSQL server at addr accepts a startup
// for user and database, as pg_isready does (see ProbePostgres).
func PostgresProbe(addr, user, db string) Probe {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
		defer cancel()
		return ProbePostgres(ctx, addr, user, db)
	}
}

func probeGet(ctx context.Context, client *http.Client, rawURL string, status int) ([]byte, error) {
	if client == nil {
		client = probeClient
	}
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", rawURL, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("get %s: %w", rawURL, unwrapOp(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, probeMaxBody))
	if resp.StatusCode != status {
		return nil, fmt.Errorf("get %s: status %d, want %d", rawURL, resp.StatusCode, status)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: read body: %w", rawURL, err)
	}
	return body, nil
}

// unwrapOp shortens "dial tcp 127.0.0.1:1: connect: connection refused" to
// "connection refused" when the address is already in the message.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" && op.Err != nil {
		return op.Err
	}
	return err
}

func snippet(b []byte) string {
	const n = 40
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
