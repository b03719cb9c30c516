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
	Stamp   Stamp  `json:"t"`
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
type Tree struct {
	mu       sync.RWMutex
	entries  map[string]*Entry
	children map[string]map[string]struct{} // live children by parent dir
}

// NewTree returns an empty tree.
func NewTree() *Tree {
	return &Tree{entries: map[string]*Entry{}, children: map[string]map[string]struct{}{}}
}

// Apply merges e into the tree: it replaces the current entry of e.Path if
// e's stamp is greater, and reports whether it did.
func (t *Tree) Apply(e Entry) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.apply(e)
}

func (t *Tree) apply(e Entry) bool {
	cur := t.entries[e.Path]
	if cur != nil && !cur.Stamp.Less(e.Stamp) {
		return false
	}
	ne := e
	t.entries[e.Path] = &ne
	parent := Parent(e.Path)
	if e.Path == "" {
		return true
	}
	kids := t.children[parent]
	if ne.Deleted {
		delete(kids, e.Path)
	} else {
		if kids == nil {
			kids = map[string]struct{}{}
			t.children[parent] = kids
		}
		kids[e.Path] = struct{}{}
	}
	return true
}

// Get returns a copy of the live entry at p, or nil.
func (t *Tree) Get(p string) *Entry {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e := t.entries[p]
	if !e.Live() {
		return nil
	}
	c := *e
	return &c
}

// Stamp returns the stamp of the entry at p (live or tombstone), if any.
func (t *Tree) Stamp(p string) (Stamp, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e := t.entries[p]
	if e == nil {
		return Stamp{}, false
	}
	return e.Stamp, true
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
		if e := t.entries[p]; e.Live() {
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
	for p, e := range t.entries {
		if e.Live() && p != "" && (dir == "" || strings.HasPrefix(p, prefix)) {
			all = append(all, *e)
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

// All returns copies of every entry, tombstones included, sorted by path:
// what a checkpoint stores.
func (t *Tree) All() []Entry {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]Entry, 0, len(t.entries))
	for _, e := range t.entries {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
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

// Observe moves the clock past a stamp seen from another device.
func (c *Clock) Observe(h uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h > c.last {
		c.last = h
	}
}
