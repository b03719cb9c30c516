package btree

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"
)

// Store keeps encoded nodes.
//
// Put stores node and returns a reference to it: non-empty, at most MaxRef
// bytes, and never again used for other bytes. Put must not modify node;
// it may keep it, as the tree never modifies node afterwards either.
//
// Get returns the bytes stored under ref. The tree does not modify them and
// may keep them (cached nodes share their memory), so the Store must not
// modify them afterwards either.
//
// Both may be called concurrently, up to Config.Parallel calls at a time per
// operation of a tree.
type Store interface {
	Put(ctx context.Context, node []byte) (ref []byte, err error)
	Get(ctx context.Context, ref []byte) ([]byte, error)
}

// Defaults of Config.
const (
	DefaultTargetNodeSize = 32 << 10
	DefaultCacheNodes     = 1024
	DefaultParallel       = 8
)

// MinTargetNodeSize is the smallest TargetNodeSize New accepts.
const MinTargetNodeSize = 256

// Config says where a tree's nodes are stored and how they are shaped.
// Every tree holding the same data must be opened with the same Summarize,
// since the summaries of subtrees are stored in their parents.
type Config struct {
	Store Store
	// TargetNodeSize is the encoded size nodes are split to; 0 means
	// DefaultTargetNodeSize. At least MinTargetNodeSize.
	TargetNodeSize int
	// MaxNodeSize is the encoded size above which a node is split; 0 means
	// twice TargetNodeSize. At least TargetNodeSize, at most MaxNodeBytes.
	// A node may be larger only if it cannot be split: a leaf of one item,
	// or an internal node of at most three (internal nodes are split into
	// nodes of at least two items, so that a level above has at most half
	// as many nodes).
	MaxNodeSize int
	// Summarize returns the summary of one item, which must depend on
	// nothing else; nil means the zero Summary.
	Summarize func(key, value []byte) Summary
	// CacheNodes is the number of decoded nodes kept, least recently used
	// dropped first, shared by a tree and every tree made from it; 0 means
	// DefaultCacheNodes, a negative number none.
	CacheNodes int
	// Parallel is the number of concurrent Store calls one operation of a
	// tree makes at most; 0 means DefaultParallel.
	Parallel int
}

// shared is what a tree has in common with the trees made from it.
type shared struct {
	store     Store
	target    int
	max       int
	summarize func(key, value []byte) Summary
	parallel  int
	cache     *nodeCache
}

// Tree is a persistent sorted map from keys to values, stored as immutable
// nodes in a Store (see the package documentation). A Tree never changes:
// Apply returns a new one, and the old one stays readable as long as its
// nodes are stored. A Tree is safe for concurrent use.
type Tree struct {
	s    *shared
	root []byte // nil: empty tree
}

// New returns the tree whose root node is stored under root; nil or empty
// root is the empty tree. It reads nothing: a missing or malformed root is
// reported by the first operation that reads it.
func New(cfg Config, root []byte) (*Tree, error) {
	if cfg.Store == nil {
		return nil, errors.New("btree: config without a store")
	}
	s := &shared{
		store:     cfg.Store,
		target:    cfg.TargetNodeSize,
		max:       cfg.MaxNodeSize,
		summarize: cfg.Summarize,
		parallel:  cfg.Parallel,
	}
	if s.target == 0 {
		s.target = DefaultTargetNodeSize
	}
	if s.max == 0 {
		s.max = 2 * s.target
	}
	if s.parallel == 0 {
		s.parallel = DefaultParallel
	}
	switch {
	case s.target < MinTargetNodeSize:
		return nil, fmt.Errorf("btree: target node size %d below %d", s.target, MinTargetNodeSize)
	case s.max < s.target || s.max > MaxNodeBytes:
		return nil, fmt.Errorf("btree: max node size %d outside [%d, %d]", s.max, s.target, MaxNodeBytes)
	case s.parallel < 1:
		return nil, fmt.Errorf("btree: parallel %d", s.parallel)
	}
	if s.summarize == nil {
		s.summarize = func(key, value []byte) Summary { return Summary{} }
	}
	cacheNodes := cfg.CacheNodes
	if cacheNodes == 0 {
		cacheNodes = DefaultCacheNodes
	}
	s.cache = newNodeCache(cacheNodes)
	return (&Tree{s: s}).WithRoot(root)
}

// WithRoot returns the tree whose root node is stored under root (nil or
// empty: the empty tree), with t's configuration and sharing t's cache. It
// is how an older or newer version of the same tree is opened.
func (t *Tree) WithRoot(root []byte) (*Tree, error) {
	if len(root) > MaxRef {
		return nil, fmt.Errorf("btree: root reference of %d bytes exceeds %d", len(root), MaxRef)
	}
	if len(root) == 0 {
		return &Tree{s: t.s}, nil
	}
	return &Tree{s: t.s, root: bytes.Clone(root)}, nil
}

// Root returns the reference of the root node, nil for the empty tree.
func (t *Tree) Root() []byte { return bytes.Clone(t.root) }

// load returns the node stored under ref, which must be at level (any
// level if level < 0).
func (t *Tree) load(ctx context.Context, ref []byte, level int) (*node, error) {
	n := t.s.cache.get(ref)
	if n == nil {
		data, err := t.s.store.Get(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("btree: reading node %s: %w", refName(ref), err)
		}
		if n, err = decodeNode(data); err != nil {
			return nil, fmt.Errorf("btree: node %s: %w", refName(ref), err)
		}
		t.s.cache.add(ref, n)
	}
	if level >= 0 && n.level != level {
		return nil, fmt.Errorf("btree: node %s: %w: level %d where %d belongs", refName(ref), ErrFormat, n.level, level)
	}
	return n, nil
}

// refName names a node in messages by a hash of its reference: a Store's
// references may hold secrets (the backend's hold the node's data key),
// and messages end up in logs.
func refName(ref []byte) string {
	h := sha256.Sum256(ref)
	return hex.EncodeToString(h[:6])
}

// loadAll loads the nodes under refs, all at level, at most Parallel at a
// time.
func (t *Tree) loadAll(ctx context.Context, refs [][]byte, level int) ([]*node, error) {
	nodes := make([]*node, len(refs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(t.s.parallel)
	for i, ref := range refs {
		if n := t.s.cache.get(ref); n != nil && n.level == level {
			nodes[i] = n
			continue
		}
		g.Go(func() error {
			n, err := t.load(gctx, ref, level)
			nodes[i] = n
			return err
		})
	}
	return nodes, g.Wait()
}

// Get returns the value stored under key. The value shares memory with the
// tree's cached nodes: the caller must not modify it.
func (t *Tree) Get(ctx context.Context, key []byte) (value []byte, ok bool, err error) {
	if t.root == nil {
		return nil, false, nil
	}
	n, err := t.load(ctx, t.root, -1)
	if err != nil {
		return nil, false, err
	}
	for n.level > 0 {
		i := n.upper(key) - 1
		if i < 0 {
			return nil, false, nil
		}
		if n, err = t.load(ctx, n.items[i].val, n.level-1); err != nil {
			return nil, false, err
		}
	}
	i := n.lower(key)
	if i < len(n.items) && bytes.Equal(n.items[i].key, key) {
		return n.items[i].val, true, nil
	}
	return nil, false, nil
}

// childRange returns the indices [lo, hi) of the children of internal node
// n that may hold keys in [start, end) (nil end: no bound).
func childRange(n *node, start, end []byte) (lo, hi int) {
	lo = max(n.upper(start)-1, 0)
	hi = len(n.items)
	if end != nil {
		hi = n.lower(end)
	}
	return lo, max(hi, lo)
}

// Ascend calls fn for every item with start ≤ key < end (nil end: no upper
// bound) in ascending order of keys, and stops at the first error fn
// returns, which Ascend returns. key and value share memory with the
// tree's cached nodes: fn must not modify them (it may keep them).
//
// Ascend reads up to Parallel leaves ahead of fn, so a scan costs about one
// round trip to the Store per Parallel leaves, plus one per internal node.
func (t *Tree) Ascend(ctx context.Context, start, end []byte, fn func(key, value []byte) error) error {
	if t.root == nil || (end != nil && bytes.Compare(start, end) >= 0) {
		return nil
	}
	root, err := t.load(ctx, t.root, -1)
	if err != nil {
		return err
	}
	if root.level == 0 {
		return ascendLeaf(root, start, end, fn)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type future struct {
		done chan struct{}
		n    *node
		err  error
	}
	ahead := make(chan *future, t.s.parallel)
	sem := make(chan struct{}, t.s.parallel)
	var g errgroup.Group
	g.Go(func() error {
		defer close(ahead)
		var walk func(n *node) error
		walk = func(n *node) error {
			lo, hi := childRange(n, start, end)
			for _, it := range n.items[lo:hi] {
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					return ctx.Err()
				}
				if n.level > 1 {
					c, err := t.load(ctx, it.val, n.level-1)
					<-sem
					if err != nil {
						return err
					}
					if err := walk(c); err != nil {
						return err
					}
					continue
				}
				f := &future{done: make(chan struct{})}
				g.Go(func() error {
					defer func() { <-sem }()
					f.n, f.err = t.load(ctx, it.val, 0)
					close(f.done)
					return nil
				})
				select {
				case ahead <- f:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}
		return walk(root)
	})
	for f := range ahead {
		if err != nil {
			continue // drain what the walk already queued
		}
		<-f.done
		if err = f.err; err == nil {
			err = ascendLeaf(f.n, start, end, fn)
		}
		if err != nil {
			cancel()
		}
	}
	if werr := g.Wait(); err == nil {
		err = werr
	}
	return err
}

func ascendLeaf(n *node, start, end []byte, fn func(key, value []byte) error) error {
	for _, it := range n.items[n.lower(start):] {
		if end != nil && bytes.Compare(it.key, end) >= 0 {
			return nil
		}
		if err := fn(it.key, it.val); err != nil {
			return err
		}
	}
	return nil
}

// Summary returns the sum of the summaries of every item.
func (t *Tree) Summary(ctx context.Context) (Summary, error) {
	if t.root == nil {
		return Summary{}, nil
	}
	n, err := t.load(ctx, t.root, -1)
	if err != nil {
		return Summary{}, err
	}
	return t.s.sum(n.items, n.level), nil
}

// sum returns the summary of a node holding items at level.
func (s *shared) sum(items []item, level int) Summary {
	var sum Summary
	for i := range items {
		if level == 0 {
			sum = sum.Add(s.summarize(items[i].key, items[i].val))
		} else {
			sum = sum.Add(items[i].sum)
		}
	}
	return sum
}

// SummaryRange returns the sum of the summaries of the items with
// start ≤ key < end (nil end: no upper bound). It reads at most two nodes
// per level: subtrees wholly inside the range count by their stored summary.
func (t *Tree) SummaryRange(ctx context.Context, start, end []byte) (Summary, error) {
	if t.root == nil || (end != nil && bytes.Compare(start, end) >= 0) {
		return Summary{}, nil
	}
	n, err := t.load(ctx, t.root, -1)
	if err != nil {
		return Summary{}, err
	}
	return t.sumRange(ctx, n, start, end)
}

func (t *Tree) sumRange(ctx context.Context, n *node, start, end []byte) (Summary, error) {
	var sum Summary
	if n.level == 0 {
		err := ascendLeaf(n, start, end, func(k, v []byte) error {
			sum = sum.Add(t.s.summarize(k, v))
			return nil
		})
		return sum, err
	}
	lo, hi := childRange(n, start, end)
	for i := lo; i < hi; i++ {
		it := &n.items[i]
		// Child i holds keys in [key i, key i+1).
		inside := bytes.Compare(start, it.key) <= 0 &&
			(end == nil || (i+1 < len(n.items) && bytes.Compare(n.items[i+1].key, end) <= 0))
		if inside {
			sum = sum.Add(it.sum)
			continue
		}
		c, err := t.load(ctx, it.val, n.level-1)
		if err != nil {
			return Summary{}, err
		}
		s, err := t.sumRange(ctx, c, start, end)
		if err != nil {
			return Summary{}, err
		}
		sum = sum.Add(s)
	}
	return sum, nil
}

// Walk calls fn for the reference of every node of the tree, with the
// node's level, parents before children (level by level, from the root
// down), and stops at the first error fn returns, which Walk returns. It
// reads every internal node, up to Parallel at a time, but no leaf. ref
// shares memory with the tree's cached nodes: fn must not modify it.
func (t *Tree) Walk(ctx context.Context, fn func(ref []byte, level int) error) error {
	if t.root == nil {
		return nil
	}
	root, err := t.load(ctx, t.root, -1)
	if err != nil {
		return err
	}
	refs, level := [][]byte{t.root}, root.level
	for {
		for _, ref := range refs {
			if err := fn(ref, level); err != nil {
				return err
			}
		}
		if level == 0 {
			return nil
		}
		nodes, err := t.loadAll(ctx, refs, level)
		if err != nil {
			return err
		}
		var next [][]byte
		for _, n := range nodes {
			for _, it := range n.items {
				next = append(next, it.val)
			}
		}
		refs, level = next, level-1
	}
}
