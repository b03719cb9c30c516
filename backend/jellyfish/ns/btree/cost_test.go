package btree

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// costKeys is the number of keys of the tree the cost test and the
// benchmarks work on: a namespace of a million files.
const costKeys = 1_000_000

// costKey returns key i of the cost tree, for i in [0, 2·costKeys): about
// 60 bytes, shaped like a path, ascending with i. The tree holds the even
// ones; the odd ones fall between them.
func costKey(i int) []byte {
	return fmt.Appendf(nil, "users/u%03d/projects/p%03d/src/module%02d/file-%010d.dat",
		i/2000, i/100%20, i/10%10, i)
}

// costValue returns a value of about 100 bytes.
func costValue(rng *rand.Rand) []byte {
	v := make([]byte, 90+rng.IntN(20))
	for i := range v {
		v[i] = byte(rng.Uint32())
	}
	return v
}

// buildCostTree builds a tree of costKeys keys in four Apply calls of
// ascending key ranges.
func buildCostTree(tb testing.TB, cfg Config) (*Tree, *MemStore) {
	tb.Helper()
	st := &MemStore{}
	cfg.Store = st
	tr, err := New(cfg, nil)
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	const batches = 4
	for b := range batches {
		var muts []Mutation
		for i := b * costKeys / batches; i < (b+1)*costKeys/batches; i++ {
			muts = append(muts, Mutation{Key: costKey(2 * i), Value: costValue(rng)})
		}
		next, res, err := tr.Apply(context.Background(), muts)
		if err != nil {
			tb.Fatal(err)
		}
		for _, ref := range res.Replaced {
			st.Delete(ref)
		}
		tr = next
	}
	return tr, st
}

// nodesPerLevel counts the nodes of tr by level, root first.
func nodesPerLevel(tb testing.TB, tr *Tree) []int {
	tb.Helper()
	var counts []int
	err := tr.Walk(context.Background(), func(ref []byte, level int) error {
		if counts == nil {
			counts = make([]int, level+1)
		}
		counts[len(counts)-1-level]++
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return counts
}

// TestCost checks that a change to a tree of a million keys stores and
// reads O(depth) nodes.
func TestCost(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a tree of a million keys")
	}
	ctx := context.Background()
	start := time.Now()
	tr, st := buildCostTree(t, Config{Summarize: summarize})
	counts := nodesPerLevel(t, tr)
	depth, leaves := len(counts), counts[len(counts)-1]
	stored := st.Stats()
	t.Logf("%d keys in %v: depth %d, nodes per level from the root %v, %d nodes (%.1f MB) in the store",
		costKeys, time.Since(start).Round(time.Millisecond), depth, counts, st.Len(), float64(stored.PutBytes)/1e6)
	if depth < 3 {
		t.Fatalf("depth %d: the tree is too shallow to measure", depth)
	}
	if sum, err := tr.Summary(ctx); err != nil || sum[0] != costKeys {
		t.Fatalf("summary %v (%v), want %d items", sum, err, costKeys)
	}

	rng := rand.New(rand.NewPCG(2, 2))
	change := func(i int) Mutation {
		switch i % 3 {
		case 0: // update
			return Mutation{Key: costKey(2 * rng.IntN(costKeys)), Value: costValue(rng)}
		case 1: // insert
			return Mutation{Key: costKey(2*rng.IntN(costKeys) + 1), Value: costValue(rng)}
		default: // delete
			return Mutation{Key: costKey(2 * rng.IntN(costKeys)), Delete: true}
		}
	}
	const changes = 32
	var total MemStats
	worst := 0
	for i := range changes {
		before := st.Stats()
		next, res, err := tr.Apply(ctx, []Mutation{change(i)})
		if err != nil {
			t.Fatal(err)
		}
		d := st.Stats().Sub(before)
		if d.Puts > depth+2 || d.Gets > depth+2 {
			t.Errorf("change %d: %d nodes stored, %d read; depth %d", i, d.Puts, d.Gets, depth)
		}
		if len(res.Written) != d.Puts {
			t.Errorf("change %d: %d nodes stored, %d written", i, d.Puts, len(res.Written))
		}
		worst = max(worst, d.Puts)
		total.Puts += d.Puts
		total.Gets += d.Gets
		total.PutBytes += d.PutBytes
		tr = next
	}
	t.Logf("one change per Apply: %.2f nodes (%.1f KB) stored and %.2f read per change, at most %d stored",
		float64(total.Puts)/changes, float64(total.PutBytes)/changes/1e3, float64(total.Gets)/changes, worst)

	muts := make(map[string]Mutation)
	for i := range changes {
		m := change(i)
		muts[string(m.Key)] = m
	}
	batch := slices.SortedFunc(func(yield func(Mutation) bool) {
		for _, m := range muts {
			if !yield(m) {
				return
			}
		}
	}, func(x, y Mutation) int { return bytes.Compare(x.Key, y.Key) })
	before := st.Stats()
	if _, _, err := tr.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	d := st.Stats().Sub(before)
	t.Logf("%d changes in one Apply: %d nodes (%.1f KB) stored, %.2f per change; %d read; %d leaves in the tree",
		len(batch), d.Puts, float64(d.PutBytes)/1e3, float64(d.Puts)/float64(len(batch)), d.Gets, leaves)
	// Each change rewrites at most its leaf and one node above it; the
	// levels above are shared.
	if limit := 2*len(batch) + depth; d.Puts > limit || d.Gets > limit {
		t.Errorf("%d changes in one Apply stored %d nodes and read %d, over %d", len(batch), d.Puts, d.Gets, limit)
	}
}

var bench struct {
	once sync.Once
	tr   *Tree
	st   *MemStore
}

func benchTree(b *testing.B) (*Tree, *MemStore) {
	bench.once.Do(func() { bench.tr, bench.st = buildCostTree(b, Config{}) })
	return bench.tr, bench.st
}

func BenchmarkGet(b *testing.B) {
	tr, _ := benchTree(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 3))
	b.ResetTimer()
	for b.Loop() {
		if _, ok, err := tr.Get(ctx, costKey(2*rng.IntN(costKeys))); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkApply measures one update of a random key per Apply.
func BenchmarkApply(b *testing.B) {
	tr, st := benchTree(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(4, 4))
	b.ResetTimer()
	for b.Loop() {
		next, res, err := tr.Apply(ctx, []Mutation{{Key: costKey(2 * rng.IntN(costKeys)), Value: costValue(rng)}})
		if err != nil {
			b.Fatal(err)
		}
		for _, ref := range res.Replaced {
			st.Delete(ref)
		}
		tr = next
	}
}
