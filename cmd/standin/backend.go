package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"
	"time"
)

// workerRecord is one entry of GET /api/v1/workers, with ktrdr's field names.
type workerRecord struct {
	WorkerID            string         `json:"worker_id"`
	WorkerType          string         `json:"worker_type"`
	EndpointURL         string         `json:"endpoint_url"`
	Status              string         `json:"status"` // available|busy|temporarily_unavailable
	CurrentOperationID  *string        `json:"current_operation_id"`
	Capabilities        map[string]any `json:"capabilities"`
	LastHealthCheck     *time.Time     `json:"last_health_check"`
	LastHealthyAt       *time.Time     `json:"last_healthy_at"`
	HealthCheckFailures int            `json:"health_check_failures"`
	Metadata            map[string]any `json:"metadata"`
}

const (
	statusAvailable   = "available"
	statusUnavailable = "temporarily_unavailable"
)

// backend keeps registered workers in memory, like ktrdr's WorkerRegistry,
// and health-checks them periodically.
type backend struct {
	cfg    config
	logger *log.Logger
	client *http.Client

	mu      sync.Mutex
	order   []string
	workers map[string]*workerRecord
}

func newBackend(cfg config, logger *log.Logger) *backend {
	timeout := min(cfg.checkInterval, 5*time.Second)
	return &backend{cfg: cfg, logger: logger, client: &http.Client{Timeout: timeout}, workers: map[string]*workerRecord{}}
}

func (b *backend) serve(ctx context.Context, ln net.Listener) error {
	go b.checkLoop(ctx)
	return serveHTTP(ctx, b.logger, b.handler(), ln)
}

func (b *backend) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/health", func(w http.ResponseWriter, r *http.Request) {
		if why := b.cfg.notReady(time.Now()); why != "" {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "version": "standin", "orphan_detector": nil, "detail": why})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "version": "standin", "orphan_detector": nil})
	})
	mux.HandleFunc("GET /api/v1/workers", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, b.snapshot())
	})
	mux.HandleFunc("POST /api/v1/workers/register", b.register)
	mux.HandleFunc("GET /api/v1/operations", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "data": []any{}, "total_count": 0, "active_count": 0})
	})
	mux.HandleFunc("GET /docs", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><title>ktrdr API (standin)</title><p>ktrdr backend stand-in</p>\n")
	})
	mux.HandleFunc("/", notFound)
	return mux
}

type registerRequest struct {
	WorkerID     string         `json:"worker_id"`
	WorkerType   string         `json:"worker_type"`
	EndpointURL  string         `json:"endpoint_url"`
	Capabilities map[string]any `json:"capabilities"`
}

// register is idempotent by worker_id: a second call updates the entry.
func (b *backend) register(w http.ResponseWriter, r *http.Request) {
	var req registerRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": "invalid JSON: " + err.Error()})
		return
	}
	if req.WorkerID == "" || req.WorkerType == "" || req.EndpointURL == "" {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": "worker_id, worker_type and endpoint_url are required"})
		return
	}
	if req.Capabilities == nil {
		req.Capabilities = map[string]any{}
	}
	b.mu.Lock()
	rec, again := b.workers[req.WorkerID]
	if !again {
		rec = &workerRecord{WorkerID: req.WorkerID, Metadata: map[string]any{}}
		b.workers[req.WorkerID] = rec
		b.order = append(b.order, req.WorkerID)
	}
	rec.WorkerType, rec.EndpointURL, rec.Capabilities = req.WorkerType, req.EndpointURL, req.Capabilities
	rec.Status, rec.HealthCheckFailures = statusAvailable, 0
	out := *rec
	b.mu.Unlock()
	verb := "registered"
	if again {
		verb = "re-registered"
	}
	b.logger.Printf("worker %s %s (%s at %s)", req.WorkerID, verb, req.WorkerType, req.EndpointURL)
	writeJSON(w, http.StatusOK, out)
}

func (b *backend) snapshot() []workerRecord {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]workerRecord, 0, len(b.order))
	for _, id := range b.order {
		out = append(out, *b.workers[id])
	}
	return out
}

func (b *backend) checkLoop(ctx context.Context) {
	t := time.NewTicker(b.cfg.checkInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.checkAll(ctx)
		}
	}
}

// checkAll health-checks every registered worker once, concurrently.
func (b *backend) checkAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, w := range b.snapshot() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := b.checkOne(ctx, w.EndpointURL)
			if ctx.Err() != nil {
				return
			}
			b.recordCheck(w.WorkerID, err)
		}()
	}
	wg.Wait()
}

func (b *backend) checkOne(ctx context.Context, endpoint string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Healthy bool `json:"healthy"`
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s/health: HTTP %d", endpoint, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || !body.Healthy {
		return fmt.Errorf("GET %s/health: not healthy", endpoint)
	}
	return nil
}

func (b *backend) recordCheck(id string, err error) {
	now := time.Now().UTC()
	b.mu.Lock()
	rec, ok := b.workers[id]
	if !ok {
		b.mu.Unlock()
		return
	}
	before := rec.Status
	rec.LastHealthCheck = &now
	if err == nil {
		rec.HealthCheckFailures = 0
		rec.LastHealthyAt = &now
		rec.Status = statusAvailable
	} else {
		rec.HealthCheckFailures++
		if rec.HealthCheckFailures >= b.cfg.failureThreshold {
			rec.Status = statusUnavailable
		}
	}
	after, failures := rec.Status, rec.HealthCheckFailures
	b.mu.Unlock()
	if err != nil {
		b.logger.Printf("worker %s health check failed (%d in a row): %v", id, failures, err)
	}
	if before != after {
		b.logger.Printf("worker %s is now %s", id, after)
	}
}
