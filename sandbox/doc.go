// Package sandbox runs several isolated copies of one application's Docker
// Compose stack on one machine, one per git checkout, and tells with
// certainty when a copy is ready. The stack is the one the checkout's own
// sandbox compose file describes (LoadStack, Profile.ForStack): its
// services, port variables, workers and database, read with compose-go
// through package composefile, which treats the files as the untrusted
// input they are (nothing outside the checkout is read; stackports.go
// derives which host port follows which variable from what compose
// resolves, not from the text);
// the default Profile (KTRDR) keeps only what a file cannot say (the
// documented slot rules of the known ktrdr ports, labels for people, the
// API's paths). What the suite adds to a stack (its instance label, stand-in
// images) goes into an override file in its state folder (override.go); it
// never edits the checkout's files, and never changes a healthcheck. Up
// starts the stack itself in dependency order, probing a dependency's own
// healthcheck often only while something waits for it (start.go), so a
// start is close to the time the containers take and a running sandbox
// costs what the file says and nothing more.
// A sandbox may run on another machine's Docker engine, reached through a
// Docker context (engine.go): its calls carry --context, its URLs, gate and
// port checks use that engine's host, and its local folders reach the
// stack as volumes filled from here (sync.go): only folders of the
// checkout and the shared root, or ones the user allows exactly
// (outside.go); anything else is refused before anything is made there.
//
// # Packages
//
// This package is the core: the model (Profile, slots and port rules), the
// registry, the env file's meaning, and the lifecycle (Create, Init, Up,
// Down, Destroy, List, Status, Logs, Shell, Sync, Ports): what to run, where and
// when; package driver runs it. It returns data, typed errors and Events; it prints nothing.
// Around it, leaf packages each own one responsibility:
//
//	sandbox/composefile  a checkout's compose files as untrusted input: the
//	                 one loader, which reads nothing outside the checkout
//	                 (includes, extends, env and label files, every profile)
//	sandbox/envfile  the env file's one form, which this tool, godotenv and
//	                 compose read alike (standard library only)
//	sandbox/apiurl   the API URL rule the ktrdr CLI shares (standard
//	                 library and envfile only)
//	sandbox/gate     the startability gate and its probes (standard library)
//	sandbox/shared   the shared folders, filled all or nothing
//	sandbox/driver   running git, docker and compose (the Runner seam,
//	                 Compose, Docker contexts, the stand-in image)
//	sandbox/merge    milestone 6: merge verification, apply and rollback
//
// The mage targets (internal/targets) are the edge: they map errors to exit
// codes and hints through one table, and render results and events for
// people or as JSON.
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
// variables (KTRDR_DB_IMAGE names the PostgreSQL image, ktrdr-postgres:dev,
// the others the stand-in). It is written atomically, in the one form package envfile
// defines (refused everywhere otherwise, so this tool, the CLI and compose
// never disagree about it); it is never loaded into the process
// environment, and compose receives it with --env-file.
//
// The registry, $HOME/.ktrdr/sandbox/instances.json, lists every instance:
//
//	{"version": 1, "instances": {"ktrdr--feat-a": {"slot": 1, "path": "/abs",
//	  "created_at": "…", "is_worktree": true, "parent_repo": "/abs/main"}}}
//
// Every read-modify-write holds instances.json.lock (flock); writes are
// atomic; a file that does not parse, has another version or holds an
// invalid entry is never overwritten. Every field of every entry is
// validated when the file is read: the id is an instance id (it names a
// folder below the state folder), path and parent_repo are absolute and
// clean, the slot is in the configured range and no other entry's, no two
// entries share a path, created_at is RFC 3339 (one more than two minutes
// ahead of the clock is no age: the entry can go stale). Beside it, instances/<id>/ keeps a copy of what teardown
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
// # Networks
//
// An engine with Docker's default address pools has room for about 30
// bridge networks, and every sandbox makes at least one. So each network
// compose creates for a sandbox gets a subnet of its own from a pool the
// suite manages (subnets.go), written into the override as the network's
// ipam config. It is chosen under a host-wide lock (subnets.lock in the
// state folder) so that it overlaps no network the engine has, no IPv4
// route of this host (for the local engine, on Linux) and no subnet
// another sandbox recorded; it is recorded in instances/<id>/subnets.json,
// kept across down and up, and released by destroy. A network gets the
// smallest subnet that holds its containers twice over with room for
// one-off ones: a /27 (29 addresses) for up to 14 containers. A network
// whose ipam the file sets, one with a static address on it, one of
// another driver, and one the file names alike for every sandbox keep the
// file's settings; a network that exists already keeps what it has. When
// the pool has no room, up stops before it makes anything
// (*SubnetPoolExhaustedError).
//
// The default pool is 172.16.0.0/16. It is private (RFC 1918) and lies in
// 172.16.0.0/12, the block Docker's own default pools draw on, yet it is
// the one /16 of that block they leave out (they take 172.17–172.31 and
// 192.168.0.0/16): it meets no network Docker made by itself, and a site
// whose own networks live in 172.16.0.0/12 has met Docker's pools there
// already, so the suite claims no new kind of address space. Its 2048
// /27s serve 100 sandboxes of up to 20 networks each. Routes and
// networks that do overlap it are skipped. In config.json, "subnet_pool"
// sets another pool (one CIDR or a list) and "subnet_prefix" the smallest
// subnet (default 27).
//
// # What it writes and deletes
//
// One rule, kept by construction (ownpaths.go): the suite writes and
// deletes only inside its own state folders ($HOME/.ktrdr/sandbox, and the
// shared root that package shared fills) and in the sandbox folders it
// created; in a repository's .git only through git, except for what a git
// it ran left there when killed: its own branch's lock file, the
// packed-refs.lock and packed-refs.new of that run, and a half-written
// record of its own worktree. Every path it derives from data (ids, names, registry paths) is
// validated before use. Below its state folder it never writes or deletes
// through a symlink it did not create (*UnsafePathError; the lock file is
// opened without following links); the state folder itself may be a link
// the user made. It never reads through a symlink into files outside the
// checkout, and reads a checkout's files only up to MaxCheckoutFile
// (*CheckoutFileError). An .env.sandbox is looked for from the current
// folder up to the checkout's root (the folder holding .git), never above
// it, and must be a regular file. Ports and slots are read only in the
// canonical decimal form the tool writes. Package shared copies content,
// never privilege, and undoes a run that fails or is cancelled.
//
// # Many sandboxes on one engine
//
// List shows what each running sandbox uses (CPU, memory) from one docker
// stats call per engine, joined to the stacks by container id. Up keeps a
// memory budget (budget.go): it refuses (*LowMemoryError) to start a stack
// that would leave the engine less free memory than min_free_memory in
// config.json, naming the sandboxes that use the most; the check runs in
// the background while up does its other steps. DownAll stops every
// running sandbox of the registry, data kept (downall.go).
//
// # Commands and seams
//
// Docker, Compose and git run through a driver.Runner (exec with
// arguments, never a shell string). Compose always gets -p <project>, --env-file <absolute
// path> and absolute -f paths; the stack's secrets (secrets.go) only as one
// more --env-file that has no path on disk, never written anywhere the
// suite keeps, and masked in every text it returns. Up runs the gate (package gate) with the
// profile's checks (checks.go: PostgreSQL handshake, HTTP status, JSON array
// length, TCP). Long operations report their steps to Manager.Events and
// the output of the tools they run to Manager.Log; every operation takes a
// context, and those with inputs an options struct. ResolveAPIURL is
// apiurl.Resolve, kept here for existing callers.
package sandbox
