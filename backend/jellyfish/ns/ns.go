// Package ns is the namespace of a Jellyfish account: the tree of files and
// directories, the operations that change it, and the deterministic merge
// that lets every device compute the same tree from every device's log.
//
// Each path has at most one entry. An entry carries the stamp of the
// operation that wrote it — a hybrid logical clock and the writing device —
// and an operation replaces an entry only if its stamp is greater, so
// applying the same operations in any order gives the same tree. Deletes
// leave tombstones so an older write cannot resurrect a deleted path.
package ns

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"time"
)

// DeviceID names one device of an account.
type DeviceID [16]byte

// String returns the device ID in hex.
func (d DeviceID) String() string { return hex.EncodeToString(d[:]) }

// MarshalText implements encoding.TextMarshaler.
func (d DeviceID) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *DeviceID) UnmarshalText(b []byte) error {
	if len(b) != 2*len(d) {
		return fmt.Errorf("ns: device ID %q: want %d hex characters", b, 2*len(d))
	}
	_, err := hex.Decode(d[:], b)
	return err
}

// Stamp orders writes to one path: hybrid logical clock first, then device.
type Stamp struct {
	HLC    uint64   `json:"h"`
	Device DeviceID `json:"d"`
}

// Compare returns -1, 0 or +1 as s is ordered before, equal to or after o.
func (s Stamp) Compare(o Stamp) int {
	switch {
	case s.HLC < o.HLC:
		return -1
	case s.HLC > o.HLC:
		return 1
	}
	return bytes.Compare(s.Device[:], o.Device[:])
}

// Less reports whether s is ordered before o.
func (s Stamp) Less(o Stamp) bool {
	if s.HLC != o.HLC {
		return s.HLC < o.HLC
	}
	return bytes.Compare(s.Device[:], o.Device[:]) < 0
}

// Entry is the state of one path.
type Entry struct {
	Path    string `json:"p"`
	Dir     bool   `json:"dir,omitempty"`
	Deleted bool   `json:"del,omitempty"`
	Size    int64  `json:"s,omitempty"`
	// ModTime is the file's modification time in Unix nanoseconds.
	ModTime int64 `json:"m,omitempty"`
	// Hash is the BLAKE3 hash of the plaintext.
	Hash []byte `json:"b3,omitempty"`
	// Content describes where the bytes live; opaque to this package.
	Content []byte `json:"c,omitempty"`
	// Inline holds the bytes of a tiny file, which then has no Content:
	// they travel inside the (encrypted) log batch itself.
	Inline []byte `json:"i,omitempty"`
	Stamp  Stamp  `json:"t"`
	// Bases are the stamps of the entries at Path that this write replaces:
	// what its writer saw there.
	Bases []Stamp `json:"b,omitempty"`
}

// Live reports whether the entry exists (is not a tombstone).
func (e *Entry) Live() bool { return e != nil && !e.Deleted }

// Time returns ModTime as a time.Time.
func (e *Entry) Time() time.Time { return time.Unix(0, e.ModTime) }

// Clean returns the canonical form of a path: no leading, trailing or
// double slashes, no "." or ".." elements. The root is "".
func Clean(p string) string {
	p = path.Clean("/" + p)
	return strings.TrimPrefix(p, "/")
}

// Parent returns the parent directory of a clean path ("" for top level).
func Parent(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ""
	}
	return p[:i]
}

// Tree is a merged namespace. It is safe for concurrent use.
//
// Every path keeps its heads: the entries no other entry has superseded.
// An entry supersedes the entries listed in its Bases — what its writer saw
// at the path when it wrote. Sequential writes therefore leave one head; a
// write made without seeing another (on another device, before the two
// logs met) leaves two. The path shows the head with the greatest stamp;
// the others are conflicts (see Conflicts). The heads are a function of
// the set of entries applied, not of their order.
type Tree struct {
	mu       sync.RWMutex
	paths    map[string]*pathState
	children map[string]map[string]struct{} // live children by parent dir
	touched  map[string]map[string]struct{} // every path applied, by parent dir
	packs    map[PackID]*Pack
	locs     map[ShardID]map[string]struct{} // extra holders by shard
}

type pathState struct {
	heads      []*Entry
	superseded map[Stamp]struct{} // nil until an entry at the path has bases
}

// winner returns the head with the greatest stamp, or nil.
func (ps *pathState) winner() *Entry {
	var w *Entry
	for _, h := range ps.heads {
		if w == nil || w.Stamp.Less(h.Stamp) {
			w = h
		}
	}
	return w
}

// NewTree returns an empty tree.
func NewTree() *Tree {
	return &Tree{paths: map[string]*pathState{}, children: map[string]map[string]struct{}{}, touched: map[string]map[string]struct{}{}}
}

// Apply merges e into the tree and reports whether the entry shown at
// e.Path changed.
func (t *Tree) Apply(e Entry) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.apply(e)
}

func (t *Tree) apply(e Entry) bool {
	ps := t.paths[e.Path]
	if ps == nil {
		ps = &pathState{}
		t.paths[e.Path] = ps
		if e.Path != "" {
			parent := Parent(e.Path)
			kids := t.touched[parent]
			if kids == nil {
				kids = map[string]struct{}{}
				t.touched[parent] = kids
			}
			kids[e.Path] = struct{}{}
		}
	}
	for _, h := range ps.heads {
		if h.Stamp == e.Stamp {
			return false // already applied
		}
	}
	before := ps.winner()
	// An entry's bases count even when the entry itself arrives already
	// superseded (a later write that saw it was applied first): what it
	// replaced is replaced, whatever the order entries arrive in.
	if ps.superseded == nil && len(e.Bases) > 0 {
		ps.superseded = make(map[Stamp]struct{}, len(e.Bases))
	}
	for _, b := range e.Bases {
		ps.superseded[b] = struct{}{}
	}
	if len(e.Bases) > 0 {
		kept := ps.heads[:0]
		for _, h := range ps.heads {
			if _, gone := ps.superseded[h.Stamp]; !gone {
				kept = append(kept, h)
			}
		}
		ps.heads = kept
	}
	if _, old := ps.superseded[e.Stamp]; old {
		return t.noteWinner(e.Path, before, ps)
	}
	ne := e
	ps.heads = append(ps.heads, &ne)
	return t.noteWinner(e.Path, before, ps)
}

// noteWinner updates the live children index after the heads at p changed
// and reports whether the entry shown at p changed from before. The caller
// holds t.mu.
func (t *Tree) noteWinner(p string, before *Entry, ps *pathState) bool {
	after := ps.winner()
	if after == before {
		return false
	}
	if p != "" {
		parent := Parent(p)
		kids := t.children[parent]
		if after.Live() {
			if kids == nil {
				kids = map[string]struct{}{}
				t.children[parent] = kids
			}
			kids[p] = struct{}{}
		} else {
			delete(kids, p)
		}
	}
	return true
}

// Get returns a copy of the live entry shown at p, or nil.
func (t *Tree) Get(p string) *Entry {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.get(p)
}

func (t *Tree) get(p string) *Entry {
	ps := t.paths[p]
	if ps == nil {
		return nil
	}
	e := ps.winner()
	if !e.Live() {
		return nil
	}
	c := *e
	return &c
}

// Heads returns the stamps of p's heads: the Bases of a new write at p.
func (t *Tree) Heads(p string) []Stamp {
	t.mu.RLock()
	defer t.mu.RUnlock()
	ps := t.paths[p]
	if ps == nil {
		return nil
	}
	out := make([]Stamp, len(ps.heads))
	for i, h := range ps.heads {
		out[i] = h.Stamp
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// IsDir reports whether p is the root or a live directory.
func (t *Tree) IsDir(p string) bool {
	if p == "" {
		return true
	}
	e := t.Get(p)
	return e != nil && e.Dir
}

// List returns copies of the live entries directly inside dir, sorted by
// path.
func (t *Tree) List(dir string) []Entry {
	t.mu.RLock()
	defer t.mu.RUnlock()
	kids := t.children[dir]
	out := make([]Entry, 0, len(kids))
	for p := range kids {
		if e := t.get(p); e != nil {
			out = append(out, *e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Walk calls fn for every live entry under dir (recursively), in path
// order; dir "" walks everything.
func (t *Tree) Walk(dir string, fn func(Entry) error) error {
	t.mu.RLock()
	var all []Entry
	prefix := dir + "/"
	for p := range t.paths {
		if p != "" && (dir == "" || strings.HasPrefix(p, prefix)) {
			if e := t.get(p); e != nil {
				all = append(all, *e)
			}
		}
	}
	t.mu.RUnlock()
	sort.Slice(all, func(i, j int) bool { return all[i].Path < all[j].Path })
	for _, e := range all {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// HasChildren reports whether dir has any live entry inside it.
func (t *Tree) HasChildren(dir string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.children[dir]) > 0
}

// All returns copies of every head of every path, tombstones included,
// sorted by path then stamp: what a checkpoint stores.
func (t *Tree) All() []Entry {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []Entry
	for _, ps := range t.paths {
		for _, h := range ps.heads {
			out = append(out, *h)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Stamp.Less(out[j].Stamp)
	})
	return out
}

// Conflict is a path whose heads disagree: Winner is shown at Path, each
// of Losers is a live file that must be kept as a conflict copy.
type Conflict struct {
	Path   string
	Winner Entry
	Heads  []Stamp
	Losers []Entry
}

// sameContent reports whether two entries show the same thing, in which
// case a second head is no conflict (two devices resolving one conflict
// write the same result).
func sameContent(a, b *Entry) bool {
	if a.Deleted || b.Deleted {
		return a.Deleted == b.Deleted
	}
	if a.Dir || b.Dir {
		return a.Dir == b.Dir
	}
	return a.Size == b.Size && bytes.Equal(a.Hash, b.Hash)
}

// Conflicts returns the paths with concurrent heads that need conflict
// copies, sorted by path.
func (t *Tree) Conflicts() []Conflict {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []Conflict
	for p, ps := range t.paths {
		if len(ps.heads) < 2 {
			continue
		}
		w := ps.winner()
		c := Conflict{Path: p, Winner: *w}
		for _, h := range ps.heads {
			c.Heads = append(c.Heads, h.Stamp)
			if h != w && h.Live() && !h.Dir && !sameContent(h, w) {
				c.Losers = append(c.Losers, *h)
			}
		}
		if len(c.Losers) > 0 {
			sort.Slice(c.Losers, func(i, j int) bool { return c.Losers[i].Stamp.Less(c.Losers[j].Stamp) })
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// ConflictName returns the path a conflict copy of loser at p is kept at:
// "dir/name.conflict-<device>-<stamp>.ext". It is derived from the loser
// alone, so every device that resolves the conflict picks the same path.
func ConflictName(p string, loser Stamp) string {
	dir, name := Parent(p), p[strings.LastIndexByte(p, '/')+1:]
	ext := path.Ext(name)
	if ext == name {
		ext = ""
	}
	base := strings.TrimSuffix(name, ext)
	n := fmt.Sprintf("%s.conflict-%s-%d%s", base, hex.EncodeToString(loser.Device[:4]), loser.HLC>>16, ext)
	if dir == "" {
		return n
	}
	return dir + "/" + n
}

// Clock is a hybrid logical clock: wall-clock milliseconds in the high 48
// bits and a counter in the low 16, never going backwards and always above
// every stamp it has observed.
type Clock struct {
	mu   sync.Mutex
	last uint64
	now  func() time.Time
}

// NewClock returns a clock reading now (time.Now if nil).
func NewClock(now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{now: now}
}

// Next returns a stamp value greater than every earlier one.
func (c *Clock) Next() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	wall := uint64(c.now().UnixMilli()) << 16
	if wall > c.last {
		c.last = wall
	} else {
		c.last++
	}
	return c.last
}

// MaxAhead is how far ahead of its own clock a Clock's stamps may go
// after observing another device's: a device whose clock runs days fast
// must not make every device that reads its changes stamp days ahead
// too, winning every conflict until real time catches up.
const MaxAhead = 5 * time.Minute

// Observe moves the clock past a stamp seen from another device, but not
// more than MaxAhead past its own time.
func (c *Clock) Observe(h uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if limit := uint64(c.now().Add(MaxAhead).UnixMilli()) << 16; h > limit {
		h = limit
	}
	if h > c.last {
		c.last = h
	}
}

// State returns copies of p's heads and of every stamp an entry applied at
// p names as a base, or false if nothing was applied at p.
func (t *Tree) State(p string) (heads []Entry, superseded []Stamp, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	ps := t.paths[p]
	if ps == nil {
		return nil, nil, false
	}
	heads = make([]Entry, len(ps.heads))
	for i, h := range ps.heads {
		heads[i] = *h
	}
	for s := range ps.superseded {
		superseded = append(superseded, s)
	}
	return heads, superseded, true
}

// Touched returns, sorted, the paths directly inside dir at which entries
// were applied (whatever they show now).
func (t *Tree) Touched(dir string) []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]string, 0, len(t.touched[dir]))
	for p := range t.touched[dir] {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// TouchedUnder returns, sorted, every path strictly below dir at which
// entries were applied ("" for everything).
func (t *Tree) TouchedUnder(dir string) []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []string
	prefix := dir + "/"
	for p := range t.paths {
		if p != "" && (dir == "" || strings.HasPrefix(p, prefix)) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// Len returns the number of paths at which entries were applied.
func (t *Tree) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.paths)
}

// ApplyLocation records that holder (a peer ID's bytes) also holds shard
// id, and reports whether that is new.
func (t *Tree) ApplyLocation(id ShardID, holder []byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.locs == nil {
		t.locs = map[ShardID]map[string]struct{}{}
	}
	hs := t.locs[id]
	if hs == nil {
		hs = map[string]struct{}{}
		t.locs[id] = hs
	}
	if _, ok := hs[string(holder)]; ok {
		return false
	}
	hs[string(holder)] = struct{}{}
	return true
}

// Locations returns the extra holders of shard id, sorted.
func (t *Tree) Locations(id ShardID) [][]byte {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return sortedHolders(t.locs[id])
}

// AllLocations returns every shard with extra holders.
func (t *Tree) AllLocations() map[ShardID][][]byte {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make(map[ShardID][][]byte, len(t.locs))
	for id, hs := range t.locs {
		out[id] = sortedHolders(hs)
	}
	return out
}

func sortedHolders(hs map[string]struct{}) [][]byte {
	out := make([][]byte, 0, len(hs))
	for h := range hs {
		out = append(out, []byte(h))
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i], out[j]) < 0 })
	return out
}
