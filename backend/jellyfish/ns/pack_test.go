package ns

import "testing"

func TestPackLocate(t *testing.T) {
	id := PackID{1}
	p := Pack{ID: id, Rev: 1, Size: 100, Ref: []byte{1}}
	if at, ok := p.Locate(10, 20); !ok || at != 10 {
		t.Fatalf("identity pack: %d %v", at, ok)
	}
	if _, ok := p.Locate(90, 20); ok {
		t.Fatal("extent past the end located")
	}
	// Repacked: [10,30) moved to 0, [60,70) moved to 20; [40,50) dropped.
	p.Rev, p.Map = 2, []Extent{{Off: 10, Len: 20, At: 0}, {Off: 60, Len: 10, At: 20}}
	if err := checkPack(&p); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		off, n, at int64
		ok         bool
	}{{10, 20, 0, true}, {15, 5, 5, true}, {60, 10, 20, true}, {40, 10, 0, false}, {25, 10, 0, false}, {0, 5, 0, false}} {
		at, ok := p.Locate(c.off, c.n)
		if ok != c.ok || (ok && at != c.at) {
			t.Errorf("Locate(%d,%d) = %d,%v want %d,%v", c.off, c.n, at, ok, c.at, c.ok)
		}
	}
	// A dropped pack locates nothing.
	if _, ok := (&Pack{ID: id, Rev: 3, Size: 100}).Locate(10, 20); ok {
		t.Fatal("dropped pack located bytes")
	}
	// Overlapping or out-of-range maps are refused.
	for _, m := range [][]Extent{{{Off: 10, Len: 20}, {Off: 20, Len: 5, At: 20}}, {{Off: 90, Len: 20}}, {{Off: 0, Len: 0}}, {{Off: 0, Len: 10, At: 5}, {Off: 20, Len: 5, At: 0}}} {
		if err := checkPack(&Pack{ID: id, Size: 100, Map: m}); err == nil {
			t.Errorf("map %v accepted", m)
		}
	}
	// The highest revision wins, whatever the order.
	tr := NewTree()
	tr.ApplyPack(p)
	if tr.ApplyPack(Pack{ID: id, Rev: 1, Size: 100, Ref: []byte{9}}) {
		t.Fatal("older revision applied")
	}
	if got := tr.Pack(id); got == nil || got.Rev != 2 || len(tr.Packs()) != 1 {
		t.Fatalf("pack after merge: %+v", got)
	}
}
