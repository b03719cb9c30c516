package jellyfish

import (
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/objref"
)

func TestMemberReference(t *testing.T) {
	m := member{pack: ns.PackID{1, 2, 3}, off: 123456, n: 7890}
	b := m.marshal()
	got, ok, err := parseMember(b)
	if err != nil || !ok || got != m {
		t.Fatalf("round trip: %+v %v %v", got, ok, err)
	}
	// An object reference is not a member.
	if _, ok, err := parseMember([]byte{objref.TagRefV2, 9, 9}); ok || err != nil {
		t.Fatalf("object reference taken for a member: %v %v", ok, err)
	}
	// Every truncation, trailing bytes and huge values are refused.
	for i := 1; i < len(b); i++ {
		if _, ok, err := parseMember(b[:i]); !ok || err == nil {
			t.Fatalf("truncated to %d bytes: accepted", i)
		}
	}
	if _, _, err := parseMember(append(b, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	huge := member{pack: m.pack, off: 1 << 62, n: 1}.marshal()
	if _, _, err := parseMember(huge); err == nil {
		t.Fatal("offset of 2^62 accepted")
	}
}

func TestExtents(t *testing.T) {
	x := func(off, n int64) ns.Extent { return ns.Extent{Off: off, Len: n} }
	// Duplicates (copies of one file) and overlaps merge; empty ones go.
	if got, want := normalize([]ns.Extent{x(50, 10), x(0, 10), x(50, 10), x(5, 10), x(30, 0)}), []ns.Extent{x(0, 15), x(50, 10)}; !reflect.DeepEqual(got, want) {
		t.Fatalf("normalize: %v, want %v", got, want)
	}
	cur := []ns.Extent{x(0, 20), x(40, 20)}
	if got, want := intersect([]ns.Extent{x(10, 40)}, cur), []ns.Extent{x(10, 10), x(40, 10)}; !reflect.DeepEqual(got, want) {
		t.Fatalf("intersect: %v, want %v", got, want)
	}
	if got, want := union([]ns.Extent{x(0, 5)}, []ns.Extent{x(3, 5), x(20, 1)}), []ns.Extent{x(0, 8), x(20, 1)}; !reflect.DeepEqual(got, want) {
		t.Fatalf("union: %v, want %v", got, want)
	}
	if total(cur) != 40 {
		t.Fatalf("total %d", total(cur))
	}
	// A repacked pack's current extents are its map's.
	p := ns.Pack{Size: 100, Ref: []byte{1}, Map: []ns.Extent{{Off: 10, Len: 5, At: 0}, {Off: 70, Len: 5, At: 5}}}
	if got, want := current(&p), []ns.Extent{x(10, 5), x(70, 5)}; !reflect.DeepEqual(got, want) {
		t.Fatalf("current: %v, want %v", got, want)
	}
	if current(&ns.Pack{Size: 100}) != nil {
		t.Fatal("a dropped pack has current extents")
	}
}

func TestSegCache(t *testing.T) {
	var c segCache
	var loads atomic.Int32
	release := make(chan struct{})
	key := segKey{seg: 1}
	load := func() ([]byte, error) {
		loads.Add(1)
		<-release
		return []byte("segment"), nil
	}
	// Concurrent readers of one segment share one load.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if b, err := c.get(key, load); err != nil || string(b) != "segment" {
				t.Errorf("get: %q %v", b, err)
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d loads for 8 concurrent readers", n)
	}
	// A failure is not kept: the next reader loads again.
	fail := errors.New("holder gone")
	if _, err := c.get(segKey{seg: 2}, func() ([]byte, error) { return nil, fail }); err != fail {
		t.Fatalf("failed load: %v", err)
	}
	if b, err := c.get(segKey{seg: 2}, func() ([]byte, error) { return []byte("ok"), nil }); err != nil || string(b) != "ok" {
		t.Fatalf("load after a failure: %q %v", b, err)
	}
	// The least recently used segments go beyond segCacheSize.
	for i := range segCacheSize {
		c.get(segKey{seg: 100 + i}, func() ([]byte, error) { return []byte{1}, nil })
	}
	if len(c.entries) != segCacheSize || len(c.lru) != segCacheSize {
		t.Fatalf("%d entries, %d in use order; want %d", len(c.entries), len(c.lru), segCacheSize)
	}
	if _, ok := c.entries[key]; ok {
		t.Fatal("the least recently used segment was kept")
	}
}
