package ns

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

func dev(b byte) DeviceID { var d DeviceID; d[0] = b; return d }

// TestMergeIsOrderIndependent applies the same writes in many orders: every
// order must give the same tree.
func TestMergeIsOrderIndependent(t *testing.T) {
	var ops []Entry
	for i := range 200 {
		p := []string{"a", "a/b", "a/b/c", "d", "d/e"}[i%5]
		e := Entry{Path: p, Size: int64(i), Stamp: Stamp{HLC: uint64(i / 3), Device: dev(byte(i % 3))}}
		if i%7 == 0 {
			e.Deleted = true
		}
		ops = append(ops, e)
	}
	want := NewTree()
	for _, e := range ops {
		want.Apply(e)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
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

func TestTombstonesAndListing(t *testing.T) {
	tr := NewTree()
	tr.Apply(Entry{Path: "dir", Dir: true, Stamp: Stamp{HLC: 1}})
	tr.Apply(Entry{Path: "dir/f", Size: 3, Stamp: Stamp{HLC: 2}})
	tr.Apply(Entry{Path: "dir/f", Deleted: true, Stamp: Stamp{HLC: 4}})
	// An older write arriving late cannot resurrect the deleted file.
	if tr.Apply(Entry{Path: "dir/f", Size: 9, Stamp: Stamp{HLC: 3}}) {
		t.Fatal("older write replaced a newer tombstone")
	}
	if tr.Get("dir/f") != nil || tr.HasChildren("dir") || !tr.IsDir("dir") {
		t.Fatal("tombstone not honoured")
	}
	tr.Apply(Entry{Path: "dir/g", Size: 1, Stamp: Stamp{HLC: 5}})
	if l := tr.List("dir"); len(l) != 1 || l[0].Path != "dir/g" {
		t.Fatalf("list: %+v", l)
	}
	if !tr.IsDir("") || tr.IsDir("dir/g") {
		t.Fatal("IsDir")
	}
}

func TestClockMonotonic(t *testing.T) {
	now := time.Unix(1000, 0)
	c := NewClock(func() time.Time { return now })
	a := c.Next()
	now = now.Add(-time.Hour) // the wall clock goes back
	b := c.Next()
	c.Observe(b + 100)
	d := c.Next()
	if !(a < b && b < d) {
		t.Fatalf("clock went backwards: %d %d %d", a, b, d)
	}
}

// TestClockObserveBounded: a stamp from another device moves the clock
// past it when it is within MaxAhead of this device's time, and only to
// MaxAhead ahead when it is further (a device whose clock runs days fast).
func TestClockObserveBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := NewClock(func() time.Time { return now })
	stamp := func(t time.Time) uint64 { return uint64(t.UnixMilli()) << 16 }
	near := stamp(now.Add(time.Minute)) + 7
	c.Observe(near)
	if n := c.Next(); n <= near {
		t.Fatalf("after a stamp a minute ahead: next %d, want above %d", n, near)
	}
	c.Observe(stamp(now.Add(6 * 24 * time.Hour)))
	limit := stamp(now.Add(MaxAhead))
	if n := c.Next(); n > limit+1 || n < limit {
		t.Fatalf("after a stamp six days ahead: next %d, want %d (MaxAhead ahead)", n, limit+1)
	}
}

func TestBatchRoundTripAndChecks(t *testing.T) {
	b := &Batch{Device: dev(1), Seq: 3, Entries: []Entry{{Path: "x/y", Size: 2, Hash: []byte{1, 2}, Stamp: Stamp{HLC: 9, Device: dev(1)}}}}
	data, err := EncodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBatch(data)
	if err != nil || !reflect.DeepEqual(got, b) {
		t.Fatalf("round trip: %v", err)
	}
	for _, bad := range []string{`{"v":2}`, `{"v":1,"e":[{"p":"../x"}]}`, `{"v":1,"e":[{"p":"a","s":-1}]}`, `nonsense`} {
		if _, err := DecodeBatch([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if Clean("/a//b/../c/") != "a/c" || Clean("") != "" || Parent("a/b") != "a" || Parent("a") != "" {
		t.Fatal("path helpers")
	}
}
