package sandbox

import (
	"context"
	"fmt"
	"path/filepath"
)

// PortPlan is every published-port variable of a checkout's stack file,
// its rule and its port in each slot: the JSON shape of `sandbox:ports -json`.
type PortPlan struct {
	File    string         `json:"file"`
	MinSlot int            `json:"min_slot"`
	MaxSlot int            `json:"max_slot"`
	Ports   []PortPlanLine `json:"ports"`
	// Literal are host ports the file publishes without a variable: the
	// same in every slot, so only one sandbox (or the main stack) at a time
	// can publish each.
	Literal []PortPlanLine `json:"literal,omitempty"`
	// SharedVolumes are volumes the file names: every sandbox and the main
	// stack share them.
	SharedVolumes []SharedVolume `json:"shared_volumes,omitempty"`
	// Warnings name what every sandbox shares (literal ports and ranges,
	// the host's network, named volumes).
	Warnings []StackWarning `json:"warnings,omitempty"`
}

// PortPlanLine is one variable of a PortPlan.
type PortPlanLine struct {
	Key     string      `json:"key"`
	Service string      `json:"service"`
	Label   string      `json:"label"`
	Rule    string      `json:"rule"`   // "8000+N", "5000+10N", "20000+N"
	Chosen  bool        `json:"chosen"` // the suite chose the rule: the profile does not document the variable
	Slot0   int         `json:"slot0"`  // the main checkout's port: the file's default
	Slots   map[int]int `json:"slots"`  // slot → port
}

// PortsOptions are the inputs of Ports.
type PortsOptions struct {
	Dir  string // a folder of the checkout
	Slot int    // one slot; 0 for every sandbox slot
}

// Ports returns the port plan of the checkout that holds o.Dir, for one
// slot or for every sandbox slot.
func (m *Manager) Ports(ctx context.Context, o PortsOptions) (*PortPlan, error) {
	slot := o.Slot
	co, err := m.FindCheckout(ctx, o.Dir)
	if err != nil {
		return nil, err
	}
	var vals map[string]string
	if l, err := m.locate(co.Root); err == nil {
		vals, _ = m.Profile.EnvValues(filepath.Join(l.Root, m.Profile.EnvFile))
	}
	sp, sf, err := m.stackOf(ctx, co.Root, vals)
	if err != nil {
		return nil, err
	}
	if slot != 0 && (slot < sp.MinSlot || slot > sp.MaxSlot) {
		return nil, &SlotError{Slot: slot, Reason: fmt.Sprintf("out of range %d–%d", sp.MinSlot, sp.MaxSlot)}
	}
	plan := &PortPlan{File: sf.Path, MinSlot: sp.MinSlot, MaxSlot: sp.MaxSlot, SharedVolumes: sf.SharedVolumes, Warnings: sf.Warnings}
	for _, r := range sp.Ports {
		line := PortPlanLine{Key: r.Key, Service: r.Service, Label: r.Label, Chosen: r.Chosen, Slot0: r.Slot0,
			Rule: ruleText(r), Slots: map[int]int{}}
		for s := sp.MinSlot; s <= sp.MaxSlot; s++ {
			if slot == 0 || s == slot {
				line.Slots[s] = r.Port(s)
			}
		}
		plan.Ports = append(plan.Ports, line)
	}
	for _, r := range sp.Literal {
		plan.Literal = append(plan.Literal, PortPlanLine{Key: r.Key, Service: r.Service, Label: r.Label, Rule: "literal", Slot0: r.Slot0})
	}
	return plan, nil
}

func ruleText(r PortRule) string {
	s := fmt.Sprintf("%d+%dN", r.Base, r.Step)
	if r.Step == 1 {
		s = fmt.Sprintf("%d+N", r.Base)
	}
	if r.Until > 0 {
		s += fmt.Sprintf(" up to slot %d, then %d+N", r.Until, r.Then)
	}
	return s
}
