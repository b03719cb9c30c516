package ns

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
)

// memBase is a sorted in-memory Base.
type memBase struct {
	keys   [][]byte
	values [][]byte
}

func (m *memBase) put(k, v []byte) {
	i := sort.Search(len(m.keys), func(i int) bool { return bytes.Compare(m.keys[i], k) >= 0 })
	if i < len(m.keys) && bytes.Equal(m.keys[i], k) {
		m.values[i] = v
		return
	}
	m.keys = append(m.keys[:i], append([][]byte{k}, m.keys[i:]...)...)
	m.values = append(m.values[:i], append([][]byte{v}, m.values[i:]...)...)
}

func (m *memBase) Get(_ context.Context, k []byte) ([]byte, bool, error) {
	i := sort.Search(len(m.keys), func(i int) bool { return bytes.Compare(m.keys[i], k) >= 0 })
	if i < len(m.keys) && bytes.Equal(m.keys[i], k) {
		return m.values[i], true, nil
	}
	return nil, false, nil
}

func (m *memBase) Ascend(_ context.Context, start, end []byte, fn func(k, v []byte) error) error {
	i := sort.Search(len(m.keys), func(i int) bool { return bytes.Compare(m.keys[i], start) >= 0 })
	for ; i < len(m.keys) && (end == nil || bytes.Compare(m.keys[i], end) < 0); i++ {
		if err := fn(m.keys[i], m.values[i]); err != nil {
			return err
		}
	}
	return nil
}

// simulate makes the logs of devs devices writing to a few paths, each
// device seeing the others' writes only now and then (so some writes are
// concurrent), and returns every device's log in order.
func simulate(rng *rand.Rand, devs, writes int) [][]Entry {
	paths := []string{"a", "a/b", "a/b/c", "a/d", "e", "e/f", "g"}
	logs := make([][]Entry, devs)
	views := make([]*Tree, devs)
	seen := make([]int, devs*devs) // seen[i*devs+j]: entries of j applied by i
	for i := range views {
		views[i] = NewTree()
	}
	hlc := make([]uint64, devs)
	for range writes {
		d := rng.IntN(devs)
		// Now and then a device catches up with another.
		if o := rng.IntN(devs); o != d && rng.IntN(3) == 0 {
			for ; seen[d*devs+o] < len(logs[o]); seen[d*devs+o]++ {
				e := logs[o][seen[d*devs+o]]
				views[d].Apply(e)
				hlc[d] = max(hlc[d], e.Stamp.HLC)
			}
		}
		hlc[d]++
		p := paths[rng.IntN(len(paths))]
		e := Entry{Path: p, Size: int64(rng.IntN(100)), Hash: []byte{byte(rng.IntN(4))}, Stamp: Stamp{HLC: hlc[d], Device: dev(byte(d + 1))}}
		switch rng.IntN(6) {
		case 0:
			e.Deleted = true
		case 1:
			e.Dir = true
		}
		e.Bases = views[d].Heads(p)
		views[d].Apply(e)
		logs[d] = append(logs[d], e)
	}
	return logs
}

// TestViewMatchesOneTree checkpoints a prefix of every device's log into a
// base, applies the rest as a layer, and checks that every path shows the
// same heads as one tree holding every entry — whatever the split, and
// including entries that arrive after an entry superseding them was
// checkpointed.
func TestViewMatchesOneTree(t *testing.T) {
	ctx := context.Background()
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 7))
		logs := simulate(rng, 3, 150)
		all := NewTree()
		for _, l := range logs {
			for _, e := range l {
				all.Apply(e)
			}
		}
		// Two checkpoints in a row, each of a longer prefix, as a device
		// does; the second is built on the first.
		var base *memBase
		cut := make([]int, len(logs))
		for round := range 2 {
			layer := NewTree()
			covered := Covered{}
			for d, l := range logs {
				next := cut[d] + rng.IntN(len(l)-cut[d]+1)
				for _, e := range l[cut[d]:next] {
					layer.Apply(e)
				}
				cut[d] = next
				if next > 0 {
					covered[l[next-1].Stamp.Device] = l[next-1].Stamp.HLC
				}
			}
			v := View{Layers: []*Tree{layer}}
			if base != nil {
				v.Base = base
			}
			nb := &memBase{}
			if base != nil {
				nb.keys = append(nb.keys, base.keys...)
				nb.values = append(nb.values, base.values...)
			}
			for _, p := range layer.TouchedUnder("") {
				val, err := v.CheckpointValue(ctx, p, covered)
				if err != nil {
					t.Fatal(err)
				}
				if val != nil {
					nb.put(EntryKey(p), val)
				}
			}
			base = nb
			_ = round
		}
		rest := NewTree()
		for d, l := range logs {
			for _, e := range l[cut[d]:] {
				rest.Apply(e)
			}
		}
		v := View{Base: base, Layers: []*Tree{rest}}
		for _, p := range all.TouchedUnder("") {
			got, err := v.Heads(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			want, _, _ := all.State(p)
			sort.Slice(want, func(i, j int) bool { return want[i].Stamp.Less(want[j].Stamp) })
			if fmt.Sprint(stamps(got)) != fmt.Sprint(stamps(want)) {
				t.Fatalf("seed %d: %s: heads %v, want %v", seed, p, stamps(got), stamps(want))
			}
		}
		// Listings agree too.
		for _, dir := range []string{"", "a", "a/b", "e"} {
			got, _ := v.List(ctx, dir)
			want := all.List(dir)
			if len(got) != len(want) {
				t.Fatalf("seed %d: list %q: %d entries, want %d", seed, dir, len(got), len(want))
			}
			for i := range got {
				if got[i].Path != want[i].Path || got[i].Stamp != want[i].Stamp {
					t.Fatalf("seed %d: list %q differs at %d", seed, dir, i)
				}
			}
		}
		var walked []string
		v.Walk(ctx, "", func(e Entry) error { walked = append(walked, e.Path); return nil })
		sort.Strings(walked)
		var want []string
		all.Walk("", func(e Entry) error { want = append(want, e.Path); return nil })
		if !reflect.DeepEqual(walked, want) && !(len(walked) == 0 && len(want) == 0) {
			t.Fatalf("seed %d: walk %v, want %v", seed, walked, want)
		}
	}
}

func stamps(es []Entry) []Stamp {
	out := make([]Stamp, len(es))
	for i, e := range es {
		out[i] = e.Stamp
	}
	return out
}

func TestKeys(t *testing.T) {
	for _, p := range []string{"a", "a/b", "dir/sub/file.txt", "x y/ü"} {
		got, ok := PathOfKey(EntryKey(p))
		if !ok || got != p {
			t.Fatalf("%q round trips as %q", p, got)
		}
		parent := Parent(p)
		cs, ce := ChildrenRange(parent)
		k := EntryKey(p)
		if bytes.Compare(k, cs) < 0 || bytes.Compare(k, ce) >= 0 {
			t.Fatalf("%q not in its parent's children range", p)
		}
		for d := parent; d != ""; d = Parent(d) {
			ds, de := DescendantsRange(Parent(d))
			if Parent(d) != parent && (bytes.Compare(k, ds) < 0 || bytes.Compare(k, de) >= 0) {
				t.Fatalf("%q not in the descendants of %q", p, Parent(d))
			}
		}
	}
	// A sibling whose name extends the folder's stays out of its ranges.
	cs, ce := ChildrenRange("a")
	ds, de := DescendantsRange("a")
	for _, p := range []string{"a-b/c", "ab", "a", "b/a"} {
		k := EntryKey(p)
		if (bytes.Compare(k, cs) >= 0 && bytes.Compare(k, ce) < 0) || (bytes.Compare(k, ds) >= 0 && bytes.Compare(k, de) < 0) {
			t.Fatalf("%q falls inside folder a's ranges", p)
		}
	}
	for _, bad := range []string{string(make([]byte, MaxPath+1)), "a/\x00b", "a/" + string(bytes.Repeat([]byte("n"), MaxName+1))} {
		if CheckPath(bad) == nil {
			t.Errorf("%.20q accepted", bad)
		}
	}
	if err := CheckPath("ok/" + string(bytes.Repeat([]byte("n"), MaxName))); err != nil {
		t.Fatal(err)
	}
}

func TestValuesRoundTrip(t *testing.T) {
	heads := []Entry{
		{Path: "d/f", Size: 10, ModTime: -5, Hash: []byte{1}, Content: []byte{2, 3}, Stamp: Stamp{HLC: 1, Device: dev(1)}, Bases: []Stamp{{HLC: 0, Device: dev(2)}}},
		{Path: "d/f", Deleted: true, Stamp: Stamp{HLC: 2, Device: dev(2)}},
	}
	b, err := EncodeHeads(heads)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeHeads("d/f", b)
	if err != nil || !reflect.DeepEqual(got, heads) {
		t.Fatalf("heads: %+v %v", got, err)
	}
	if s := Summarizer(func([]byte) int64 { return 7 }, func(*Pack) int64 { return 9 })(EntryKey("d/f"), b); s != [4]uint64{0, 0, 0, 1} {
		t.Fatalf("summary of a deleted file: %v", s)
	}
	for cut := range len(b) {
		if _, err := DecodeHeads("d/f", b[:cut]); err == nil {
			t.Fatalf("cut at %d accepted", cut)
		}
	}
	p := &Pack{ID: PackID{9}, Device: dev(3), Rev: 2, Size: 100, Ref: []byte{1, 2}, Map: []Extent{{Off: 10, Len: 5, At: 0}}}
	pb, _ := EncodePack(p)
	if got, err := DecodePack(p.ID, pb); err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("pack: %+v %v", got, err)
	}
	hb, _ := EncodeHolders([][]byte{{1, 2}, {3}})
	if got, err := DecodeHolders(hb); err != nil || len(got) != 2 || !bytes.Equal(got[1], []byte{3}) {
		t.Fatalf("holders: %v %v", got, err)
	}
}

// TestMergeWithBasesIsOrderIndependent applies realistic logs (entries
// naming what their writer saw) in many orders: every order gives the same
// heads. An entry superseded before it arrives still supersedes its bases.
func TestMergeWithBasesIsOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var ops []Entry
	for _, l := range simulate(rng, 4, 400) {
		ops = append(ops, l...)
	}
	want := NewTree()
	for _, e := range ops {
		want.Apply(e)
	}
	for range 30 {
		rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
		got := NewTree()
		for _, e := range ops {
			got.Apply(e)
		}
		if !reflect.DeepEqual(got.All(), want.All()) {
			t.Fatal("merge depends on the order of operations")
		}
	}
}
