package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"
)

func serveWorker(ctx context.Context, cfg config, logger *log.Logger, ln net.Listener) error {
	service := cfg.workerType + "-worker"
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		body := map[string]any{
			"healthy": true, "service": service, "worker_id": cfg.workerID, "status": "idle",
			"current_operation": nil, "timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		}
		if why := cfg.notReady(time.Now()); why != "" {
			body["healthy"], body["status"], body["detail"] = false, "unavailable", why
			writeJSON(w, http.StatusServiceUnavailable, body)
			return
		}
		writeJSON(w, http.StatusOK, body)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"service": service, "worker_id": cfg.workerID, "version": "standin"})
	})
	mux.HandleFunc("/", notFound)

	if cfg.noRegister {
		logger.Printf("not registering with %s (%s=1)", cfg.apiURL, envNoRegister)
	} else {
		go registerLoop(ctx, cfg, logger)
	}
	return serveHTTP(ctx, logger, mux, ln)
}

// registerLoop keeps the worker registered: it registers, then every
// cfg.recheck asks the backend whether it still lists this worker (a
// restarted backend forgets its workers) and registers again if not.
func registerLoop(ctx context.Context, cfg config, logger *log.Logger) {
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		registerUntilDone(ctx, cfg, logger)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(cfg.recheck):
			}
			if listed, err := backendLists(ctx, client, cfg); err == nil && !listed {
				logger.Printf("backend at %s no longer lists %s: registering again", cfg.apiURL, cfg.workerID)
				break
			}
		}
	}
}

// backendLists reports whether the backend's worker list has this worker.
func backendLists(ctx context.Context, client *http.Client, cfg config) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.apiURL+"/api/v1/workers", nil)
	if err != nil {
		return false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("status %d", resp.StatusCode)
	}
	var workers []struct {
		WorkerID string `json:"worker_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&workers); err != nil {
		return false, err
	}
	for _, w := range workers {
		if w.WorkerID == cfg.workerID {
			return true, nil
		}
	}
	return false, nil
}

// registerUntilDone registers the worker with the backend, retrying until
// it succeeds: the first retry after cfg.registerBackoff, doubling up to
// cfg.registerMax.
func registerUntilDone(ctx context.Context, cfg config, logger *log.Logger) {
	client := &http.Client{Timeout: 10 * time.Second}
	payload, _ := json.Marshal(map[string]any{
		"worker_id": cfg.workerID, "worker_type": cfg.workerType, "endpoint_url": cfg.workerEndpoint,
		"capabilities": map[string]any{},
	})
	url := cfg.apiURL + "/api/v1/workers/register"
	delay := cfg.registerBackoff
	for attempt := 1; ; attempt++ {
		err := registerOnce(ctx, client, url, payload)
		if err == nil {
			logger.Printf("registered with backend at %s as %s (%s, endpoint %s), attempt %d", cfg.apiURL, cfg.workerID, cfg.workerType, cfg.workerEndpoint, attempt)
			return
		}
		if ctx.Err() != nil {
			return
		}
		logger.Printf("registration attempt %d at %s failed: %v; retrying in %s", attempt, url, err, delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, cfg.registerMax)
	}
}

func registerOnce(ctx context.Context, client *http.Client, url string, payload []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}
