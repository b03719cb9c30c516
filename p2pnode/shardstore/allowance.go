package shardstore

import (
	"context"
	"fmt"
	"math"
)

// Allowance is what one owner may reference at a store, as a provider's
// admission policy decides it for one put (ContextWithAllowance). A zero
// cap is no cap, so the zero Allowance admits everything the quota does.
type Allowance struct {
	// Max caps the bytes the owner references, counting the shards it
	// references and the puts of it in flight together.
	Max int64
	// Group is the group of owners the owner counts in, and GroupMax caps
	// what all owners of the group reference together, in the same way.
	// Owners the store was never told a group for (every owner when the
	// store opens) count in the group "", so a policy gives its least
	// trusted owners that group: a restart then hides none of their bytes.
	Group    string
	GroupMax int64
	// Who names the owner's kind in a refusal ("an account that shares no
	// node"), Whose names the group's members ("accounts that share no
	// node"), and Advice says what the owner can do to store more.
	Who, Whose, Advice string
}

// AllowanceFunc returns the allowance of a put's owner. Put calls it only
// for a put that would add a reference the owner does not hold yet, and
// never while holding the store's lock, so it may look things up over the
// network; it should bound the time it takes.
type AllowanceFunc func(ctx context.Context) (Allowance, error)

type allowanceKey struct{}

// ContextWithAllowance returns ctx carrying the admission policy of a
// put: Disk.Put refuses, with an *AllowanceError, a put that adds a new
// reference and would take its owner or the owner's group past the
// allowance f returns. A put of a shard the owner already references, and
// every renewal, is never refused for its allowance: a limit lowered
// later must not turn into data lost. Without it a put is limited by the
// quota alone.
func ContextWithAllowance(ctx context.Context, f AllowanceFunc) context.Context {
	return context.WithValue(ctx, allowanceKey{}, f)
}

func allowanceFuncOf(ctx context.Context) AllowanceFunc {
	f, _ := ctx.Value(allowanceKey{}).(AllowanceFunc)
	return f
}

// AllowanceError is a put refused because its owner, or its owner's
// group, references as much as its Allowance lets it. It unwraps to
// ErrOverAllowance; its message is meant for the owner's user as it is.
type AllowanceError struct {
	Allowance
	// Held is what the owner references (with its puts in flight).
	Held int64
	// GroupHeld is what the owner's group references; Collective says the
	// group's cap refused the put, not the owner's.
	GroupHeld  int64
	Collective bool
}

func (e *AllowanceError) Error() string {
	var s string
	if e.Collective {
		s = fmt.Sprintf("this provider keeps at most %s for all %s together, and holds %s of theirs (%s of yours)",
			FormatBytes(e.GroupMax), e.Whose, FormatBytes(e.GroupHeld), FormatBytes(e.Held))
	} else {
		s = fmt.Sprintf("this provider keeps at most %s for %s (it holds %s of yours)", FormatBytes(e.Max), e.Who, FormatBytes(e.Held))
	}
	if e.Advice != "" {
		s += "; " + e.Advice
	}
	return s
}

// Unwrap returns ErrOverAllowance.
func (e *AllowanceError) Unwrap() error { return ErrOverAllowance }

// FormatBytes writes n in binary units with at most one decimal, rounded
// down so that a figure below a limit never reads as the limit: 256 MiB,
// 255.9 MiB, 512 B.
func FormatBytes(n int64) string {
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n)/1024, 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	t := math.Floor(v*10) / 10
	if t == math.Trunc(t) {
		return fmt.Sprintf("%.0f %s", t, units[u])
	}
	return fmt.Sprintf("%.1f %s", t, units[u])
}

// checkAllowance refuses a new reference of size bytes for owner that would
// take it or its group past a. It first moves owner to a's group. The
// caller holds d.mu.
func (d *Disk) checkAllowance(owner Owner, size int64, a *Allowance) error {
	d.regroup(owner, a.Group)
	held := d.perOwner[owner] + d.res.byOwner[owner]
	group := d.groupBytes[a.Group]
	var err error
	switch {
	case a.Max > 0 && held+size > a.Max:
		err = &AllowanceError{Allowance: *a, Held: held, GroupHeld: group}
	case a.GroupMax > 0 && group+size > a.GroupMax:
		err = &AllowanceError{Allowance: *a, Held: held, GroupHeld: group, Collective: true}
	}
	if err != nil {
		d.forgetIfEmpty(owner)
	}
	return err
}

// regroup moves owner, and what it references and reserves, to group g.
// The caller holds d.mu.
func (d *Disk) regroup(owner Owner, g string) {
	cur := d.groupOf[owner]
	if cur == g {
		return
	}
	n := d.perOwner[owner] + d.res.byOwner[owner]
	d.addGroupBytes(cur, -n)
	d.addGroupBytes(g, n)
	if g == "" {
		delete(d.groupOf, owner)
	} else {
		d.groupOf[owner] = g
	}
}

// charge adds delta to what owner references, and to its group. The
// caller holds d.mu.
func (d *Disk) charge(owner Owner, delta int64) {
	if d.perOwner[owner] += delta; d.perOwner[owner] <= 0 {
		delete(d.perOwner, owner)
	}
	d.addGroupBytes(d.groupOf[owner], delta)
	d.forgetIfEmpty(owner)
}

// chargeReserved adds delta to the group of owner for bytes reserved by
// its puts in flight (the reservations themselves are kept by res). The
// caller holds d.mu.
func (d *Disk) chargeReserved(owner Owner, delta int64) {
	d.addGroupBytes(d.groupOf[owner], delta)
	d.forgetIfEmpty(owner)
}

func (d *Disk) addGroupBytes(g string, delta int64) {
	if d.groupBytes[g] += delta; d.groupBytes[g] <= 0 {
		delete(d.groupBytes, g)
	}
}

// forgetIfEmpty drops the group of an owner that references and reserves
// nothing, so the map holds only owners with bytes here.
func (d *Disk) forgetIfEmpty(owner Owner) {
	if d.perOwner[owner] == 0 && d.res.byOwner[owner] == 0 {
		delete(d.groupOf, owner)
	}
}

// AssignGroup puts owner in group g (see Allowance.Group) without a put:
// a provider names its own account's group when its store opens, so that
// the bytes it already holds for it do not count as the default group's.
func (d *Disk) AssignGroup(owner Owner, g string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.regroup(owner, g)
	d.forgetIfEmpty(owner)
}

// Room returns what owner references here, with its puts in flight
// (held), and how many more bytes it may put now (room): the space free,
// less what its allowance a (nil: none) leaves it, by its own cap and its
// group's. It counts the owner in a's group as a put would, without
// moving it there.
func (d *Disk) Room(owner Owner, a *Allowance) (held, room int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	held = d.perOwner[owner] + d.res.byOwner[owner]
	room = max(0, d.quota-d.used-d.res.total)
	if a == nil {
		return held, room
	}
	if a.Max > 0 {
		room = min(room, max(0, a.Max-held))
	}
	if a.GroupMax > 0 {
		group := d.groupBytes[a.Group]
		if d.groupOf[owner] != a.Group {
			group += held
		}
		room = min(room, max(0, a.GroupMax-group))
	}
	return held, room
}
