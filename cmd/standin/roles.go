package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// runRole starts cfg.role and returns the exit status: 0 after a signal,
// 3 after KTRDR_STANDIN_EXIT_AFTER, 1 when the role cannot run.
func runRole(ctx context.Context, cfg config, stdout io.Writer) int {
	logger := log.New(&lockedWriter{w: stdout}, cfg.role+": ", log.LstdFlags|log.Lmicroseconds|log.LUTC)
	logger.Printf("standin %s starting role %s (fault knobs: %s)", version, cfg.role, cfg.knobs())

	var exit <-chan time.Time
	if cfg.exitAfter > 0 {
		t := time.NewTimer(cfg.exitAfter)
		defer t.Stop()
		exit = t.C
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- serveRole(ctx, cfg, logger) }()
	select {
	case err := <-errc:
		if err != nil {
			logger.Printf("failed: %v", err)
			return 1
		}
		logger.Printf("stopped")
		return 0
	case <-exit:
		logger.Printf("exiting with status 3 after %s (%s)", cfg.exitAfter, envExitAfter)
		cancel()
		<-errc
		return 3
	}
}

func serveRole(ctx context.Context, cfg config, logger *log.Logger) error {
	if cfg.startDelay > 0 {
		logger.Printf("delaying start by %s (%s)", cfg.startDelay, envStartDelay)
		select {
		case <-time.After(cfg.startDelay):
		case <-ctx.Done():
			return nil
		}
	}
	// The extra ports listen first, so that the main port accepting
	// connections means every port does.
	var extra []net.Listener
	for _, p := range cfg.extraPorts {
		ln, err := listen(cfg, p, logger)
		if err != nil {
			closeAll(extra)
			return err
		}
		extra = append(extra, ln)
	}
	ln, err := listen(cfg, cfg.port, logger)
	if err != nil {
		closeAll(extra)
		return err
	}
	if len(extra) == 0 {
		return serveMain(ctx, cfg, logger, ln)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		err := serveHTTP(ctx, logger, genericHandler(cfg), extra...)
		if err != nil {
			cancel() // a failed extra port stops the role too
		}
		errc <- err
	}()
	err = serveMain(ctx, cfg, logger, ln)
	cancel()
	return errors.Join(err, <-errc)
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// serveMain serves the role on its main port ln until ctx ends.
func serveMain(ctx context.Context, cfg config, logger *log.Logger, ln net.Listener) error {
	switch cfg.role {
	case "backend":
		return newBackend(cfg, logger).serve(ctx, ln)
	case "worker":
		return serveWorker(ctx, cfg, logger, ln)
	case "db":
		return serveDB(ctx, cfg, logger, ln)
	case "jaeger":
		return serveJaeger(ctx, cfg, logger, ln)
	case "prometheus":
		return serveHTTP(ctx, logger, prometheusHandler(cfg), ln)
	case "grafana":
		return serveHTTP(ctx, logger, grafanaHandler(cfg), ln)
	case "http":
		return serveHTTP(ctx, logger, genericHandler(cfg), ln)
	}
	ln.Close()
	return fmt.Errorf("unknown role %q", cfg.role)
}

func listen(cfg config, port int, logger *log.Logger) (net.Listener, error) {
	addr := net.JoinHostPort(cfg.host, strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	logger.Printf("listening on %s", ln.Addr())
	return ln, nil
}

// serveHTTP serves h on every listener until ctx ends, then shuts down
// within two seconds.
func serveHTTP(ctx context.Context, logger *log.Logger, h http.Handler, lns ...net.Listener) error {
	srv := &http.Server{Handler: logRequests(logger, h), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { errc <- srv.Serve(ln) }()
	}
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	case err := <-errc:
		srv.Close()
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func logRequests(logger *log.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		logger.Printf("%s %s %d %s from %s", r.Method, r.URL.RequestURI(), rec.status, time.Since(start).Round(time.Microsecond), r.RemoteAddr)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, map[string]any{"detail": "Not Found"})
}

// lockedWriter serialises log writes from many goroutines to one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func serveJaeger(ctx context.Context, cfg config, logger *log.Logger, ui net.Listener) error {
	grpc, err := listen(cfg, cfg.otlpGRPC, logger)
	if err != nil {
		ui.Close()
		return err
	}
	otlpHTTP, err := listen(cfg, cfg.otlpHTTP, logger)
	if err != nil {
		ui.Close()
		grpc.Close()
		return err
	}
	// OTLP gRPC: accept and drain; nothing here speaks HTTP/2.
	go func() {
		<-ctx.Done()
		grpc.Close()
	}()
	go func() {
		for {
			c, err := grpc.Accept()
			if err != nil {
				return
			}
			logger.Printf("OTLP gRPC connection from %s", c.RemoteAddr())
			go func() {
				defer c.Close()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	uiMux := http.NewServeMux()
	uiMux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if why := cfg.notReady(time.Now()); why != "" {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><title>Jaeger UI (standin)</title><p>Jaeger UI stand-in</p>\n")
	})
	uiMux.HandleFunc("GET /api/services", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"data": []string{}, "total": 0, "limit": 0, "offset": 0, "errors": nil})
	})
	uiMux.HandleFunc("/", notFound)
	otlpMux := http.NewServeMux()
	otlpMux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		writeJSON(w, http.StatusOK, map[string]any{})
	})
	errc := make(chan error, 2)
	go func() { errc <- serveHTTP(ctx, logger, uiMux, ui) }()
	go func() { errc <- serveHTTP(ctx, logger, otlpMux, otlpHTTP) }()
	return errors.Join(<-errc, <-errc)
}

// genericHandler answers any method on any path with 200 and a small JSON
// body, so curl/wget healthchecks of a service the suite knows nothing
// about pass: the http role, and every role's KTRDR_STANDIN_PORTS. The
// readiness knobs apply: 503 while not ready.
func genericHandler(cfg config) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		body := map[string]any{"status": "ok", "healthy": true, "service": cfg.role, "version": "standin", "path": r.URL.Path}
		if why := cfg.notReady(time.Now()); why != "" {
			body["status"], body["healthy"], body["detail"] = "unavailable", false, why
			writeJSON(w, http.StatusServiceUnavailable, body)
			return
		}
		writeJSON(w, http.StatusOK, body)
	})
}

func prometheusHandler(cfg config) http.Handler {
	mux := http.NewServeMux()
	text := func(msg string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if why := cfg.notReady(time.Now()); why != "" {
				http.Error(w, "Service Unavailable ("+why+")", http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(w, msg)
		}
	}
	mux.Handle("GET /-/healthy", text("Prometheus Server is Healthy."))
	mux.Handle("GET /-/ready", text("Prometheus Server is Ready."))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "Prometheus stand-in")
	})
	mux.HandleFunc("/", notFound)
	return mux
}

func grafanaHandler(cfg config) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/health", func(w http.ResponseWriter, r *http.Request) {
		if why := cfg.notReady(time.Now()); why != "" {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"commit": "standin", "database": "failing", "version": "standin", "detail": why})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"commit": "standin", "database": "ok", "version": "standin"})
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><title>Grafana (standin)</title><p>Grafana stand-in</p>\n")
	})
	mux.HandleFunc("/", notFound)
	return mux
}
