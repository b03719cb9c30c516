package btree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"golang.org/x/sync/errgroup"
)

// Mutation is one change to a tree: Key set to Value, or Key deleted.
type Mutation struct {
	Key, Value []byte
	Delete     bool
}

// Result says which nodes a change stored and which it left behind.
type Result struct {
	// Written are the references of the nodes reachable from the new root
	// but not from the old one: what the change stored. If Apply fails,
	// they are the nodes stored before the failure, which no tree refers to.
	Written [][]byte
	// Replaced are the references of the nodes reachable from the old root
	// but not from the new one: candidates for cleanup once no reader
	// needs the old tree.
	Replaced [][]byte
}

var (
	// ErrUnsorted is wrapped by the error Apply returns for mutations not
	// sorted strictly ascending by key.
	ErrUnsorted = errors.New("btree: mutations not sorted by key")
	// ErrTooLarge is wrapped by the error Apply returns for a key over
	// MaxKey or a value over MaxValue.
	ErrTooLarge = errors.New("btree: key or value too large")
)

// Apply returns the tree with muts applied, and which nodes that stored and
// replaced. t itself is unchanged. muts must be sorted strictly ascending by
// key; deleting an absent key, or setting a key to the value it has, changes
// nothing. Every mutation is checked before anything is read or stored.
//
// Apply reads the nodes on the paths from the root to the mutated keys
// level by level, each level's nodes in parallel, and rewrites just those,
// plus a neighbour where a node left too small is merged into it, plus a
// new root where the root splits. A change that leaves the tree as it was
// stores nothing and returns t.
//
// muts must not be modified during Apply; the returned tree does not refer
// to them.
func (t *Tree) Apply(ctx context.Context, muts []Mutation) (*Tree, Result, error) {
	for i := range muts {
		m := &muts[i]
		if len(m.Key) > MaxKey {
			return nil, Result{}, fmt.Errorf("btree: mutation %d: key of %d bytes exceeds %d: %w", i, len(m.Key), MaxKey, ErrTooLarge)
		}
		if !m.Delete && len(m.Value) > MaxValue {
			return nil, Result{}, fmt.Errorf("btree: mutation %d: value of %d bytes exceeds %d: %w", i, len(m.Value), MaxValue, ErrTooLarge)
		}
		if i > 0 && bytes.Compare(muts[i-1].Key, m.Key) >= 0 {
			return nil, Result{}, fmt.Errorf("btree: mutation %d: key not after the key of mutation %d: %w", i, i-1, ErrUnsorted)
		}
	}
	if len(muts) == 0 {
		return t, Result{}, nil
	}
	a := &applier{
		t:       t,
		s:       t.s,
		loaded:  make(map[string]*node),
		dropped: make(map[string][]byte),
		written: make(map[string][]byte),
	}
	root, err := a.apply(ctx, muts)
	res := a.result()
	if err != nil {
		return nil, Result{Written: res.Written}, err
	}
	if a.unchanged {
		return t, Result{}, nil
	}
	return &Tree{s: t.s, root: root}, res, nil
}

// task is a node on the path to some mutated key.
type task struct {
	ref  []byte // nil: the node above the root, or the root of an empty tree
	n    *node
	up   *task // the parent
	idx  int   // index of the parent's item that refers to this node
	muts []Mutation
	kids []*task // children that mutations go to, in order

	changed bool
	out     []item // items after the change, if changed; none: node removed
}

// entry is one child of a changed node while the change is worked out:
// either an unchanged child, known by the parent's item for it, or new
// items for a node yet to be stored.
type entry struct {
	it    item
	items []item
	dirty bool
	size  int // encoded size, if dirty
}

type applier struct {
	t         *Tree
	s         *shared
	loaded    map[string]*node  // nodes of the old tree read by this Apply
	dropped   map[string][]byte // nodes of the old tree not in the new one
	written   map[string][]byte // nodes stored
	unchanged bool
}

func (a *applier) drop(ref []byte) {
	if ref != nil {
		a.dropped[string(ref)] = ref
	}
}

// node returns the old node stored under ref.
func (a *applier) node(ctx context.Context, ref []byte, level int) (*node, error) {
	if n := a.loaded[string(ref)]; n != nil {
		return n, nil
	}
	n, err := a.t.load(ctx, ref, level)
	if err != nil {
		return nil, err
	}
	a.loaded[string(ref)] = n
	return n, nil
}

func (a *applier) apply(ctx context.Context, muts []Mutation) ([]byte, error) {
	root := &task{ref: a.t.root, muts: muts, n: &node{level: 0}}
	if root.ref != nil {
		n, err := a.node(ctx, root.ref, -1)
		if err != nil {
			return nil, err
		}
		root.n = n
	}
	// A node above the root gives the root a parent like any other node.
	top := &task{
		n:    &node{level: root.n.level + 1, items: []item{{val: root.ref}}},
		muts: muts,
		kids: []*task{root},
	}
	root.up = top

	// Down: the nodes on the paths to the mutated keys, level by level.
	// complete[k] says every node of the old tree at the level of
	// levels[k] is among them.
	levels := [][]*task{{top}, {root}}
	complete := []bool{true, true}
	for cur := levels[len(levels)-1]; cur[0].n.level > 0; cur = levels[len(levels)-1] {
		var next []*task
		var refs [][]byte
		all := complete[len(complete)-1]
		for _, p := range cur {
			for ms := p.muts; len(ms) > 0; {
				i := max(p.n.upper(ms[0].Key)-1, 0)
				j := len(ms)
				if i+1 < len(p.n.items) {
					bound := p.n.items[i+1].key
					j = sort.Search(len(ms), func(k int) bool { return bytes.Compare(ms[k].Key, bound) >= 0 })
				}
				kid := &task{ref: p.n.items[i].val, up: p, idx: i, muts: ms[:j]}
				p.kids = append(p.kids, kid)
				next = append(next, kid)
				refs = append(refs, kid.ref)
				ms = ms[j:]
			}
			all = all && len(p.kids) == len(p.n.items)
		}
		nodes, err := a.t.loadAll(ctx, refs, cur[0].n.level-1)
		if err != nil {
			return nil, err
		}
		for i, kid := range next {
			kid.n = nodes[i]
			a.loaded[string(kid.ref)] = kid.n
		}
		levels = append(levels, next)
		complete = append(complete, all)
	}

	// The leaves.
	changed := false
	for _, leaf := range levels[len(levels)-1] {
		leaf.out, leaf.changed = mergeLeaf(leaf.n.items, leaf.muts)
		changed = changed || leaf.changed
	}
	if !changed {
		a.unchanged = true
		return a.t.root, nil
	}

	// Up: each level's new children, stored before their parents.
	for k := len(levels) - 2; k >= 0; k-- {
		root, done, err := a.level(ctx, levels, k, complete[k])
		if err != nil || done {
			return root, err
		}
	}
	return a.grow(ctx, top.out, top.n.level)
}

// mergeLeaf returns the items of a leaf after muts, and whether that
// differs from items.
func mergeLeaf(items []item, muts []Mutation) ([]item, bool) {
	out := make([]item, 0, len(items)+len(muts))
	changed := false
	i := 0
	for _, m := range muts {
		for i < len(items) && bytes.Compare(items[i].key, m.Key) < 0 {
			out = append(out, items[i])
			i++
		}
		found := i < len(items) && bytes.Equal(items[i].key, m.Key)
		switch {
		case m.Delete:
			changed = changed || found
		case found && bytes.Equal(items[i].val, m.Value):
			out = append(out, items[i])
		default:
			out = append(out, item{key: m.Key, val: m.Value})
			changed = true
		}
		if found {
			i++
		}
	}
	return append(out, items[i:]...), changed
}

// level works out the new children of the nodes in levels[k], given their
// children's new items, and stores them. If every node of the old tree at
// that level is in levels[k] (complete) and there is at most one child
// left, the tree's new root is found: level returns it and done.
func (a *applier) level(ctx context.Context, levels [][]*task, k int, complete bool) (root []byte, done bool, err error) {
	parents := levels[k]
	level := parents[0].n.level - 1 // of the children
	ents := make([][]entry, len(parents))
	for pi, p := range parents {
		for _, kid := range p.kids {
			p.changed = p.changed || kid.changed
		}
		if !p.changed {
			continue
		}
		es := make([]entry, 0, len(p.n.items)+1)
		kids := p.kids
		for i, it := range p.n.items {
			if len(kids) > 0 && kids[0].idx == i {
				kid := kids[0]
				kids = kids[1:]
				if kid.changed {
					a.drop(kid.ref)
					es = a.appendPieces(es, kid.out, level)
					continue
				}
			}
			es = append(es, entry{it: it})
		}
		ents[pi] = es
	}
	// Adjacent siblings that are rewritten anyway pool their children
	// in the last of them (which their parent splits again), so that a
	// small child can merge across the boundary: otherwise a change that
	// leaves each of them one child would leave chains of one-child nodes.
	for pi := 1; pi < len(parents); pi++ {
		p, q := parents[pi-1], parents[pi]
		if p.changed && q.changed && p.up == q.up && q.idx == p.idx+1 {
			ents[pi] = append(ents[pi-1], ents[pi]...)
			ents[pi-1] = nil
		}
	}

	if err := a.merge(ctx, ents, level); err != nil {
		return nil, false, err
	}

	count := 0
	for pi, p := range parents {
		if p.changed {
			count += len(ents[pi])
		} else {
			count += len(p.n.items)
		}
	}
	if complete && count <= 1 {
		root, err := a.collapse(ctx, parents, ents, level)
		if err != nil {
			return nil, false, err
		}
		for _, ps := range levels[:k+1] {
			for _, p := range ps {
				a.drop(p.ref)
			}
		}
		return root, true, nil
	}

	var lists [][]item
	for _, es := range ents {
		for _, e := range es {
			if e.dirty {
				lists = append(lists, e.items)
			}
		}
	}
	stored, err := a.put(ctx, level, lists)
	if err != nil {
		return nil, false, err
	}
	for pi, p := range parents {
		if !p.changed {
			continue
		}
		p.out = make([]item, len(ents[pi]))
		for i, e := range ents[pi] {
			if e.dirty {
				p.out[i], stored = stored[0], stored[1:]
			} else {
				p.out[i] = e.it
			}
		}
	}
	return nil, false, nil
}

// appendPieces appends to es the nodes that items at level make once split
// to size.
func (a *applier) appendPieces(es []entry, items []item, level int) []entry {
	if len(items) == 0 {
		return es
	}
	for _, p := range a.s.split(items, level) {
		es = append(es, entry{items: p, dirty: true, size: nodeSize(p, level)})
	}
	return es
}

// small reports whether e is a new node that should be merged into a
// neighbour: below a quarter of the target size, or an internal node of a
// single item.
func (a *applier) small(e *entry, level int) bool {
	return e.dirty && (e.size < a.s.target/4 || (level > 0 && len(e.items) < 2))
}

// merge merges each small new node among the children of a changed parent
// into an adjacent one, preferring a new one (which is written anyway),
// then an old one, merges adjacent new nodes that fit in one, and splits
// what grew too big.
func (a *applier) merge(ctx context.Context, ents [][]entry, level int) error {
	// Read the old neighbours that will likely be needed, all at once.
	var refs [][]byte
	seen := make(map[string]bool)
	for _, es := range ents {
		for i := range es {
			if !a.small(&es[i], level) || len(es) == 1 ||
				(i+1 < len(es) && es[i+1].dirty) || (i > 0 && es[i-1].dirty) {
				continue
			}
			j := i + 1
			if j == len(es) {
				j = i - 1
			}
			if ref := es[j].it.val; a.loaded[string(ref)] == nil && !seen[string(ref)] {
				seen[string(ref)] = true
				refs = append(refs, ref)
			}
		}
	}
	nodes, err := a.t.loadAll(ctx, refs, level)
	if err != nil {
		return err
	}
	for i, n := range nodes {
		a.loaded[string(refs[i])] = n
	}

	for pi, es := range ents {
		out := make([]entry, 0, len(es))
		for i := 0; i < len(es); i++ {
			cur := es[i]
			for {
				var left, right *entry
				if len(out) > 0 {
					left = &out[len(out)-1]
				}
				if i+1 < len(es) {
					right = &es[i+1]
				}
				side, merged, err := a.partner(ctx, left, &cur, right, level)
				if err != nil {
					return err
				}
				if side == 0 {
					break
				}
				if side > 0 {
					i++
				} else {
					out = out[:len(out)-1]
				}
				cur = entry{items: merged, dirty: true, size: nodeSize(merged, level)}
			}
			out = append(out, cur)
		}
		es, out = out, nil
		for _, e := range es {
			if e.dirty && (e.size > a.s.max || keyBytes(e.items) > MaxNodeKeys) {
				out = a.appendPieces(out, e.items, level)
			} else {
				out = append(out, e)
			}
		}
		ents[pi] = out
	}
	return nil
}

// partner returns which neighbour cur merges into, left (-1) or right
// (+1), and the merged items; 0 if none. A small node merges into a new
// neighbour, else into an old one; any new node merges into a new right
// neighbour if the two fit in one node.
func (a *applier) partner(ctx context.Context, left, cur, right *entry, level int) (int, []item, error) {
	if !cur.dirty {
		return 0, nil, nil
	}
	if !a.small(cur, level) {
		if right != nil && right.dirty && cur.size+right.size <= 2*a.s.target {
			m := concat(cur.items, right.items)
			if nodeSize(m, level) <= a.s.target && keyBytes(m) <= MaxNodeKeys {
				return +1, m, nil
			}
		}
		return 0, nil, nil
	}
	if right != nil && right.dirty {
		return +1, concat(cur.items, right.items), nil
	}
	if left != nil && left.dirty {
		return -1, concat(left.items, cur.items), nil
	}
	for _, side := range []int{+1, -1} {
		nb := right
		if side < 0 {
			nb = left
		}
		if nb == nil {
			continue
		}
		n, err := a.node(ctx, nb.it.val, level)
		if err != nil {
			return 0, nil, err
		}
		m := concat(cur.items, n.items)
		if side < 0 {
			m = concat(n.items, cur.items)
		}
		// Rewriting an old node only to split it the same way again (next
		// to a leaf holding one big value, say) would be waste; but an
		// internal node of one item merges whatever the size.
		if nodeSize(m, level) <= a.s.max || (level > 0 && len(cur.items) < 2) {
			a.drop(nb.it.val)
			return side, m, nil
		}
	}
	return 0, nil, nil
}

// concat returns the items of a followed by those of b, in a new slice.
func concat(a, b []item) []item {
	out := make([]item, 0, len(a)+len(b))
	return append(append(out, a...), b...)
}

func keyBytes(items []item) int {
	n := 0
	for i := range items {
		n += len(items[i].key)
	}
	return n
}

// collapse returns the root of a tree whose nodes at level are those in
// ents and the items of the unchanged parents, at most one: that one, or
// the first node below it with more than one item.
func (a *applier) collapse(ctx context.Context, parents []*task, ents [][]entry, level int) ([]byte, error) {
	var e *entry
	for pi, p := range parents {
		if !p.changed && len(p.n.items) == 1 {
			e = &entry{it: p.n.items[0]}
		} else if p.changed && len(ents[pi]) == 1 {
			e = &ents[pi][0]
		}
	}
	if e == nil {
		return nil, nil // every key deleted
	}
	root := e.it.val
	if e.dirty {
		if level > 0 && len(e.items) == 1 {
			// The single child is the root; this node need not be stored.
			root, level = e.items[0].val, level-1
		} else {
			stored, err := a.put(ctx, level, [][]item{e.items})
			if err != nil {
				return nil, err
			}
			return stored[0].val, nil
		}
	}
	// An old node of one item (which this package does not leave at the
	// top, but another writer might) is no root either.
	for level > 0 {
		if _, ok := a.written[string(root)]; ok {
			break
		}
		n, err := a.node(ctx, root, level)
		if err != nil {
			return nil, err
		}
		if len(n.items) > 1 {
			break
		}
		a.drop(root)
		root, level = n.items[0].val, level-1
	}
	return root, nil
}

// grow returns the root of a tree whose nodes at level-1 are referred to by
// items: a node holding them, or more levels where they do not fit in one.
func (a *applier) grow(ctx context.Context, items []item, level int) ([]byte, error) {
	for {
		if level > MaxLevel {
			return nil, fmt.Errorf("btree: tree would be more than %d levels deep", MaxLevel+1)
		}
		pieces := a.s.split(items, level)
		stored, err := a.put(ctx, level, pieces)
		if err != nil {
			return nil, err
		}
		if len(stored) == 1 {
			return stored[0].val, nil
		}
		items, level = stored, level+1
	}
}

// put stores nodes at level holding lists of items, up to Parallel at a
// time, and returns the items that refer to them.
func (a *applier) put(ctx context.Context, level int, lists [][]item) ([]item, error) {
	out := make([]item, len(lists))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.s.parallel)
	for i, items := range lists {
		g.Go(func() error {
			data, err := encodeNode(level, items)
			if err != nil {
				return fmt.Errorf("btree: encoding node: %w", err)
			}
			ref, err := a.s.store.Put(gctx, data)
			if err != nil {
				return fmt.Errorf("btree: storing node: %w", err)
			}
			if len(ref) == 0 || len(ref) > MaxRef {
				return fmt.Errorf("btree: store returned a reference of %d bytes", len(ref))
			}
			ref = bytes.Clone(ref)
			// Cache the node as decoded from what was stored, so that it
			// shares no memory with the caller's mutations.
			n, err := decodeNode(data)
			if err != nil {
				return fmt.Errorf("btree: node just encoded: %w", err)
			}
			a.s.cache.add(ref, n)
			out[i] = item{key: n.items[0].key, val: ref, sum: a.s.sum(n.items, level)}
			return nil
		})
	}
	err := g.Wait()
	for _, it := range out {
		if it.val != nil {
			a.written[string(it.val)] = it.val
		}
	}
	return out, err
}

// result returns the written and replaced nodes. A node stored with the
// same bytes (and so, in a content-addressed Store, the same reference) as
// one it replaces is neither.
func (a *applier) result() Result {
	var r Result
	for k, ref := range a.written {
		if _, ok := a.dropped[k]; !ok {
			r.Written = append(r.Written, ref)
		}
	}
	for k, ref := range a.dropped {
		if _, ok := a.written[k]; !ok {
			r.Replaced = append(r.Replaced, ref)
		}
	}
	slices.SortFunc(r.Written, bytes.Compare)
	slices.SortFunc(r.Replaced, bytes.Compare)
	return r
}

// split cuts the items of a node at level into nodes of about the target
// size (3/4 to all of it, save the last two) if the node is too big: over
// MaxNodeSize, or with keys over MaxNodeKeys. Every piece holds at least
// one item, two in an internal node; a piece is over the target size only
// if it holds no more than that.
func (s *shared) split(items []item, level int) [][]item {
	n := len(items)
	minItems := 1
	if level > 0 {
		minItems = 2
	}
	// pre[i] is the size of items[:i] encoded one after the other, and
	// keys[i] the length of their keys.
	pre := make([]int, n+1)
	keys := make([]int, n+1)
	var prev []byte
	for i := range items {
		pre[i+1] = pre[i] + itemSize(prev, &items[i], level)
		keys[i+1] = keys[i] + len(items[i].key)
		prev = items[i].key
	}
	// size returns the encoded size of a node of items[i:j].
	size := func(i, j int) int {
		return headerSize + uvarintLen(uint64(j-i)) + itemSize(nil, &items[i], level) + pre[j] - pre[i+1]
	}
	fits := func(i, j int) bool { return keys[j]-keys[i] <= MaxNodeKeys }
	if n < 2*minItems || (size(0, n) <= s.max && fits(0, n)) {
		return [][]item{items}
	}
	var cuts []int // where each piece after the first starts
	start := 0
	for i := 1; i < n; i++ {
		if i-start >= minItems && (size(start, i+1) > s.target || !fits(start, i+1)) {
			// Of the cuts that leave the piece at least 3/4 full, take the
			// one at the shortest key: the first key of the next piece is
			// written out in full there and again in the parent.
			c := i
			for j := i - 1; j-start >= minItems && size(start, j) >= s.target*3/4; j-- {
				if len(items[j].key) < len(items[c].key) {
					c = j
				}
			}
			cuts = append(cuts, c)
			start, i = c, c
		}
	}
	// A small last piece shares the items of the last two pieces evenly.
	if len(cuts) > 0 {
		c := cuts[len(cuts)-1]
		p := 0
		if len(cuts) > 1 {
			p = cuts[len(cuts)-2]
		}
		if n-c < minItems || size(c, n) < s.target/2 {
			best, bestSize := -1, 0
			for x := p + minItems; x <= n-minItems; x++ {
				if !fits(p, x) || !fits(x, n) {
					continue
				}
				if m := max(size(p, x), size(x, n)); best < 0 || m < bestSize {
					best, bestSize = x, m
				}
			}
			if best < 0 {
				cuts = cuts[:len(cuts)-1]
			} else {
				cuts[len(cuts)-1] = best
			}
		}
	}
	pieces := make([][]item, 0, len(cuts)+1)
	start = 0
	for _, c := range append(cuts, n) {
		pieces = append(pieces, items[start:c:c])
		start = c
	}
	return pieces
}
