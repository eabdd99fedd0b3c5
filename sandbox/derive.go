package sandbox

import (
	"fmt"
	"slices"
	"strings"
)

// The stack a sandbox runs is the checkout's own compose file: ForStack
// adapts a profile to it. What the file says decides; the profile keeps what
// a file cannot say (the documented slot rules of the known ports, labels
// for people, the API's paths).
//
//   - Services: the file's default-profile services. A worker is a service
//     whose environment sets WORKER_TYPE or KTRDR_WORKER_TYPE: it registers
//     with the backend, and the gate waits for as many registered workers
//     as the file has.
//   - Ports: every ${VAR:-default} of a published port. A variable the
//     profile knows keeps its documented rule (API 8000+N, …), with the
//     file's default as its slot-0 port, up to the slot where it would
//     collide with a slot-0 port or an earlier rule; beyond that slot it
//     takes a chosen block (PortRule.Until/Then), so widening max_slot
//     moves no sandbox of the earlier slots. Any other variable gets a rule
//     chosen here (see unknownRule): deterministic, and proven free of
//     collisions over slots 0–100 against every other rule and every
//     slot-0 port.
//   - Gate: the PostgreSQL handshake on the database service's port (the
//     service with POSTGRES_* in its environment; user and database from
//     there), API health, workers registered, and the Jaeger UI only where
//     a service publishes container port 16686.

// RuleSlots is the slot range over which chosen port rules are proven
// collision-free, whatever max_slot says, so that widening the range never
// moves a chosen port.
const RuleSlots = 100

// unknownBase is where chosen rules for unknown variables start when a
// variable's own default cannot be its base.
const unknownBase = 20000

// ForStack returns a validated copy of p adapted to the stack file sf.
func (p *Profile) ForStack(sf *StackFile) (*Profile, error) {
	q := *p
	chosen, err := q.planPorts(p, sf)
	if err != nil {
		return nil, err
	}
	q.planServices(p, sf)
	db := q.planChecks(p, sf)
	q.planEndpoints(p, chosen, db)
	return NewProfile(q)
}

// planPorts gives every port variable of sf its rule (documented or
// chosen) and lists the literal host ports. It returns the variables whose
// rules were chosen here.
func (q *Profile) planPorts(p *Profile, sf *StackFile) ([]PortVar, error) {
	vars := sf.PortVars()
	if !slices.ContainsFunc(vars, func(v PortVar) bool { return v.Key == p.APIPortKey }) {
		return nil, fmt.Errorf("%s publishes no port through ${%s}: the sandbox cannot know its API port", sf.Path, p.APIPortKey)
	}
	defaults := q.planLiterals(sf, vars)
	known, unknown := p.splitKnown(vars)
	partial := map[string]int{} // documented rules that hold up to a slot
	q.Ports = nil
	for _, v := range known {
		r, _ := p.Rule(v.Key)
		r.Service = v.Service
		if v.Default != 0 {
			r.Slot0 = v.Default
		}
		switch until := holdsUntil(r, q.Ports, defaults, p.MaxSlot); {
		case until == p.MaxSlot:
			q.Ports = append(q.Ports, r)
		case until == 0:
			unknown = append(unknown, v) // its documented rule collides at once here: choose one
		default:
			// It holds up to slot until: it keeps its ports there (no
			// sandbox of those slots moves) and gets a block beyond, chosen
			// below after the other chosen rules, so that those do not
			// depend on the slot range.
			partial[r.Key] = until
			q.Ports = append(q.Ports, r)
		}
	}
	slices.SortFunc(unknown, func(a, b PortVar) int { return strings.Compare(a.Key, b.Key) })
	for _, v := range unknown {
		r, err := unknownRule(q.Ports, defaults, v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sf.Path, err)
		}
		q.Ports = append(q.Ports, r)
	}
	if err := q.extendPartial(partial, defaults, sf.Path); err != nil {
		return nil, err
	}
	q.sortPorts(p)
	return unknown, nil
}

// splitKnown separates the variables whose rule the profile documents, in
// the profile's order (when two collide somewhere in the range, the
// earlier one, the API or the database, keeps its rule), from the others.
func (p *Profile) splitKnown(vars []PortVar) (known, unknown []PortVar) {
	for _, v := range vars {
		if _, ok := p.Rule(v.Key); ok {
			known = append(known, v)
		} else {
			unknown = append(unknown, v)
		}
	}
	order := p.portOrder()
	slices.SortStableFunc(known, func(a, b PortVar) int { return order[a.Key] - order[b.Key] })
	return known, unknown
}

func (p *Profile) portOrder() map[string]int {
	order := map[string]int{}
	for i, r := range p.Ports {
		order[r.Key] = i
	}
	return order
}

// planLiterals lists the host ports every sandbox publishes alike (literal
// ports, each port of a literal range) as q.Literal, and returns every
// slot-0 port of the file: the main stack's, which no rule may hand out.
func (q *Profile) planLiterals(sf *StackFile, vars []PortVar) map[int]string {
	defaults := map[int]string{}
	for _, v := range vars {
		defaults[v.Default] = v.Key
	}
	q.Literal = nil
	for _, s := range sf.all() {
		for _, fp := range s.Ports {
			if fp.Var != "" || fp.Default == 0 {
				continue
			}
			last, label := fp.Default, "literal port"
			if fp.Range != "" {
				_, last, _ = portRange(fp.Range)
				label = "literal range " + fp.Range
			}
			for port := fp.Default; port <= last; port++ {
				target := fp.Target + port - fp.Default
				defaults[port] = s.Name + " (literal)"
				q.Literal = append(q.Literal, PortRule{Key: fmt.Sprintf("%d:%d", port, target), Service: s.Name,
					Label: label, Slot0: port, Base: port, Step: 0})
			}
		}
		if s.HostNet {
			// On the host's network its container ports are host ports.
			for _, port := range s.Targets {
				defaults[port] = s.Name + " (host network)"
				q.Literal = append(q.Literal, PortRule{Key: fmt.Sprintf("%d (host network)", port), Service: s.Name,
					Label: "host network", Slot0: port, Base: port, Step: 0})
			}
		}
	}
	return defaults
}

// extendPartial gives each documented rule that holds only up to a slot a
// block of its own beyond it.
func (q *Profile) extendPartial(partial map[string]int, defaults map[int]string, file string) error {
	for i := range q.Ports {
		until, ok := partial[q.Ports[i].Key]
		if !ok {
			continue
		}
		r := &q.Ports[i]
		base, err := freeBlock(usedPorts(q.Ports, defaults), until+1, RuleSlots, 0)
		if err != nil {
			return fmt.Errorf("%s: ${%s}: %w", file, r.Key, err)
		}
		r.Until, r.Then = until, base
	}
	return nil
}

// sortPorts keeps the env file's order stable: the documented keys first,
// as the profile lists them, then the chosen ones by name.
func (q *Profile) sortPorts(p *Profile) {
	order := p.portOrder()
	slices.SortStableFunc(q.Ports, func(a, b PortRule) int {
		ia, oka := order[a.Key]
		ib, okb := order[b.Key]
		switch {
		case oka && okb:
			return ia - ib
		case oka:
			return -1
		case okb:
			return 1
		}
		return strings.Compare(a.Key, b.Key)
	})
}

// planServices lists the default-profile services, the profile's order
// for those it names (status lists them so), then the others by name.
func (q *Profile) planServices(p *Profile, sf *StackFile) {
	q.Services = nil
	for _, s := range sf.Services {
		q.Services = append(q.Services, Service{Name: s.Name, Worker: s.WorkerType != ""})
	}
	rank := map[string]int{}
	for i, s := range p.Services {
		rank[s.Name] = i + 1
	}
	slices.SortStableFunc(q.Services, func(a, b Service) int {
		ra, rb := rank[a.Name], rank[b.Name]
		switch {
		case ra != 0 && rb != 0:
			return ra - rb
		case ra != 0:
			return -1
		case rb != 0:
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// planChecks derives the gate from the file: the database's handshake,
// the API's health, the workers registered (when the file has workers)
// and the Jaeger UI where a service publishes it. It returns the database
// service (zero when none).
func (q *Profile) planChecks(p *Profile, sf *StackFile) FileService {
	q.Checks = nil
	vars := sf.PortVars()
	api, _ := q.Rule(p.APIPortKey)
	db := databaseService(sf, api.Service)
	if db.Name != "" {
		for _, fp := range db.Ports {
			if fp.Var != "" && (fp.Target == 5432 || len(db.Ports) == 1) {
				q.Checks = append(q.Checks, Check{Name: "Database ready", Service: db.Name, Kind: CheckPostgres, PortKey: fp.Var, User: db.PGUser, Database: db.PGDatabase, Password: db.PGPassword})
				break
			}
		}
	}
	workers := slices.ContainsFunc(sf.Services, func(s FileService) bool { return s.WorkerType != "" })
	for _, c := range p.Checks {
		switch {
		case c.Kind == CheckPostgres:
			// From the file (above).
		case c.Kind == CheckJSONArray && c.MinItems == 0:
			if workers {
				c.Service = api.Service
				q.Checks = append(q.Checks, c)
			}
		case c.PortKey == p.APIPortKey:
			c.Service = api.Service
			q.Checks = append(q.Checks, c)
		}
	}
	for _, v := range vars {
		if v.Target == 16686 && slices.ContainsFunc(sf.Services, func(s FileService) bool { return s.Name == v.Service }) {
			q.Checks = append(q.Checks, Check{Name: "Observability ready", Service: v.Service, Kind: CheckHTTP, PortKey: v.Key, Path: "/", Status: 200})
			break
		}
	}
	return db
}

// databaseService is the PostgreSQL server the gate checks: a
// default-profile service with POSTGRES_* in its environment (clients set
// such variables too, so never the API's service) that publishes its port
// through a variable, the one publishing container port 5432 first.
func databaseService(sf *StackFile, apiService string) FileService {
	dbs := slices.Clone(sf.Services)
	slices.SortStableFunc(dbs, func(a, b FileService) int {
		pa, pb := slices.Contains(a.Targets, 5432), slices.Contains(b.Targets, 5432)
		switch {
		case pa && !pb:
			return -1
		case pb && !pa:
			return 1
		}
		return 0
	})
	for _, s := range dbs {
		if !s.IsDB() || s.Name == apiService {
			continue
		}
		for _, fp := range s.Ports {
			if fp.Var != "" && (fp.Target == 5432 || len(s.Ports) == 1) {
				return s
			}
		}
	}
	return FileService{}
}

// planEndpoints keeps the profile's endpoints whose port the file has (the
// database's with its user, password and database) and adds one for each
// chosen variable.
func (q *Profile) planEndpoints(p *Profile, chosen []PortVar, db FileService) {
	q.Endpoints = nil
	for _, e := range p.Endpoints {
		if _, ok := q.Rule(e.PortKey); !ok {
			continue
		}
		if e.Scheme == "postgresql" && db.PGUser != "" {
			e.UserInfo = db.PGUser
			if db.PGPassword != "" {
				e.UserInfo += ":" + db.PGPassword
			}
			e.Path = "/" + db.PGDatabase
		}
		q.Endpoints = append(q.Endpoints, e)
	}
	for _, v := range chosen {
		if !slices.ContainsFunc(q.Endpoints, func(e Endpoint) bool { return e.PortKey == v.Key }) {
			q.Endpoints = append(q.Endpoints, Endpoint{Label: v.Service + " (" + v.Key + ")", PortKey: v.Key, Scheme: "http"})
		}
	}
}

// unknownRule chooses the rule of a variable the profile does not know:
// slot N gets Base+N. The first base that works is taken, trying the
// variable's own default first, then blocks above unknownBase; a base works
// when none of its ports for slots 1–RuleSlots is any port of the rules
// already chosen (slots 0–RuleSlots) or its own slot-0 port.
// holdsUntil returns the last slot (0 to max) up to which the documented
// rule r serves here: none of its ports up to there is a slot-0 port of the
// file (other than its own) or a port of the rules already taken.
func holdsUntil(r PortRule, taken []PortRule, defaults map[int]string, max int) int {
	for s := 1; s <= max; s++ {
		port := r.Port(s)
		if k, ok := defaults[port]; ok && k != r.Key {
			return s - 1
		}
		for _, t := range taken {
			for ts := 0; ts <= max; ts++ {
				if t.Port(ts) == port {
					return s - 1
				}
			}
		}
	}
	return max
}

// usedPorts is every port of the taken rules over slots 0–RuleSlots, and
// every slot-0 port of the file.
func usedPorts(taken []PortRule, defaults map[int]string) map[int]bool {
	used := map[int]bool{}
	for _, r := range taken {
		for s := 0; s <= RuleSlots; s++ {
			used[r.Port(s)] = true
		}
	}
	for port := range defaults {
		used[port] = true
	}
	return used
}

// freeBlock returns a base such that base+s is free for slots first–last:
// first the preferred base (0: none), then blocks of RuleSlots+1 ports above
// unknownBase.
func freeBlock(used map[int]bool, first, last, preferred int) (int, error) {
	fits := func(base int) bool {
		if base+first < 1024 || base+last > 65535 {
			return false
		}
		for s := first; s <= last; s++ {
			if used[base+s] {
				return false
			}
		}
		return true
	}
	if preferred > 0 && fits(preferred) {
		return preferred, nil
	}
	for base := unknownBase; base+last <= 65535; base += RuleSlots + 1 {
		if fits(base) {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no free block of %d ports", last-first+1)
}

// unknownRule chooses the rule of a variable the profile does not know (or
// whose documented rule collides in this file): slot N gets Base+N. The
// first base that works is taken, trying the variable's own default first,
// then blocks above unknownBase; a base works when none of its ports for
// slots 1–RuleSlots is a port of the rules already taken (slots
// 0–RuleSlots) or any slot-0 port of the file.
func unknownRule(taken []PortRule, defaults map[int]string, v PortVar) (PortRule, error) {
	base, err := freeBlock(usedPorts(taken, defaults), 1, RuleSlots, v.Default)
	if err != nil {
		return PortRule{}, fmt.Errorf("${%s}: %w", v.Key, err)
	}
	label := v.Service
	if rest := strings.TrimSuffix(strings.TrimPrefix(v.Key, "KTRDR_"), "_PORT"); !strings.EqualFold(strings.ReplaceAll(rest, "_", "-"), v.Service) {
		label += " " + strings.ToLower(strings.ReplaceAll(rest, "_", " "))
	}
	return PortRule{Key: v.Key, Service: v.Service, Label: label, Slot0: v.Default, Base: base, Step: 1, Chosen: true}, nil
}
