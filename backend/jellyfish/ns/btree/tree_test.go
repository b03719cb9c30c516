package btree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// summarize counts items, key bytes and value bytes, and sums a hash of
// each item, so that a summary notices a missing, extra or changed item.
func summarize(key, value []byte) Summary {
	h := fnv.New64a()
	h.Write(key)
	h.Write([]byte{0})
	h.Write(value)
	return Summary{1, uint64(len(key)), uint64(len(value)), h.Sum64()}
}

func newTestTree(t testing.TB, cfg Config) (*Tree, *MemStore) {
	t.Helper()
	st := &MemStore{}
	if cfg.Store == nil {
		cfg.Store = st
	}
	if cfg.Summarize == nil {
		cfg.Summarize = summarize
	}
	tr, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr, st
}

// smallConfig makes deep trees of small nodes out of few keys.
func smallConfig() Config {
	return Config{TargetNodeSize: 512, CacheNodes: 64, Parallel: 4}
}

// model is the expected content of a tree.
type model map[string]string

func (m model) sorted() []string { return slices.Sorted(maps.Keys(m)) }

// ascendAll returns the items of tr in [start, end) as Ascend gives them.
func ascendAll(t testing.TB, tr *Tree, start, end []byte) (keys, values []string) {
	t.Helper()
	var last []byte
	err := tr.Ascend(context.Background(), start, end, func(k, v []byte) error {
		if last != nil && bytes.Compare(last, k) >= 0 {
			return fmt.Errorf("key %q after %q", k, last)
		}
		last = k
		keys = append(keys, string(k))
		values = append(values, string(v))
		return nil
	})
	if err != nil {
		t.Fatalf("Ascend(%q, %q): %v", start, end, err)
	}
	return keys, values
}

// checkContent compares tr with m: a full scan, sub-range scans, Gets of
// keys in m and of keys not in it, and summaries.
func checkContent(t testing.TB, rng *rand.Rand, tr *Tree, m model, sorted, absent []string) {
	t.Helper()
	ctx := context.Background()
	keys, values := ascendAll(t, tr, nil, nil)
	if len(keys) != len(sorted) {
		t.Fatalf("Ascend gave %d items, want %d", len(keys), len(sorted))
	}
	for i, k := range keys {
		if k != sorted[i] || values[i] != m[k] {
			t.Fatalf("Ascend item %d = %q %q, want %q %q", i, k, values[i], sorted[i], m[sorted[i]])
		}
	}
	// sums[i] is the summary of sorted[:i].
	sums := make([]Summary, len(sorted)+1)
	for i, k := range sorted {
		sums[i+1] = sums[i].Add(summarize([]byte(k), []byte(m[k])))
	}
	for i := range 40 {
		// Scans of up to a few leaves' worth of items, some to the end;
		// summaries of ranges of any width.
		start := randomBound(rng, sorted)
		lo, _ := slices.BinarySearch(sorted, start)
		end, bounded := "", rng.IntN(10) > 0
		if bounded && i%2 == 0 {
			end = randomBound(rng, sorted)
		} else if bounded {
			end = randomBound(rng, sorted[lo:min(lo+300, len(sorted))])
		}
		var endB []byte
		hi := len(sorted)
		if bounded {
			endB = []byte(end)
			hi, _ = slices.BinarySearch(sorted, end)
		}
		hi = max(hi, lo)
		if i%2 == 1 || hi-lo < 300 {
			got, _ := ascendAll(t, tr, []byte(start), endB)
			if want := sorted[lo:hi]; !slices.Equal(got, want) {
				t.Fatalf("Ascend(%q, %q, bounded %v) gave %d items, want %d", start, end, bounded, len(got), len(want))
			}
		}
		s, err := tr.SummaryRange(ctx, []byte(start), endB)
		if err != nil {
			t.Fatal(err)
		}
		var want Summary
		for j := range want {
			want[j] = sums[hi][j] - sums[lo][j]
		}
		if s != want {
			t.Fatalf("SummaryRange(%q, %q, bounded %v) = %v, want %v", start, end, bounded, s, want)
		}
	}
	for i := 0; i < 500 && len(sorted) > 0; i++ {
		k := sorted[rng.IntN(len(sorted))]
		v, ok, err := tr.Get(ctx, []byte(k))
		if err != nil || !ok || string(v) != m[k] {
			t.Fatalf("Get(%q) = %q %v %v, want %q", k, v, ok, err, m[k])
		}
	}
	for _, k := range absent {
		if _, in := m[k]; in {
			continue
		}
		if v, ok, err := tr.Get(ctx, []byte(k)); err != nil || ok {
			t.Fatalf("Get(%q) of an absent key = %q %v %v", k, v, ok, err)
		}
	}
	s, err := tr.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w := sums[len(sorted)]; s != w {
		t.Fatalf("Summary = %v, want %v", s, w)
	}
}

// randomBound returns a key in sorted, or between two of them.
func randomBound(rng *rand.Rand, sorted []string) string {
	if len(sorted) == 0 || rng.IntN(10) == 0 {
		return fmt.Sprintf("%c", 'a'+rng.IntN(26))
	}
	k := sorted[rng.IntN(len(sorted))]
	if rng.IntN(2) == 0 {
		k += "\x00"
	}
	return k
}

// treeStats describes a tree checked by checkInvariants.
type treeStats struct {
	depth  int
	nodes  []int // per level
	items  int
	levels int
}

// checkInvariants reads every node of tr from the store (not the cache)
// and checks the structure rules: decodable nodes, keys within their
// child's bounds and equal to its smallest key, stored summaries equal to
// the children's, uniform depth, sizes within MaxNodeSize unless the node
// cannot be split, and a root that is not an internal node of one item.
func checkInvariants(t testing.TB, tr *Tree) treeStats {
	t.Helper()
	var st treeStats
	if tr.root == nil {
		return st
	}
	ctx := context.Background()
	var visit func(ref []byte, level int, lo, hi []byte) (Summary, []byte)
	visit = func(ref []byte, level int, lo, hi []byte) (Summary, []byte) {
		data, err := tr.s.store.Get(ctx, ref)
		if err != nil {
			t.Fatalf("node %x: %v", ref, err)
		}
		n, err := decodeNode(data)
		if err != nil {
			t.Fatalf("node %x: %v", ref, err)
		}
		if level < 0 {
			level = n.level
			st.depth = level + 1
			st.nodes = make([]int, st.depth)
			if level > 0 && len(n.items) < 2 {
				t.Fatalf("root is an internal node of %d items", len(n.items))
			}
		}
		if n.level != level {
			t.Fatalf("node %x at level %d says %d", ref, level, n.level)
		}
		st.nodes[level]++
		unsplittable := len(n.items) == 1 || (level > 0 && len(n.items) <= 3)
		if n.size > tr.s.max && !unsplittable {
			t.Fatalf("node %x of %d items, %d bytes, over %d", ref, len(n.items), n.size, tr.s.max)
		}
		if lo != nil && bytes.Compare(n.items[0].key, lo) < 0 {
			t.Fatalf("node %x: key %q below bound %q", ref, n.items[0].key, lo)
		}
		if last := n.items[len(n.items)-1].key; hi != nil && bytes.Compare(last, hi) >= 0 {
			t.Fatalf("node %x: key %q not below bound %q", ref, last, hi)
		}
		if level == 0 {
			st.items += len(n.items)
			return tr.s.sum(n.items, 0), n.items[0].key
		}
		var sum Summary
		for i, it := range n.items {
			var next []byte
			if i+1 < len(n.items) {
				next = n.items[i+1].key
			} else {
				next = hi
			}
			s, first := visit(it.val, level-1, it.key, next)
			if !bytes.Equal(first, it.key) {
				t.Fatalf("node %x item %d: key %q, child's smallest %q", ref, i, it.key, first)
			}
			if s != it.sum {
				t.Fatalf("node %x item %d: summary %v, child's %v", ref, i, it.sum, s)
			}
			sum = sum.Add(s)
		}
		return sum, n.items[0].key
	}
	visit(tr.root, -1, nil, nil)
	st.levels = len(st.nodes)
	return st
}

// walkSet returns the references Walk visits, checking parents come first.
func walkSet(t testing.TB, tr *Tree) map[string]bool {
	t.Helper()
	set := make(map[string]bool)
	last := MaxLevel + 1
	err := tr.Walk(context.Background(), func(ref []byte, level int) error {
		if level > last {
			return fmt.Errorf("level %d after level %d", level, last)
		}
		last = level
		if set[string(ref)] {
			return fmt.Errorf("node %x visited twice", ref)
		}
		set[string(ref)] = true
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return set
}

// checkResult checks that res is the set difference of the nodes of the
// trees before and after.
func checkResult(t testing.TB, before, after *Tree, res Result) {
	t.Helper()
	old, cur := walkSet(t, before), walkSet(t, after)
	compare := func(what string, got [][]byte, in, notIn map[string]bool) {
		want := make(map[string]bool)
		for ref := range in {
			if !notIn[ref] {
				want[ref] = true
			}
		}
		gotSet := make(map[string]bool)
		for _, ref := range got {
			gotSet[string(ref)] = true
		}
		if len(gotSet) != len(got) || !maps.Equal(gotSet, want) {
			t.Fatalf("%s: %d references (%d distinct), want %d", what, len(got), len(gotSet), len(want))
		}
	}
	compare("Written", res.Written, cur, old)
	compare("Replaced", res.Replaced, old, cur)
}

func mustApply(t testing.TB, tr *Tree, muts []Mutation) (*Tree, Result) {
	t.Helper()
	next, res, err := tr.Apply(context.Background(), muts)
	if err != nil {
		t.Fatalf("Apply of %d mutations: %v", len(muts), err)
	}
	return next, res
}

// randomKey returns keys that share prefixes the way paths do, now and
// then long ones.
func randomKey(rng *rand.Rand) string {
	k := fmt.Sprintf("home/u%d/d%02d/s%03d/f%05d", rng.IntN(3), rng.IntN(30), rng.IntN(200), rng.IntN(100000))
	switch rng.IntN(500) {
	case 0:
		k += strings.Repeat("x", 50+rng.IntN(200))
	case 1, 2, 3, 4, 5:
		k = k[:rng.IntN(len(k))]
	}
	return k
}

func randomValue(rng *rand.Rand) string {
	n := rng.IntN(40)
	if rng.IntN(200) == 0 {
		n = 1000 + rng.IntN(3000) // about the target size or over: a leaf of its own
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	return string(b)
}

// TestModel applies random batches to a tree and to a map and compares
// them after every batch, along with the tree's structure, the exactness
// of Written and Replaced, and the previous version of the tree.
func TestModel(t *testing.T) {
	batches := 30
	if testing.Short() {
		batches = 15
	}
	runModel(t, smallConfig(), batches, 100000, 5)
}

// TestModelLongRefs runs the model with references longer than the target
// node size, so that internal nodes hold two or three items each, over
// MaxNodeSize.
func TestModelLongRefs(t *testing.T) {
	cfg := smallConfig()
	cfg.TargetNodeSize = MinTargetNodeSize
	cfg.Store = &longRefStore{}
	runModel(t, cfg, 12, 5000, 5)
}

// longRefStore pads MemStore's references to 300 bytes.
type longRefStore struct{ MemStore }

const longRef = 300

func (s *longRefStore) Put(ctx context.Context, node []byte) ([]byte, error) {
	ref, err := s.MemStore.Put(ctx, node)
	return append(ref, bytes.Repeat(ref[:1], longRef-len(ref))...), err
}

func (s *longRefStore) Get(ctx context.Context, ref []byte) ([]byte, error) {
	if len(ref) != longRef {
		return nil, fmt.Errorf("reference of %d bytes", len(ref))
	}
	return s.MemStore.Get(ctx, ref[:sha256Size])
}

const sha256Size = 32

func runModel(t *testing.T, cfg Config, batches, maxKeys, wantDepth int) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	tr, _ := newTestTree(t, cfg)

	m := model{}
	var sorted []string // m's keys
	maxDepth := 0
	var prevSum Summary
	for b := 0; b < batches; b++ {
		var muts map[string]Mutation
		switch {
		case b == batches-8: // delete nearly everything
			muts = randomBatch(rng, m, 0, 0, 0.995)
		case b == batches-4: // delete everything
			muts = randomBatch(rng, m, 0, 0, 1)
		case len(m) < maxKeys && b < batches-8:
			muts = randomBatch(rng, m, 1+rng.IntN(maxKeys/8), rng.Float64()*0.3, rng.Float64()*0.1)
		default:
			muts = randomBatch(rng, m, rng.IntN(maxKeys/30), rng.Float64()*0.5, rng.Float64()*0.5)
		}
		sortedMuts := slices.SortedFunc(maps.Values(muts), func(a, b Mutation) int { return bytes.Compare(a.Key, b.Key) })
		prevSorted := sorted
		for _, mu := range sortedMuts {
			if mu.Delete {
				delete(m, string(mu.Key))
			} else {
				m[string(mu.Key)] = string(mu.Value)
			}
		}
		next, res := mustApply(t, tr, sortedMuts)
		st := checkInvariants(t, next)
		maxDepth = max(maxDepth, st.depth)
		if st.items != len(m) {
			t.Fatalf("batch %d: tree holds %d items, model %d", b, st.items, len(m))
		}
		if len(m) == 0 && next.Root() != nil {
			t.Fatalf("batch %d: empty tree has root %x", b, next.Root())
		}
		checkResult(t, tr, next, res)
		var absent []string
		for range 200 {
			absent = append(absent, randomKey(rng))
		}
		for k, mu := range muts {
			if mu.Delete && len(absent) < 1000 {
				absent = append(absent, k)
			}
		}
		sorted = m.sorted()
		checkContent(t, rng, next, m, sorted, absent)
		// The tree before the batch is a snapshot of the model before it
		// (the keys; their values were checked then, and Summary checks
		// them again).
		if got, _ := ascendAll(t, tr, nil, nil); !slices.Equal(got, prevSorted) {
			t.Fatalf("batch %d: old tree gives %d keys, had %d", b, len(got), len(prevSorted))
		}
		if s, err := tr.Summary(context.Background()); err != nil || s != prevSum {
			t.Fatalf("batch %d: old tree's summary %v (%v), was %v", b, s, err, prevSum)
		}
		prevSum, _ = next.Summary(context.Background())
		t.Logf("batch %2d: %5d mutations, %6d keys, depth %d, nodes per level %v, wrote %d, replaced %d",
			b, len(muts), len(m), st.depth, st.nodes, len(res.Written), len(res.Replaced))
		tr = next
	}
	if maxDepth < wantDepth {
		t.Errorf("deepest tree had %d levels; the test means to exercise deeper ones", maxDepth)
	}
}

// randomBatch returns mutations keyed by key: about n inserts of new
// keys, updates of a fraction upd and deletes of a fraction del of the keys
// in m, and a few deletes of absent keys.
func randomBatch(rng *rand.Rand, m model, n int, upd, del float64) map[string]Mutation {
	muts := make(map[string]Mutation)
	for range n {
		k := randomKey(rng)
		muts[k] = Mutation{Key: []byte(k), Value: []byte(randomValue(rng))}
	}
	for k := range m {
		switch r := rng.Float64(); {
		case r < del:
			muts[k] = Mutation{Key: []byte(k), Delete: true, Value: []byte("ignored")}
		case r < del+upd:
			muts[k] = Mutation{Key: []byte(k), Value: []byte(randomValue(rng))}
		}
	}
	for range 10 {
		k := randomKey(rng) + "\xff"
		if _, ok := m[k]; !ok {
			muts[k] = Mutation{Key: []byte(k), Delete: true}
		}
	}
	return muts
}

func TestEmptyTree(t *testing.T) {
	ctx := context.Background()
	tr, st := newTestTree(t, Config{})
	if tr.Root() != nil {
		t.Fatalf("root %x", tr.Root())
	}
	if _, ok, err := tr.Get(ctx, []byte("a")); ok || err != nil {
		t.Fatalf("Get: %v %v", ok, err)
	}
	if keys, _ := ascendAll(t, tr, nil, nil); len(keys) != 0 {
		t.Fatalf("Ascend: %q", keys)
	}
	if s, err := tr.Summary(ctx); s != (Summary{}) || err != nil {
		t.Fatalf("Summary: %v %v", s, err)
	}
	if s, err := tr.SummaryRange(ctx, nil, nil); s != (Summary{}) || err != nil {
		t.Fatalf("SummaryRange: %v %v", s, err)
	}
	if len(walkSet(t, tr)) != 0 {
		t.Fatal("Walk visited nodes")
	}
	next, res := mustApply(t, tr, []Mutation{{Key: []byte("a"), Delete: true}, {Key: []byte("b"), Delete: true}})
	if next.Root() != nil || len(res.Written)+len(res.Replaced) != 0 {
		t.Fatalf("deleting from an empty tree gave root %x, %v", next.Root(), res)
	}
	next, res = mustApply(t, tr, nil)
	if next != tr || len(res.Written) != 0 {
		t.Fatal("no mutations changed the tree")
	}
	if s := st.Stats(); s.Puts+s.Gets != 0 {
		t.Fatalf("store used: %+v", s)
	}
	// The empty key is a key like any other.
	next, _ = mustApply(t, tr, []Mutation{{Key: nil, Value: []byte("v")}})
	if v, ok, err := next.Get(ctx, []byte{}); !ok || err != nil || string(v) != "v" {
		t.Fatalf("Get of the empty key: %q %v %v", v, ok, err)
	}
}

// fill returns a tree of n keys "k%07d" with values "v%d".
func fill(t testing.TB, tr *Tree, n int) (*Tree, model) {
	t.Helper()
	m := model{}
	var muts []Mutation
	for i := range n {
		k, v := fmt.Sprintf("k%07d", i), fmt.Sprintf("v%d", i)
		m[k] = v
		muts = append(muts, Mutation{Key: []byte(k), Value: []byte(v)})
	}
	tr, _ = mustApply(t, tr, muts)
	return tr, m
}

func TestNoOpChange(t *testing.T) {
	tr, st := newTestTree(t, smallConfig())
	tr, _ = fill(t, tr, 5000)
	before := st.Stats()
	next, res := mustApply(t, tr, []Mutation{
		{Key: []byte("k0000010"), Value: []byte("v10")},   // the same value
		{Key: []byte("k0000011x"), Delete: true},          // absent
		{Key: []byte("k0004000"), Value: []byte("v4000")}, // the same value
	})
	if next != tr || len(res.Written)+len(res.Replaced) != 0 {
		t.Fatalf("a change to nothing gave a new tree, %d written, %d replaced", len(res.Written), len(res.Replaced))
	}
	if d := st.Stats().Sub(before); d.Puts != 0 {
		t.Fatalf("a change to nothing stored %d nodes", d.Puts)
	}
}

func TestDeleteAll(t *testing.T) {
	tr, _ := newTestTree(t, smallConfig())
	tr, m := fill(t, tr, 20000)
	if st := checkInvariants(t, tr); st.depth < 3 {
		t.Fatalf("depth %d; want a deeper tree", st.depth)
	}
	var muts []Mutation
	for _, k := range m.sorted() {
		muts = append(muts, Mutation{Key: []byte(k), Delete: true})
	}
	next, res := mustApply(t, tr, muts)
	if next.Root() != nil {
		t.Fatalf("root %x after deleting every key", next.Root())
	}
	if len(res.Written) != 0 || len(res.Replaced) != len(walkSet(t, tr)) {
		t.Fatalf("wrote %d, replaced %d of %d nodes", len(res.Written), len(res.Replaced), len(walkSet(t, tr)))
	}
	// Deleting all but one key leaves a single leaf, storing nothing else.
	keep := muts[len(muts)/3]
	muts = slices.Delete(muts, len(muts)/3, len(muts)/3+1)
	next, res = mustApply(t, tr, muts)
	st := checkInvariants(t, next)
	if st.depth != 1 || st.items != 1 || len(res.Written) != 1 {
		t.Fatalf("one key left: depth %d, %d items, wrote %d", st.depth, st.items, len(res.Written))
	}
	checkResult(t, tr, next, res)
	if v, ok, _ := next.Get(context.Background(), keep.Key); !ok || string(v) != m[string(keep.Key)] {
		t.Fatalf("kept key reads %q %v", v, ok)
	}
}

// TestSparseDelete deletes 99% of the keys, scattered over every leaf: the
// leaves left are merged across their old parents, not left as small
// leaves each under a parent of its own.
func TestSparseDelete(t *testing.T) {
	tr, _ := newTestTree(t, Config{TargetNodeSize: 1024})
	tr, m := fill(t, tr, 20000)
	before := checkInvariants(t, tr)
	var muts []Mutation
	for i, k := range m.sorted() {
		if i%100 != 0 {
			muts = append(muts, Mutation{Key: []byte(k), Delete: true})
			delete(m, k)
		}
	}
	next, res := mustApply(t, tr, muts)
	checkResult(t, tr, next, res)
	st := checkInvariants(t, next)
	t.Logf("%d keys: nodes per level %v; %d keys left: %v", 20000, before.nodes, len(m), st.nodes)
	if before.depth < 3 {
		t.Fatalf("depth %d before; want a deeper tree", before.depth)
	}
	// 200 items of 14 bytes fit in 3 nodes of the target size.
	if st.depth > 2 || st.nodes[0] > 4 {
		t.Errorf("%d keys left in %d leaves, %d levels", len(m), st.nodes[0], st.depth)
	}
	checkContent(t, rand.New(rand.NewPCG(5, 6)), next, m, m.sorted(), nil)
}

// TestCollapseToOldChild deletes every key but those of the root's first
// child: that child, unchanged, becomes the root, and nothing is stored.
func TestCollapseToOldChild(t *testing.T) {
	ctx := context.Background()
	tr, st := newTestTree(t, smallConfig())
	tr, m := fill(t, tr, 20000)
	root, err := tr.load(ctx, tr.root, -1)
	if err != nil {
		t.Fatal(err)
	}
	if root.level < 2 {
		t.Fatalf("root at level %d; want a deeper tree", root.level)
	}
	var muts []Mutation
	for _, k := range m.sorted() {
		if k >= string(root.items[1].key) {
			muts = append(muts, Mutation{Key: []byte(k), Delete: true})
			delete(m, k)
		}
	}
	before := st.Stats()
	next, res := mustApply(t, tr, muts)
	if d := st.Stats().Sub(before); d.Puts != 0 || len(res.Written) != 0 {
		t.Fatalf("stored %d nodes, wrote %d", d.Puts, len(res.Written))
	}
	if !bytes.Equal(next.Root(), root.items[0].val) {
		t.Fatalf("root %x, want the old first child %x", next.Root(), root.items[0].val)
	}
	checkResult(t, tr, next, res)
	checkInvariants(t, next)
	checkContent(t, rand.New(rand.NewPCG(3, 4)), next, m, m.sorted(), []string{"k0019999"})
}

func TestHugeValues(t *testing.T) {
	ctx := context.Background()
	tr, _ := newTestTree(t, Config{TargetNodeSize: 4096})
	tr, m := fill(t, tr, 3000)
	huge := bytes.Repeat([]byte("h"), MaxValue)
	muts := []Mutation{
		{Key: []byte("k0001000"), Value: huge},
		{Key: []byte("k0001000a"), Value: huge[1:]},
		{Key: []byte("k0001001"), Value: []byte("small")},
	}
	next, res := mustApply(t, tr, muts)
	checkResult(t, tr, next, res)
	st := checkInvariants(t, next)
	if st.items != len(m)+1 {
		t.Fatalf("%d items, want %d", st.items, len(m)+1)
	}
	v, ok, err := next.Get(ctx, []byte("k0001000"))
	if err != nil || !ok || !bytes.Equal(v, huge) {
		t.Fatalf("Get of the huge value: %d bytes, %v %v", len(v), ok, err)
	}
	// A small change next to a huge leaf does not rewrite the huge leaf.
	next2, res := mustApply(t, next, []Mutation{{Key: []byte("k0001001"), Delete: true}})
	checkInvariants(t, next2)
	for _, ref := range res.Written {
		n, err := next2.load(ctx, ref, -1)
		if err != nil {
			t.Fatal(err)
		}
		if n.size > MaxValue {
			t.Fatalf("deleting a small key rewrote a %d-byte node", n.size)
		}
	}
}

func TestLongSharedKeys(t *testing.T) {
	// Keys of MaxKey bytes that differ only at the end compress to a few
	// bytes each, so nodes are split by the length of their keys written
	// out (MaxNodeKeys) long before they reach their target size.
	tr, _ := newTestTree(t, Config{})
	prefix := bytes.Repeat([]byte("p"), MaxKey-4)
	var muts []Mutation
	m := model{}
	for i := range 1000 {
		k := fmt.Appendf(bytes.Clone(prefix), "%04d", i)
		muts = append(muts, Mutation{Key: k, Value: []byte{byte(i)}})
		m[string(k)] = string([]byte{byte(i)})
	}
	next, res := mustApply(t, tr, muts)
	checkResult(t, tr, next, res)
	st := checkInvariants(t, next)
	if st.nodes[0] < 1000*MaxKey/MaxNodeKeys {
		t.Fatalf("%d leaves for %d bytes of keys", st.nodes[0], 1000*MaxKey)
	}
	checkContent(t, rand.New(rand.NewPCG(1, 2)), next, m, m.sorted(), []string{string(prefix)})
}

func TestMutationsRefused(t *testing.T) {
	tr, st := newTestTree(t, Config{})
	tr, _ = fill(t, tr, 100)
	before := st.Stats()
	cases := []struct {
		name string
		muts []Mutation
		want error
	}{
		{"unsorted", []Mutation{{Key: []byte("b")}, {Key: []byte("a")}}, ErrUnsorted},
		{"duplicate", []Mutation{{Key: []byte("a")}, {Key: []byte("a"), Delete: true}}, ErrUnsorted},
		{"long key", []Mutation{{Key: []byte("a")}, {Key: make([]byte, 20<<10)}}, ErrTooLarge},
		{"long key deleted", []Mutation{{Key: make([]byte, MaxKey+1), Delete: true}}, ErrTooLarge},
		{"long value", []Mutation{{Key: []byte("a"), Value: make([]byte, MaxValue+1)}}, ErrTooLarge},
	}
	for _, c := range cases {
		next, _, err := tr.Apply(context.Background(), c.muts)
		if !errors.Is(err, c.want) || next != nil {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if d := st.Stats().Sub(before); d.Puts+d.Gets != 0 {
		t.Fatalf("refused mutations used the store: %+v", d)
	}
	// A deleted key's value is not looked at.
	if _, _, err := tr.Apply(context.Background(), []Mutation{{Key: []byte("k0000001"), Delete: true, Value: make([]byte, MaxValue+1)}}); err != nil {
		t.Fatal(err)
	}
}

// badStore returns references Put should never return.
type badStore struct {
	MemStore
	ref []byte
}

func (s *badStore) Put(ctx context.Context, node []byte) ([]byte, error) {
	s.MemStore.Put(ctx, node)
	return s.ref, nil
}

func TestStoreErrors(t *testing.T) {
	ctx := context.Background()
	for _, ref := range [][]byte{nil, make([]byte, MaxRef+1)} {
		tr, _ := newTestTree(t, Config{Store: &badStore{ref: ref}})
		if _, _, err := tr.Apply(ctx, []Mutation{{Key: []byte("a")}}); err == nil {
			t.Errorf("reference of %d bytes accepted", len(ref))
		}
	}
	tr, st := newTestTree(t, smallConfig())
	tr, _ = fill(t, tr, 2000)
	// A tree whose nodes are gone fails with the store's error.
	gone, _ := tr.WithRoot([]byte("no such node"))
	if _, _, err := gone.Get(ctx, []byte("k")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get: %v", err)
	}
	// Drop a leaf: reads that need it fail, and Apply stores nothing.
	var leaf []byte
	tr.Walk(ctx, func(ref []byte, level int) error {
		if level == 0 && leaf == nil {
			leaf = ref
		}
		return nil
	})
	st.Delete(leaf)
	tr.s.cache = newNodeCache(0)
	if err := tr.Ascend(ctx, nil, nil, func(k, v []byte) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("Ascend: %v", err)
	}
	before := st.Stats()
	if _, _, err := tr.Apply(ctx, []Mutation{{Key: []byte("k0000000")}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Apply: %v", err)
	}
	if d := st.Stats().Sub(before); d.Puts != 0 {
		t.Errorf("failed Apply stored %d nodes", d.Puts)
	}
	// A node under a reference at the wrong level is refused.
	var internal []byte
	tr.Walk(ctx, func(ref []byte, level int) error {
		if level == 1 && internal == nil {
			internal = ref
		}
		return nil
	})
	if _, err := tr.load(ctx, internal, 0); !errors.Is(err, ErrFormat) {
		t.Errorf("level mismatch: %v", err)
	}
}

func TestConfig(t *testing.T) {
	st := &MemStore{}
	for _, cfg := range []Config{
		{},
		{Store: st, TargetNodeSize: 100},
		{Store: st, TargetNodeSize: 4096, MaxNodeSize: 4095},
		{Store: st, MaxNodeSize: MaxNodeBytes + 1},
		{Store: st, Parallel: -1},
	} {
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	if _, err := New(Config{Store: st}, make([]byte, MaxRef+1)); err == nil {
		t.Error("root reference over MaxRef accepted")
	}
	tr, err := New(Config{Store: st}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr.s.target != DefaultTargetNodeSize || tr.s.max != 2*DefaultTargetNodeSize || tr.s.parallel != DefaultParallel || tr.s.cache.max != DefaultCacheNodes {
		t.Errorf("defaults: %+v", tr.s)
	}
}

func TestSharedCache(t *testing.T) {
	ctx := context.Background()
	tr, st := newTestTree(t, smallConfig())
	tr, _ = fill(t, tr, 300)
	again, err := tr.WithRoot(tr.Root())
	if err != nil {
		t.Fatal(err)
	}
	before := st.Stats()
	if _, ok, err := again.Get(ctx, []byte("k0000150")); !ok || err != nil {
		t.Fatalf("Get: %v %v", ok, err)
	}
	if d := st.Stats().Sub(before); d.Gets != 0 {
		t.Errorf("a tree opened with WithRoot read %d nodes its parent had cached", d.Gets)
	}
	// Root returns a copy.
	r := tr.Root()
	r[0] ^= 1
	if bytes.Equal(r, tr.Root()) {
		t.Error("Root shares memory with the tree")
	}
}

func TestAscendStops(t *testing.T) {
	tr, _ := newTestTree(t, smallConfig())
	tr, _ = fill(t, tr, 20000)
	stop := errors.New("stop")
	n := 0
	err := tr.Ascend(context.Background(), []byte("k0001000"), nil, func(k, v []byte) error {
		if n++; n == 5000 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 5000 {
		t.Fatalf("Ascend returned %v after %d items", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr.s.cache = newNodeCache(0)
	n = 0
	err = tr.Ascend(ctx, nil, nil, func(k, v []byte) error {
		if n++; n == 100 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Ascend with a cancelled context returned %v after %d items", err, n)
	}
}

// countingStore records the most Gets in flight at once.
type countingStore struct {
	MemStore
	mu       sync.Mutex
	in, most int
	getDelay time.Duration
}

func (s *countingStore) Get(ctx context.Context, ref []byte) ([]byte, error) {
	s.mu.Lock()
	s.in++
	s.most = max(s.most, s.in)
	s.mu.Unlock()
	time.Sleep(s.getDelay)
	defer func() {
		s.mu.Lock()
		s.in--
		s.mu.Unlock()
	}()
	return s.MemStore.Get(ctx, ref)
}

// TestParallelReads checks that scans and changes read many nodes at a
// time, but no more than Parallel.
func TestParallelReads(t *testing.T) {
	ctx := context.Background()
	cs := &countingStore{}
	cfg := smallConfig()
	cfg.Store = cs
	tr, _ := newTestTree(t, cfg)
	tr, m := fill(t, tr, 20000)
	cs.getDelay = time.Millisecond

	for _, op := range []struct {
		name string
		run  func(tr *Tree) error
	}{
		{"Ascend", func(tr *Tree) error {
			return tr.Ascend(ctx, nil, nil, func(k, v []byte) error { return nil })
		}},
		{"Apply", func(tr *Tree) error {
			var muts []Mutation
			for i, k := range m.sorted() {
				if i%50 == 0 {
					muts = append(muts, Mutation{Key: []byte(k), Value: []byte("new")})
				}
			}
			_, _, err := tr.Apply(ctx, muts)
			return err
		}},
		{"Walk", func(tr *Tree) error {
			return tr.Walk(ctx, func([]byte, int) error { return nil })
		}},
	} {
		tr.s.cache = newNodeCache(0)
		cs.most = 0
		if err := op.run(tr); err != nil {
			t.Fatalf("%s: %v", op.name, err)
		}
		if cs.most < 2 || cs.most > cfg.Parallel {
			t.Errorf("%s: at most %d reads at once, want 2..%d", op.name, cs.most, cfg.Parallel)
		}
	}
}

func TestConcurrentReaders(t *testing.T) {
	ctx := context.Background()
	tr, _ := newTestTree(t, smallConfig())
	tr, m := fill(t, tr, 5000)
	sorted := m.sorted()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 0))
			for range 300 {
				k := sorted[rng.IntN(len(sorted))]
				v, ok, err := tr.Get(ctx, []byte(k))
				if err != nil || !ok || string(v) != m[k] {
					errs <- fmt.Errorf("Get(%q) = %q %v %v", k, v, ok, err)
					return
				}
			}
			n := 0
			if err := tr.Ascend(ctx, nil, nil, func(k, v []byte) error { n++; return nil }); err != nil || n != len(m) {
				errs <- fmt.Errorf("Ascend: %d items, %v", n, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCache(t *testing.T) {
	c := newNodeCache(2)
	a, b, d := &node{}, &node{}, &node{}
	c.add([]byte("a"), a)
	c.add([]byte("b"), b)
	if c.get([]byte("a")) != a { // a is now the most recent
		t.Fatal("a not cached")
	}
	c.add([]byte("d"), d)
	if c.get([]byte("b")) != nil || c.get([]byte("a")) != a || c.get([]byte("d")) != d || c.len() != 2 {
		t.Fatal("least recently used node not the one dropped")
	}
	var none *nodeCache
	none.add([]byte("a"), a)
	if none.get([]byte("a")) != nil || newNodeCache(-1).get([]byte("a")) != nil {
		t.Fatal("disabled cache kept a node")
	}
}
