// Package sandbox runs several isolated copies of one application's Docker
// Compose stack on one machine, one per git checkout, and tells with
// certainty when a copy is ready. The ktrdr stack is described by the
// default Profile (KTRDR); everything application-specific lives there.
//
// # The model
//
// A sandbox is a git checkout (usually a worktree beside the main checkout,
// named ktrdr--<name>) that owns one slot. Slot 0 is the main checkout on
// the standard ports; sandboxes use slots 1–10 by default. A slot decides
// every published host port through the profile's port rules (slot N):
//
//	backend   KTRDR_API_PORT               8000+N   (slot 0: 8000)
//	db        KTRDR_DB_PORT                5432+N   (5432)
//	grafana   KTRDR_GRAFANA_PORT           3000+N   (3000)
//	jaeger    KTRDR_JAEGER_UI_PORT        16686+N   (16686)
//	jaeger    KTRDR_JAEGER_OTLP_GRPC_PORT  4317+10N (4317)
//	jaeger    KTRDR_JAEGER_OTLP_HTTP_PORT  4318+10N (4318)
//	prometheus KTRDR_PROMETHEUS_PORT       9090+N   (9090)
//	workers   KTRDR_WORKER_PORT_1..4       5000+10N+{0,1,2,3} (5003–5006)
//
// Container-side ports never change. NewProfile proves that no two slots
// share a port over the whole configured range; the default rules stay
// collision-free up to slot 42 (slot 43's third worker port is the main
// database's 5432), so a profile may be widened with WithSlots up to 42, or
// beyond with other worker rules (the tests check a 100-slot variant). A
// user widens the range with $HOME/.ktrdr/sandbox/config.json, {"max_slot":
// N}, which LoadManager applies and validates.
//
// # Files
//
// Each sandbox root holds .env.sandbox (gitignored): INSTANCE_ID,
// COMPOSE_PROJECT_NAME, SLOT_NUMBER, the eleven port keys, KTRDR_SHARED_DIR,
// KTRDR_DATA_DIR/MODELS_DIR/STRATEGIES_DIR, CREATED_AT (RFC 3339 UTC),
// SANDBOX_VERSION=1 and, for stand-in stacks, KTRDR_STANDIN=1 with the image
// variables. It is written atomically and read with godotenv.Read; it is
// never loaded into the process environment, and compose receives it with
// --env-file.
//
// The registry, $HOME/.ktrdr/sandbox/instances.json, lists every instance:
//
//	{"version": 1, "instances": {"ktrdr--feat-a": {"slot": 1, "path": "/abs",
//	  "created_at": "…", "is_worktree": true, "parent_repo": "/abs/main"}}}
//
// Every read-modify-write holds instances.json.lock (flock); writes are
// atomic; a file that does not parse, or has another version, is never
// overwritten. Beside it, instances/<id>/ keeps a copy of what teardown
// needs (the env file and compose file), so destroy works after the
// worktree is gone.
//
// The registry decides which folder an instance is: an env file whose
// instance is registered for another folder is refused. The files can
// rebuild the registry: Init in a checkout that kept its env file but lost
// its entry (a registry moved aside, a folder moved) registers it again
// under that file's name and slot, unless another checkout has a stronger
// claim (see reregister.go).
//
// # Commands and seams
//
// Docker, Compose and git run through a Runner (exec with arguments, never a
// shell string). Compose always gets -p <project>, --env-file <absolute
// path> and absolute -f paths. The startability gate runs the profile's
// checks (PostgreSQL handshake, HTTP status, JSON array length, TCP)
// concurrently under one timeout. ResolveAPIURL is the API-URL rule that
// the ktrdr CLI shares: --url, then --port, then the nearest .env.sandbox,
// then http://localhost:8000.
package sandbox
