package ns

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"sort"
)

// PackID names a pack: random, chosen by the device that creates it.
type PackID [16]byte

// String returns the ID in hex.
func (id PackID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText encodes the ID as hex.
func (id PackID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes a hex ID.
func (id *PackID) UnmarshalText(b []byte) error {
	if len(b) != 2*len(id) {
		return fmt.Errorf("ns: pack ID of %d hex characters", len(b))
	}
	_, err := hex.Decode(id[:], b)
	return err
}

// Pack is the record of one shared object holding the bytes of several
// files. A file in a pack refers to it by ID and to its bytes by their
// offset and length in the pack's original layout; repacking stores the
// bytes still referred to in a new object and publishes the pack again with
// a higher Rev, a new Ref and Map saying where each kept extent moved. Only
// the device that created a pack rewrites it, so revisions never race.
type Pack struct {
	ID PackID `json:"id"`
	// Device created the pack and is the only one that rewrites it.
	Device DeviceID `json:"dev"`
	Rev    uint64   `json:"rev"`
	// Size is the length of the pack's original layout.
	Size int64 `json:"s"`
	// Ref is where the pack's current object lives; opaque to this package.
	// Empty when the pack was dropped (nothing in it is referred to).
	Ref []byte `json:"r,omitempty"`
	// Map lists, sorted by Off, the extents kept by repacking and where
	// they now start in Ref's object. Empty: offsets are unchanged.
	Map []Extent `json:"x,omitempty"`
}

// Extent is a byte range of a pack's original layout, moved to At.
type Extent struct {
	Off int64 `json:"o"`
	Len int64 `json:"l"`
	At  int64 `json:"a"`
}

// Locate returns where bytes [off, off+n) of the pack's original layout
// live in its current object, or false when repacking dropped them (or the
// pack was dropped).
func (p *Pack) Locate(off, n int64) (int64, bool) {
	if len(p.Ref) == 0 || off < 0 || n < 0 || off+n > p.Size {
		return 0, false
	}
	if len(p.Map) == 0 {
		return off, true
	}
	i := sort.Search(len(p.Map), func(i int) bool { return p.Map[i].Off+p.Map[i].Len > off })
	if i == len(p.Map) {
		return 0, false
	}
	x := p.Map[i]
	if off < x.Off || off+n > x.Off+x.Len {
		return 0, false
	}
	return x.At + off - x.Off, true
}

// checkPack checks the invariants a reader relies on.
func checkPack(p *Pack) error {
	if p.Size < 0 {
		return fmt.Errorf("ns: pack %s has size %d", p.ID, p.Size)
	}
	var end, at int64
	for i, x := range p.Map {
		if x.Off < end || x.Len <= 0 || x.Off+x.Len > p.Size || x.At < at {
			return fmt.Errorf("ns: pack %s: extent %d out of order or range", p.ID, i)
		}
		end, at = x.Off+x.Len, x.At+x.Len
	}
	return nil
}

// ApplyPack merges a pack record: the highest revision wins, and of two
// records of one revision (a pack stored twice by a device that crashed in
// between) the one with the smaller reference, so every device keeps the
// same. It reports whether the pack changed.
func (t *Tree) ApplyPack(p Pack) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.packs == nil {
		t.packs = map[PackID]*Pack{}
	}
	if cur := t.packs[p.ID]; cur != nil && !newerPack(&p, cur) {
		return false
	}
	np := p
	t.packs[p.ID] = &np
	return true
}

// Pack returns a copy of the pack record id, or nil.
func (t *Tree) Pack(id PackID) *Pack {
	t.mu.RLock()
	defer t.mu.RUnlock()
	p := t.packs[id]
	if p == nil {
		return nil
	}
	c := *p
	return &c
}

// Packs returns copies of every pack record, sorted by ID: what a
// checkpoint stores.
func (t *Tree) Packs() []Pack {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]Pack, 0, len(t.packs))
	for _, p := range t.packs {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i].ID[:]) < string(out[j].ID[:]) })
	return out
}

// newerPack reports whether record a of a pack replaces record b.
func newerPack(a, b *Pack) bool {
	if a.Rev != b.Rev {
		return a.Rev > b.Rev
	}
	return bytes.Compare(a.Ref, b.Ref) < 0
}
