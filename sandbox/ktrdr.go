package sandbox

import "sync"

// ktrdrProfile is the ktrdr stack: the one place that names its services,
// ports, shared folders and gate checks.
var ktrdrProfile = Profile{
	App:            "ktrdr",
	SandboxCompose: "docker-compose.sandbox.yml",
	MainCompose:    "docker-compose.yml",
	EnvFile:        ".env.sandbox",
	APIPortKey:     "KTRDR_API_PORT",
	SharedRootKey:  "KTRDR_SHARED_DIR",
	Ports: []PortRule{
		{Key: "KTRDR_API_PORT", Service: "backend", Label: "API", Slot0: 8000, Base: 8000, Step: 1},
		{Key: "KTRDR_DB_PORT", Service: "db", Label: "database", Slot0: 5432, Base: 5432, Step: 1},
		{Key: "KTRDR_GRAFANA_PORT", Service: "grafana", Label: "Grafana", Slot0: 3000, Base: 3000, Step: 1},
		{Key: "KTRDR_JAEGER_UI_PORT", Service: "jaeger", Label: "Jaeger UI", Slot0: 16686, Base: 16686, Step: 1},
		{Key: "KTRDR_JAEGER_OTLP_GRPC_PORT", Service: "jaeger", Label: "OTLP gRPC", Slot0: 4317, Base: 4317, Step: 10},
		{Key: "KTRDR_JAEGER_OTLP_HTTP_PORT", Service: "jaeger", Label: "OTLP HTTP", Slot0: 4318, Base: 4318, Step: 10},
		{Key: "KTRDR_PROMETHEUS_PORT", Service: "prometheus", Label: "Prometheus", Slot0: 9090, Base: 9090, Step: 1},
		{Key: "KTRDR_WORKER_PORT_1", Service: "backtest-worker-1", Label: "backtest worker 1", Slot0: 5003, Base: 5000, Step: 10},
		{Key: "KTRDR_WORKER_PORT_2", Service: "backtest-worker-2", Label: "backtest worker 2", Slot0: 5004, Base: 5001, Step: 10},
		{Key: "KTRDR_WORKER_PORT_3", Service: "training-worker-1", Label: "training worker 1", Slot0: 5005, Base: 5002, Step: 10},
		{Key: "KTRDR_WORKER_PORT_4", Service: "training-worker-2", Label: "training worker 2", Slot0: 5006, Base: 5003, Step: 10},
	},
	Services: []Service{
		{Name: "db"}, {Name: "backend"}, {Name: "jaeger"}, {Name: "prometheus"}, {Name: "grafana"},
		{Name: "backtest-worker-1", Worker: true}, {Name: "backtest-worker-2", Worker: true},
		{Name: "training-worker-1", Worker: true}, {Name: "training-worker-2", Worker: true},
	},
	Shared: []SharedDir{
		{Name: "data", Key: "KTRDR_DATA_DIR"},
		{Name: "models", Key: "KTRDR_MODELS_DIR"},
		{Name: "strategies", Key: "KTRDR_STRATEGIES_DIR"},
	},
	Checks: []Check{
		{Name: "Database ready", Service: "db", Kind: CheckPostgres, PortKey: "KTRDR_DB_PORT", User: "ktrdr", Database: "ktrdr"},
		{Name: "Backend healthy", Service: "backend", Kind: CheckHTTP, PortKey: "KTRDR_API_PORT", Path: "/api/v1/health", Status: 200},
		{Name: "Workers registered", Service: "backend", Kind: CheckJSONArray, PortKey: "KTRDR_API_PORT", Path: "/api/v1/workers"},
		{Name: "Observability ready", Service: "jaeger", Kind: CheckHTTP, PortKey: "KTRDR_JAEGER_UI_PORT", Path: "/", Status: 200},
	},
	Endpoints: []Endpoint{
		{Label: "API", PortKey: "KTRDR_API_PORT", Scheme: "http", Path: "/api/v1"},
		{Label: "API docs", PortKey: "KTRDR_API_PORT", Scheme: "http", Path: "/docs"},
		{Label: "Database", PortKey: "KTRDR_DB_PORT", Scheme: "postgresql", UserInfo: "ktrdr:localdev", Path: "/ktrdr"},
		{Label: "Grafana", PortKey: "KTRDR_GRAFANA_PORT", Scheme: "http"},
		{Label: "Jaeger UI", PortKey: "KTRDR_JAEGER_UI_PORT", Scheme: "http"},
		{Label: "Prometheus", PortKey: "KTRDR_PROMETHEUS_PORT", Scheme: "http"},
		{Label: "Backtest worker 1", PortKey: "KTRDR_WORKER_PORT_1", Scheme: "http"},
		{Label: "Backtest worker 2", PortKey: "KTRDR_WORKER_PORT_2", Scheme: "http"},
		{Label: "Training worker 1", PortKey: "KTRDR_WORKER_PORT_3", Scheme: "http"},
		{Label: "Training worker 2", PortKey: "KTRDR_WORKER_PORT_4", Scheme: "http"},
	},
	MinSlot:        1,
	MaxSlot:        10,
	StandinImage:   "ktrdr-standin:dev",
	StandinDBImage: "ktrdr-postgres:dev",
	ImageKeys:      []string{"KTRDR_DB_IMAGE", "KTRDR_BACKEND_IMAGE", "KTRDR_JAEGER_IMAGE", "KTRDR_PROMETHEUS_IMAGE", "KTRDR_GRAFANA_IMAGE"},
	DBImageKey:     "KTRDR_DB_IMAGE",
	StandinSource:  "./cmd/standin",
	StandinKey:     "KTRDR_STANDIN",
	EnvPrefix:      "KTRDR_",
	InstanceLabel:  "org.ktrdr.sandbox.instance",
	MainInstance:   "main",
}

// KTRDR returns the validated default profile of the ktrdr stack
// (sandbox slots 1–10). It panics only if the built-in table is wrong,
// which the tests rule out.
// Each call returns a fresh copy; the table is validated once.
func KTRDR() *Profile {
	p := *validatedKTRDR()
	return &p
}

var validatedKTRDR = sync.OnceValue(func() *Profile {
	p, err := NewProfile(ktrdrProfile)
	if err != nil {
		panic(err)
	}
	return p
})
