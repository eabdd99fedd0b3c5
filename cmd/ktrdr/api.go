package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
)

// client talks to one ktrdr API. source says how its URL was chosen, for
// error messages.
type client struct {
	base    string
	source  string
	timeout time.Duration
}

// notAnsweringError is a request that reached no server at all.
type notAnsweringError struct {
	url, source string
	err         error
}

func (e *notAnsweringError) Error() string {
	return fmt.Sprintf("nothing answers at %s (URL from %s): %v", e.url, e.source, e.err)
}

func (e *notAnsweringError) Unwrap() error { return e.err }

// get fetches path and returns the body of a 2xx answer.
func (c *client) get(ctx context.Context, path string) ([]byte, error) {
	url := strings.TrimRight(c.base, "/") + path
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s (URL from %s): %w", url, c.source, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, fmt.Errorf("GET %s: interrupted", url)
		}
		return nil, &notAnsweringError{url: c.base, source: c.source, err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: read the answer: %w", url, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("GET %s (URL from %s): %s: %s", url, c.source, resp.Status, snippet(body))
	}
	return body, nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}

// writeJSON prints the API's own JSON, ending with a newline.
func writeJSON(w io.Writer, body []byte) error {
	body = bytes.TrimRight(body, "\n")
	_, err := fmt.Fprintf(w, "%s\n", body)
	return err
}

func (c *client) health(ctx context.Context, w io.Writer, asJSON bool) error {
	body, err := c.get(ctx, "/api/v1/health")
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, body)
	}
	var h struct {
		Status  string `json:"status"`
		Version string `json:"version"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return fmt.Errorf("GET %s/api/v1/health: unexpected answer: %w: %s", c.base, err, snippet(body))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "API\t%s\n", c.base)
	fmt.Fprintf(tw, "status\t%s\n", orDash(h.Status))
	fmt.Fprintf(tw, "version\t%s\n", orDash(h.Version))
	return tw.Flush()
}

// worker is the part of GET /api/v1/workers' entries the table shows.
type worker struct {
	WorkerID           string `json:"worker_id"`
	WorkerType         string `json:"worker_type"`
	EndpointURL        string `json:"endpoint_url"`
	Status             string `json:"status"`
	CurrentOperationID string `json:"current_operation_id"`
	LastHealthCheck    string `json:"last_health_check"`
}

func (c *client) workers(ctx context.Context, w io.Writer, asJSON bool) error {
	body, err := c.get(ctx, "/api/v1/workers")
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, body)
	}
	var ws []worker // a bare array, not an object wrapper
	if err := json.Unmarshal(body, &ws); err != nil {
		return fmt.Errorf("GET %s/api/v1/workers: unexpected answer: %w: %s", c.base, err, snippet(body))
	}
	if len(ws) == 0 {
		_, err := fmt.Fprintf(w, "no workers registered at %s\n", c.base)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER ID\tTYPE\tSTATUS\tENDPOINT\tOPERATION\tLAST HEALTH CHECK")
	for _, x := range ws {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", orDash(x.WorkerID), orDash(x.WorkerType), orDash(x.Status),
			orDash(x.EndpointURL), orDash(x.CurrentOperationID), orDash(x.LastHealthCheck))
	}
	return tw.Flush()
}

// operation is the part of an operation the table shows.
type operation struct {
	OperationID   string `json:"operation_id"`
	OperationType string `json:"operation_type"`
	Status        string `json:"status"`
	CreatedAt     string `json:"created_at"`
	Progress      *struct {
		Percentage  *float64 `json:"percentage"`
		CurrentStep string   `json:"current_step"`
	} `json:"progress"`
}

func (c *client) operations(ctx context.Context, w io.Writer, asJSON bool) error {
	body, err := c.get(ctx, "/api/v1/operations")
	if err != nil {
		return err
	}
	var resp struct {
		Success    bool        `json:"success"`
		Data       []operation `json:"data"`
		TotalCount *int        `json:"total_count"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return fmt.Errorf("GET %s/api/v1/operations: unexpected answer: %w: %s", c.base, err, snippet(body))
	}
	if !resp.Success {
		return fmt.Errorf("GET %s/api/v1/operations: the API reports a failure: %s", c.base, snippet(body))
	}
	if asJSON {
		return writeJSON(w, body)
	}
	if len(resp.Data) == 0 {
		_, err := fmt.Fprintf(w, "no operations at %s\n", c.base)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OPERATION ID\tTYPE\tSTATUS\tPROGRESS\tCREATED")
	for _, o := range resp.Data {
		progress := "-"
		if o.Progress != nil && o.Progress.Percentage != nil {
			progress = fmt.Sprintf("%.0f%%", *o.Progress.Percentage)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", orDash(o.OperationID), orDash(o.OperationType), orDash(o.Status),
			progress, orDash(o.CreatedAt))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if resp.TotalCount != nil && *resp.TotalCount > len(resp.Data) {
		_, err := fmt.Fprintf(w, "showing %d of %d operations\n", len(resp.Data), *resp.TotalCount)
		return err
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
