package ns

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sort"
)

// Base is a checkpoint: a sorted map of keys (see EntryKey, PackKey,
// LocationKey) to values, read on demand. A *btree.Tree is one.
type Base interface {
	Get(ctx context.Context, key []byte) (value []byte, ok bool, err error)
	Ascend(ctx context.Context, start, end []byte, fn func(key, value []byte) error) error
}

// View is a namespace as a device sees it: a checkpoint (Base, nil for
// none) under layers of entries applied since, oldest first — in a
// session, the batches read or flushed after the checkpoint, then the
// changes not flushed yet. A path's heads are those of every part that are
// not named as a base by any part, so the view is the same whatever part an
// entry sits in. A View is safe for concurrent use when its parts are.
type View struct {
	Base   Base
	Layers []*Tree
}

// heads returns p's merged heads, sorted by stamp, from the base's value
// at p (nil if none) and the layers.
func (v View) merge(p string, baseValue []byte) ([]Entry, error) {
	var cands []Entry
	superseded := map[Stamp]struct{}{}
	if baseValue != nil {
		hs, err := DecodeHeads(p, baseValue)
		if err != nil {
			return nil, err
		}
		for _, h := range hs {
			for _, b := range h.Bases {
				superseded[b] = struct{}{}
			}
		}
		cands = hs
	}
	for _, l := range v.Layers {
		hs, sup, ok := l.State(p)
		if !ok {
			continue
		}
		for _, s := range sup {
			superseded[s] = struct{}{}
		}
		cands = append(cands, hs...)
	}
	out := cands[:0]
	for _, c := range cands {
		if _, gone := superseded[c.Stamp]; !gone {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return a.Stamp.Compare(b.Stamp) })
	return slices.CompactFunc(out, func(a, b Entry) bool { return a.Stamp == b.Stamp }), nil
}

// baseValue returns the checkpoint's value at p, or nil.
func (v View) baseValue(ctx context.Context, p string) ([]byte, error) {
	if v.Base == nil {
		return nil, nil
	}
	b, ok, err := v.Base.Get(ctx, EntryKey(p))
	if err != nil || !ok {
		return nil, err
	}
	return b, nil
}

// Heads returns p's heads, sorted by stamp (the last is what p shows).
func (v View) Heads(ctx context.Context, p string) ([]Entry, error) {
	value, err := v.baseValue(ctx, p)
	if err != nil {
		return nil, err
	}
	return v.merge(p, value)
}

// Get returns a copy of the live entry p shows, or nil.
func (v View) Get(ctx context.Context, p string) (*Entry, error) {
	if p == "" {
		return nil, nil
	}
	hs, err := v.Heads(ctx, p)
	if err != nil || len(hs) == 0 {
		return nil, err
	}
	if w := hs[len(hs)-1]; w.Live() {
		return &w, nil
	}
	return nil, nil
}

// IsDir reports whether p is the root or a live directory.
func (v View) IsDir(ctx context.Context, p string) (bool, error) {
	if p == "" {
		return true, nil
	}
	e, err := v.Get(ctx, p)
	return e != nil && e.Dir, err
}

// List returns the live entries directly inside dir, sorted by path.
func (v View) List(ctx context.Context, dir string) ([]Entry, error) {
	var out []Entry
	err := v.children(ctx, dir, func(e Entry) error {
		out = append(out, e)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, err
}

// errStop ends a scan early.
var errStop = errors.New("stop")

// HasChildren reports whether dir has any live entry inside it.
func (v View) HasChildren(ctx context.Context, dir string) (bool, error) {
	found := false
	err := v.children(ctx, dir, func(Entry) error {
		found = true
		return errStop
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return found, err
}

// children calls fn for each live entry directly inside dir, in no
// particular order.
func (v View) children(ctx context.Context, dir string, fn func(Entry) error) error {
	start, end := ChildrenRange(dir)
	var layered []string
	for _, l := range v.Layers {
		layered = append(layered, l.Touched(dir)...)
	}
	return v.scan(ctx, [][2][]byte{{start, end}}, layered, fn)
}

// Walk calls fn for every live entry below dir (recursively; "" is
// everything), in no particular order.
func (v View) Walk(ctx context.Context, dir string, fn func(Entry) error) error {
	cs, ce := ChildrenRange(dir)
	ds, de := DescendantsRange(dir)
	var layered []string
	for _, l := range v.Layers {
		layered = append(layered, l.TouchedUnder(dir)...)
	}
	return v.scan(ctx, [][2][]byte{{cs, ce}, {ds, de}}, layered, fn)
}

// scan merges the base's entries in the key ranges with the layers' paths
// in layered (which lie in those ranges) and calls fn for each live one.
func (v View) scan(ctx context.Context, ranges [][2][]byte, layered []string, fn func(Entry) error) error {
	pending := make(map[string]bool, len(layered))
	for _, p := range layered {
		pending[p] = true
	}
	emit := func(p string, baseValue []byte) error {
		hs, err := v.merge(p, baseValue)
		if err != nil {
			return err
		}
		if len(hs) > 0 && hs[len(hs)-1].Live() {
			return fn(hs[len(hs)-1])
		}
		return nil
	}
	if v.Base != nil {
		for _, r := range ranges {
			err := v.Base.Ascend(ctx, r[0], r[1], func(k, value []byte) error {
				p, ok := PathOfKey(k)
				if !ok {
					return nil
				}
				delete(pending, p)
				return emit(p, value)
			})
			if err != nil {
				return err
			}
		}
	}
	rest := make([]string, 0, len(pending))
	for p := range pending {
		rest = append(rest, p)
	}
	sort.Strings(rest)
	for _, p := range rest {
		if err := emit(p, nil); err != nil {
			return err
		}
	}
	return nil
}

// Pack returns pack id's record, or nil: the highest revision of the
// base's and the layers'.
func (v View) Pack(ctx context.Context, id PackID) (*Pack, error) {
	var best *Pack
	if v.Base != nil {
		b, ok, err := v.Base.Get(ctx, PackKey(id))
		if err != nil {
			return nil, err
		}
		if ok {
			if best, err = DecodePack(id, b); err != nil {
				return nil, err
			}
		}
	}
	for _, l := range v.Layers {
		if p := l.Pack(id); p != nil && (best == nil || newerPack(p, best)) {
			best = p
		}
	}
	return best, nil
}

// Packs calls fn with every pack record (the newest of each), in ID order.
func (v View) Packs(ctx context.Context, fn func(Pack) error) error {
	layered := map[PackID]*Pack{}
	for _, l := range v.Layers {
		for _, p := range l.Packs() {
			if cur := layered[p.ID]; cur == nil || newerPack(&p, cur) {
				layered[p.ID] = &p
			}
		}
	}
	if v.Base != nil {
		start, end := PackRange()
		err := v.Base.Ascend(ctx, start, end, func(k, value []byte) error {
			var id PackID
			copy(id[:], k[1:])
			p, err := DecodePack(id, value)
			if err != nil {
				return err
			}
			if l := layered[id]; l != nil {
				delete(layered, id)
				if newerPack(l, p) {
					p = l
				}
			}
			return fn(*p)
		})
		if err != nil {
			return err
		}
	}
	rest := make([]*Pack, 0, len(layered))
	for _, p := range layered {
		rest = append(rest, p)
	}
	sort.Slice(rest, func(i, j int) bool { return bytes.Compare(rest[i].ID[:], rest[j].ID[:]) < 0 })
	for _, p := range rest {
		if err := fn(*p); err != nil {
			return err
		}
	}
	return nil
}

// Locations returns the extra holders recorded for shard id, sorted.
func (v View) Locations(ctx context.Context, id ShardID) ([][]byte, error) {
	set := map[string]struct{}{}
	if v.Base != nil {
		b, ok, err := v.Base.Get(ctx, LocationKey(id))
		if err != nil {
			return nil, err
		}
		if ok {
			hs, err := DecodeHolders(b)
			if err != nil {
				return nil, err
			}
			for _, h := range hs {
				set[string(h)] = struct{}{}
			}
		}
	}
	for _, l := range v.Layers {
		for _, h := range l.Locations(id) {
			set[string(h)] = struct{}{}
		}
	}
	return sortedHolders(set), nil
}

// Conflicts returns, sorted by path, those of paths that have concurrent
// heads needing conflict copies.
func (v View) Conflicts(ctx context.Context, paths []string) ([]Conflict, error) {
	var out []Conflict
	seen := map[string]bool{}
	for _, p := range paths {
		if seen[p] {
			continue
		}
		seen[p] = true
		hs, err := v.Heads(ctx, p)
		if err != nil {
			return out, err
		}
		if c, ok := conflictOf(p, hs); ok {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// conflictOf returns the conflict at p with heads hs (sorted by stamp), if
// a losing head is a live file that differs from the winner.
func conflictOf(p string, hs []Entry) (Conflict, bool) {
	if len(hs) < 2 {
		return Conflict{}, false
	}
	w := hs[len(hs)-1]
	c := Conflict{Path: p, Winner: w}
	for _, h := range hs {
		c.Heads = append(c.Heads, h.Stamp)
		if h.Stamp != w.Stamp && h.Live() && !h.Dir && !sameContent(&h, &w) {
			c.Losers = append(c.Losers, h)
		}
	}
	return c, len(c.Losers) > 0
}

// Covered is, per device, the newest stamp (HLC) of that device's entries a
// checkpoint holds: every entry of the device stamped at or below it was
// applied. A device's log is in stamp order, so this follows from the last
// batch applied.
type Covered map[DeviceID]uint64

// CheckpointValue returns the value a checkpoint covering covered stores
// for p, merging the base's value and the layers: p's heads, the first of
// which also carries as bases the superseded stamps not covered (entries
// that may still arrive from a log and must not become heads again). It
// returns nil when p has no heads.
func (v View) CheckpointValue(ctx context.Context, p string, covered Covered) ([]byte, error) {
	value, err := v.baseValue(ctx, p)
	if err != nil {
		return nil, err
	}
	hs, err := v.merge(p, value)
	if err != nil || len(hs) == 0 {
		return nil, err
	}
	sup := map[Stamp]struct{}{}
	if value != nil {
		old, _ := DecodeHeads(p, value)
		for _, h := range old {
			for _, b := range h.Bases {
				sup[b] = struct{}{}
			}
		}
	}
	for _, l := range v.Layers {
		_, s, _ := l.State(p)
		for _, b := range s {
			sup[b] = struct{}{}
		}
	}
	have := map[Stamp]struct{}{}
	for _, b := range hs[0].Bases {
		have[b] = struct{}{}
	}
	var extra []Stamp
	for s := range sup {
		if _, ok := have[s]; ok || s.HLC <= covered[s.Device] {
			continue
		}
		extra = append(extra, s)
	}
	if len(extra) > 0 {
		slices.SortFunc(extra, Stamp.Compare)
		first := hs[0]
		first.Bases = append(slices.Clip(first.Bases), extra...)
		if len(first.Bases) > maxBases {
			// Keep the newest: the oldest are the likeliest to be covered
			// by every device by now.
			slices.SortFunc(first.Bases, Stamp.Compare)
			first.Bases = first.Bases[len(first.Bases)-maxBases:]
		}
		hs[0] = first
	}
	return EncodeHeads(hs)
}
