package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Environment knobs. All optional; the worker ones are those of the real
// ktrdr worker images.
//
// An idle stack of stand-ins stays quiet: with the defaults the backend
// checks each worker every 10 s and each worker asks the backend every 15 s
// whether it is still listed, so a stack with four workers makes about
// 0.7 requests a second (the file's own healthchecks aside), and many
// sandboxes side by side cost the machine little.
//
//	KTRDR_STANDIN_ROLE                      backend|worker|db|jaeger|prometheus|grafana|http (or the first argument)
//	KTRDR_STANDIN_LISTEN_HOST               listen host (default: all interfaces)
//	KTRDR_STANDIN_PORT                      override the role's main port (tests)
//	KTRDR_STANDIN_OTLP_GRPC_PORT, _HTTP_PORT override jaeger's 4317 and 4318 (tests)
//	KTRDR_STANDIN_START_DELAY               Go duration to sleep before listening
//	KTRDR_STANDIN_READY_AT                  Unix time in ms: listen at once, but health endpoints answer 503
//	                                        and the db answers 57P03 until then
//	KTRDR_STANDIN_FAIL_HEALTH=1             health endpoint answers 503 (db: 57P03) forever
//	KTRDR_STANDIN_EXIT_AFTER                Go duration after start, then exit with status 3
//	KTRDR_STANDIN_NO_REGISTER=1             a worker never registers
//	KTRDR_STANDIN_DB_STARTING               Go duration after start during which the db answers 57P03
//	KTRDR_STANDIN_WORKER_CHECK_INTERVAL     backend's worker health-check period (default 10s)
//	KTRDR_STANDIN_WORKER_FAILURE_THRESHOLD  failed checks before temporarily_unavailable (default 3)
//	KTRDR_STANDIN_REGISTER_BACKOFF          worker's first retry delay (default 1s, doubling, 30s cap)
//	KTRDR_STANDIN_REREGISTER_CHECK          how often a registered worker checks the backend lists it (default 15s)
//	KTRDR_STANDIN_PORTS                     comma-separated container ports also answered with a generic
//	                                        200 JSON on any path (the http role's ports; default 8080)
//
// The worker's identity, under the names of either generation of the real
// ktrdr files (the first one set wins):
//
//	WORKER_TYPE, KTRDR_WORKER_TYPE          registered worker_type (default backtesting)
//	WORKER_ID, KTRDR_WORKER_ID              worker_id (default: the host name)
//	WORKER_PORT, KTRDR_WORKER_PORT          main port (default 5003)
//	WORKER_ENDPOINT_URL, WORKER_PUBLIC_BASE_URL, KTRDR_WORKER_PUBLIC_URL
//	                                        endpoint_url (default http://HOSTNAME:PORT)
//	KTRDR_API_URL, KTRDR_BACKEND_URL, KTRDR_API_CLIENT_BASE_URL
//	                                        backend base URL, a trailing /api/v1 dropped
//	                                        (default http://backend:8000)
//
// The sh, curl, wget and pg_isready tools read the environment like the
// real ones (sh: any $VAR; pg_isready: PGHOST, PGPORT, PGUSER, PGDATABASE).
const (
	envRole             = "KTRDR_STANDIN_ROLE"
	envListenHost       = "KTRDR_STANDIN_LISTEN_HOST"
	envPort             = "KTRDR_STANDIN_PORT"
	envOTLPGRPCPort     = "KTRDR_STANDIN_OTLP_GRPC_PORT"
	envOTLPHTTPPort     = "KTRDR_STANDIN_OTLP_HTTP_PORT"
	envStartDelay       = "KTRDR_STANDIN_START_DELAY"
	envReadyAt          = "KTRDR_STANDIN_READY_AT"
	envFailHealth       = "KTRDR_STANDIN_FAIL_HEALTH"
	envExitAfter        = "KTRDR_STANDIN_EXIT_AFTER"
	envNoRegister       = "KTRDR_STANDIN_NO_REGISTER"
	envDBStarting       = "KTRDR_STANDIN_DB_STARTING"
	envCheckInterval    = "KTRDR_STANDIN_WORKER_CHECK_INTERVAL"
	envFailureThreshold = "KTRDR_STANDIN_WORKER_FAILURE_THRESHOLD"
	envRegisterBackoff  = "KTRDR_STANDIN_REGISTER_BACKOFF"
	envRecheckInterval  = "KTRDR_STANDIN_REREGISTER_CHECK"
	envPorts            = "KTRDR_STANDIN_PORTS"
)

var roleNames = []string{"backend", "worker", "db", "jaeger", "prometheus", "grafana", "http"}

type config struct {
	role       string
	host       string
	port       int   // main port
	extraPorts []int // KTRDR_STANDIN_PORTS not already served: the generic answer
	otlpGRPC   int   // jaeger only
	otlpHTTP   int   // jaeger only
	startDelay time.Duration
	readyAt    time.Time // zero: ready
	failHealth bool
	exitAfter  time.Duration
	noRegister bool
	dbStarting time.Duration
	started    time.Time

	// backend
	checkInterval    time.Duration
	failureThreshold int

	// worker
	workerID        string
	workerType      string
	workerEndpoint  string
	apiURL          string
	registerBackoff time.Duration
	registerMax     time.Duration
	recheck         time.Duration // how often a registered worker checks the backend still lists it
}

var defaultPorts = map[string]int{"backend": 8000, "worker": 5003, "db": 5432, "jaeger": 16686, "prometheus": 9090, "grafana": 3000, "http": 8080}

func loadConfig(role string, getenv func(string) string) (config, error) {
	cfg := config{
		role:             role,
		host:             getenv(envListenHost),
		started:          time.Now(),
		otlpGRPC:         4317,
		otlpHTTP:         4318,
		checkInterval:    10 * time.Second,
		failureThreshold: 3,
		registerBackoff:  time.Second,
		registerMax:      30 * time.Second,
		failHealth:       isTrue(getenv(envFailHealth)),
		noRegister:       isTrue(getenv(envNoRegister)),
	}
	port, ok := defaultPorts[role]
	if !ok {
		return cfg, fmt.Errorf("unknown role %q (want one of %s)", role, strings.Join(roleNames, ", "))
	}
	cfg.port = port
	var errs []string
	intVar := func(key string, dst *int) {
		if v := getenv(key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				errs = append(errs, fmt.Sprintf("%s=%q is not a non-negative integer", key, v))
				return
			}
			*dst = n
		}
	}
	durVar := func(key string, dst *time.Duration) {
		if v := getenv(key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				errs = append(errs, fmt.Sprintf("%s=%q is not a Go duration such as 500ms or 10s", key, v))
				return
			}
			*dst = d
		}
	}
	if role == "worker" {
		// January's name wins over April's when both are set.
		intVar("KTRDR_WORKER_PORT", &cfg.port)
		intVar("WORKER_PORT", &cfg.port)
	}
	intVar(envPort, &cfg.port)
	intVar(envOTLPGRPCPort, &cfg.otlpGRPC)
	intVar(envOTLPHTTPPort, &cfg.otlpHTTP)
	durVar(envStartDelay, &cfg.startDelay)
	durVar(envExitAfter, &cfg.exitAfter)
	durVar(envDBStarting, &cfg.dbStarting)
	durVar(envCheckInterval, &cfg.checkInterval)
	durVar(envRegisterBackoff, &cfg.registerBackoff)
	durVar(envRecheckInterval, &cfg.recheck)
	intVar(envFailureThreshold, &cfg.failureThreshold)
	ports, err := parsePorts(getenv(envPorts))
	if err != nil {
		errs = append(errs, err.Error())
	}
	if role == "http" && len(ports) > 0 && getenv(envPort) == "" {
		cfg.port = ports[0]
	}
	served := map[int]bool{cfg.port: true}
	if role == "jaeger" {
		served[cfg.otlpGRPC], served[cfg.otlpHTTP] = true, true
	}
	for _, p := range ports {
		if !served[p] {
			served[p] = true
			cfg.extraPorts = append(cfg.extraPorts, p)
		}
	}
	if v := getenv(envReadyAt); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s=%q is not a Unix time in milliseconds", envReadyAt, v))
		} else {
			cfg.readyAt = time.UnixMilli(ms)
		}
	}
	if cfg.checkInterval <= 0 {
		cfg.checkInterval = 10 * time.Second
	}
	if cfg.registerBackoff <= 0 {
		cfg.registerBackoff = time.Second
	}
	if cfg.recheck <= 0 {
		cfg.recheck = 15 * time.Second
	}
	if cfg.failureThreshold < 1 {
		cfg.failureThreshold = 1
	}

	// The worker's identity, under January's names or April's.
	cfg.workerType = firstSet(getenv, "backtesting", envWorkerType...)
	host, _ := os.Hostname()
	cfg.workerID = firstSet(getenv, orDefault(host, cfg.workerType+"-worker"), envWorkerID...)
	cfg.workerEndpoint = firstSet(getenv, fmt.Sprintf("http://%s:%d", orDefault(host, "localhost"), cfg.port), envWorkerEndpoint...)
	cfg.apiURL = backendBase(firstSet(getenv, "http://backend:8000", envAPIURL...))
	if len(errs) > 0 {
		return cfg, fmt.Errorf("bad environment: %s", strings.Join(errs, "; "))
	}
	return cfg, nil
}

// notReady says why health answers must be "not ready" at now, or "".
// The db role also honours KTRDR_STANDIN_DB_STARTING.
func (c config) notReady(now time.Time) string {
	switch {
	case c.failHealth:
		return envFailHealth + "=1"
	case !c.readyAt.IsZero() && now.Before(c.readyAt):
		return fmt.Sprintf("%s: not ready for another %s", envReadyAt, c.readyAt.Sub(now).Round(time.Millisecond))
	case c.role == "db" && c.dbStarting > 0 && now.Before(c.started.Add(c.dbStarting)):
		return fmt.Sprintf("%s: starting for another %s", envDBStarting, c.started.Add(c.dbStarting).Sub(now).Round(time.Millisecond))
	}
	return ""
}

func (c config) knobs() string {
	var parts []string
	add := func(k string, v any, set bool) {
		if set {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	add(envStartDelay, c.startDelay, c.startDelay > 0)
	add(envReadyAt, c.readyAt.UTC().Format(time.RFC3339Nano), !c.readyAt.IsZero())
	add(envFailHealth, 1, c.failHealth)
	add(envExitAfter, c.exitAfter, c.exitAfter > 0)
	add(envNoRegister, 1, c.noRegister)
	add(envDBStarting, c.dbStarting, c.dbStarting > 0)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// parsePorts reads KTRDR_STANDIN_PORTS: container ports separated by
// commas, blanks around them and empty entries ignored, "/tcp" allowed.
func parsePorts(v string) ([]int, error) {
	var ports []int
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSuffix(strings.TrimSpace(f), "/tcp")
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%s=%q: %q is not a TCP port (1-65535)", envPorts, v, f)
		}
		ports = append(ports, n)
	}
	return ports, nil
}

// The worker's identity variables, first set wins: the real ktrdr files
// use the unprefixed names (January) or the KTRDR_ ones (April).
var (
	envWorkerType     = []string{"WORKER_TYPE", "KTRDR_WORKER_TYPE"}
	envWorkerID       = []string{"WORKER_ID", "KTRDR_WORKER_ID"}
	envWorkerEndpoint = []string{"WORKER_ENDPOINT_URL", "WORKER_PUBLIC_BASE_URL", "KTRDR_WORKER_PUBLIC_URL"}
	envAPIURL         = []string{"KTRDR_API_URL", "KTRDR_BACKEND_URL", "KTRDR_API_CLIENT_BASE_URL"}
)

// firstSet returns the first non-empty of keys, else def.
func firstSet(getenv func(string) string, def string, keys ...string) string {
	for _, k := range keys {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
	}
	return def
}

// backendBase turns a backend URL into the base the worker appends
// /api/v1/… to: April's KTRDR_API_CLIENT_BASE_URL already ends in /api/v1.
func backendBase(u string) string {
	u = strings.TrimRight(u, "/")
	return strings.TrimRight(strings.TrimSuffix(u, "/api/v1"), "/")
}

func isTrue(v string) bool {
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	return err == nil && b
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
