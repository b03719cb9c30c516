package record

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// multiRules is a test kind whose keys are "<publisher>/<n>", kept-marks
// rules aside like head records.
func multiRules() KindRules {
	return KindRules{
		Kind: 201, Name: "multi",
		Authorize: func(string, crypto.PubKey) error { return nil },
		Publisher: func(rest string) string { p, _, _ := strings.Cut(rest, "/"); return p },
	}
}

// keptRules is a test kind whose marks are kept for ever, like login.
func keptRules() KindRules {
	return KindRules{Kind: 202, Name: "kept", Authorize: func(string, crypto.PubKey) error { return nil }, KeepMarks: true}
}

func testScopes(t testing.TB) *Scopes {
	t.Helper()
	s, err := NewScopes(multiRules(), keptRules())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestScopes(t *testing.T) {
	s := testScopes(t)
	cases := []struct {
		key  string
		want Scope
	}{
		{"/jf/node/12D3KooWabc", Scope{Kind: "node"}},
		{"/jf/multi/alice/1", Scope{Kind: "multi", Publisher: "alice"}},
		{"/jf/kept/x", Scope{Kind: "kept", KeepMarks: true}},
		{"/jf/unknown/x", Scope{Kind: "unknown", KeepMarks: true}},
	}
	for _, c := range cases {
		got, err := s.Scope(c.key)
		if err != nil || got != c.want {
			t.Errorf("Scope(%q) = %+v, %v; want %+v", c.key, got, err, c.want)
		}
	}
	if _, err := s.Scope("/other/x"); !errors.Is(err, ErrBadKey) {
		t.Errorf("key outside /jf: %v", err)
	}
	if _, err := NewScopes(multiRules(), multiRules()); err == nil {
		t.Error("a kind given twice was accepted")
	}
}

func TestQuota(t *testing.T) {
	q := NewQuota(Limits{Total: 10, PerKind: 6, Kinds: map[string]int{"kept": 2}, PerPublisher: 3})
	node := Scope{Kind: "node"}
	alice := Scope{Kind: "multi", Publisher: "alice"}
	bob := Scope{Kind: "multi", Publisher: "bob"}
	kept := Scope{Kind: "kept"}

	admit := func(s Scope, n int) (admitted int) {
		for range n {
			if q.Admit(s) == nil {
				admitted++
			}
		}
		return admitted
	}
	if got := admit(node, 8); got != 6 {
		t.Fatalf("node kind admitted %d of 8, want its limit 6", got)
	}
	if got := admit(alice, 5); got != 3 {
		t.Fatalf("one publisher admitted %d of 5, want 3", got)
	}
	if err := q.Admit(alice); !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "publisher") {
		t.Fatalf("publisher over its limit: %v", err)
	}
	// Total is 10: 6 + 3 leave one.
	if got := admit(bob, 3); got != 1 {
		t.Fatalf("another publisher admitted %d, want the 1 left of the total", got)
	}
	if err := q.Admit(kept); !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "all kinds") {
		t.Fatalf("over the total: %v", err)
	}
	if q.Fits(kept) {
		t.Fatal("Fits over the total")
	}
	// Freeing keys makes room again; a publisher with no key is forgotten.
	q.Remove(bob)
	q.Remove(node)
	if got := admit(kept, 3); got != 2 {
		t.Fatalf("kept kind admitted %d, want its own limit 2", got)
	}
	q.Add(node) // a key the store must take anyway
	st := q.Stats()
	if st.Keys != 11 || st.Kinds["node"] != 6 || st.Kinds["multi"] != 3 || st.Kinds["kept"] != 2 || st.Publishers != 1 {
		t.Fatalf("stats %+v", st)
	}
	// node 2; multi 2 + 1 (alice) + 2 (bob); kept 1 + 1.
	if st.Refused != 9 || st.RefusedKinds["node"] != 2 || st.RefusedKinds["multi"] != 5 || st.RefusedKinds["kept"] != 2 {
		t.Fatalf("refusals %+v", st)
	}
	// No limits at all.
	free := NewQuota(Limits{})
	for range 1000 {
		if err := free.Admit(alice); err != nil {
			t.Fatal(err)
		}
	}
}

// movingClock is a clock tests set.
type movingClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *movingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *movingClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func TestHighWaterLimitsAndPrune(t *testing.T) {
	ctx := context.Background()
	store := dssync.MutexWrap(ds.NewMapDatastore())
	clock := &movingClock{now: t0}
	const retain = 47 * 24 * time.Hour
	admitting := true
	policy := MarkPolicy{
		Scopes: testScopes(t),
		Limits: Limits{PerKind: 5, PerPublisher: 2},
		Admit:  func(string, Scope) bool { return admitting },
		Retain: retain,
		Clock:  clock.Now,
	}
	hw, err := OpenDatastoreHighWater(ctx, store, "/hwm", policy)
	if err != nil {
		t.Fatal(err)
	}
	observe := func(key string, seq uint64) uint64 {
		t.Helper()
		if err := hw.Observe(key, seq); err != nil {
			t.Fatal(err)
		}
		got, err := hw.Seen(key)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	for i := range 7 {
		got := observe(fmt.Sprintf("/jf/node/n%d", i), 3)
		if want := map[bool]uint64{true: 3, false: 0}[i < 5]; got != want {
			t.Fatalf("node mark %d = %d, want %d", i, got, want)
		}
	}
	if got := observe("/jf/node/n0", 4); got != 4 {
		t.Fatalf("a kept mark is not raised when the kind is full: %d", got)
	}
	for i := range 3 {
		if got := observe(fmt.Sprintf("/jf/multi/alice/%d", i), 1); got != map[bool]uint64{true: 1, false: 0}[i < 2] {
			t.Fatalf("publisher mark %d = %d", i, got)
		}
	}
	admitting = false
	if got := observe("/jf/kept/a", 1); got != 0 {
		t.Fatal("a mark the policy did not admit was kept")
	}
	admitting = true
	observe("/jf/kept/a", 1)
	st := hw.Stats()
	if st.Keys != 8 || st.Kinds["node"] != 5 || st.Refused != 2+1+1 {
		t.Fatalf("stats %+v", st)
	}

	// A mark written by an earlier version has no time: Prune stamps it.
	legacy := "/jf/node/legacy"
	if err := store.Put(ctx, hw.dsKey(legacy), binary.BigEndian.AppendUint64(nil, 9)); err != nil {
		t.Fatal(err)
	}
	hw, err = OpenDatastoreHighWater(ctx, store, "/hwm", policy)
	if err != nil {
		t.Fatal(err)
	}
	if got := hw.Stats().Keys; got != 9 {
		t.Fatalf("reopened store counts %d marks, want 9", got)
	}
	if seq, err := hw.Seen(legacy); err != nil || seq != 9 {
		t.Fatalf("legacy mark: %d, %v", seq, err)
	}

	// Just inside the retention nothing goes, but the legacy mark gets
	// the current time.
	clock.Set(t0.Add(retain))
	observe("/jf/node/n1", 5) // raised now: kept for another retain
	pst, err := hw.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pst.Pruned != 0 || pst.Stamped != 1 || pst.Kept != 9 {
		t.Fatalf("prune at the retention: %+v", pst)
	}

	clock.Set(t0.Add(retain + time.Hour))
	pst, err = hw.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Gone: node n0, n2, n3, n4 and the two multi marks. Kept: the kept
	// kind, n1 (raised at retain) and the legacy mark (stamped at retain).
	if pst.Pruned != 6 || pst.Kept != 3 {
		t.Fatalf("prune after the retention: %+v", pst)
	}
	for key, want := range map[string]uint64{"/jf/node/n0": 0, "/jf/multi/alice/0": 0, "/jf/node/n1": 5, "/jf/kept/a": 1, legacy: 9} {
		if got, err := hw.Seen(key); err != nil || got != want {
			t.Errorf("after prune %s = %d, %v; want %d", key, got, err, want)
		}
	}
	if st := hw.Stats(); st.Keys != 3 || st.Kinds["node"] != 2 || st.Kinds["multi"] != 0 {
		t.Fatalf("stats after prune %+v", st)
	}
	// The freed room takes new keys again.
	if got := observe("/jf/multi/alice/9", 2); got != 2 {
		t.Fatal("no room after pruning")
	}

	// Years later the kept kind is still there.
	clock.Set(t0.Add(10 * 365 * 24 * time.Hour))
	if _, err := hw.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := hw.Seen("/jf/kept/a"); got != 1 {
		t.Fatalf("a kept mark was pruned: %d", got)
	}
	if got, _ := hw.Seen(legacy); got != 0 {
		t.Fatal("the stamped legacy mark was never pruned")
	}
}

// TestHighWaterWithoutPolicy: NewDatastoreHighWater keeps everything and
// Prune does nothing.
func TestHighWaterWithoutPolicy(t *testing.T) {
	hw := NewDatastoreHighWater(dssync.MutexWrap(ds.NewMapDatastore()), "/hwm")
	for i := range 100 {
		if err := hw.Observe(fmt.Sprintf("/jf/node/n%d", i), 1); err != nil {
			t.Fatal(err)
		}
	}
	st, err := hw.Prune(context.Background())
	if err != nil || st != (PruneStats{}) {
		t.Fatalf("Prune = %+v, %v", st, err)
	}
	if got, _ := hw.Seen("/jf/node/n99"); got != 1 {
		t.Fatal("mark lost")
	}
}
