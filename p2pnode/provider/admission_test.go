package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/karma"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/libp2p/go-libp2p/core/peer"
)

// testClock is a settable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeLookup answers from a table and counts its calls per account.
type fakeLookup struct {
	mu      sync.Mutex
	sharing map[peer.ID]bool
	fail    error
	calls   map[peer.ID]int
}

func newFakeLookup() *fakeLookup {
	return &fakeLookup{sharing: map[peer.ID]bool{}, calls: map[peer.ID]int{}}
}

// lookup links every sharing account to one tier-3 node, nodeOf(id).
func (f *fakeLookup) lookup(ctx context.Context, id peer.ID) (Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[id]++
	if f.fail != nil {
		return Link{Class: ClassSharing, Nodes: []LinkedNode{{ID: nodeOf(id), Tier: 3}}}, f.fail // an error wins over any answer
	}
	if f.sharing[id] {
		return Link{Class: ClassSharing, Nodes: []LinkedNode{{ID: nodeOf(id), Tier: 3}}}, nil
	}
	return Link{Class: ClassStarter}, nil
}

func nodeOf(account peer.ID) peer.ID { return "node-of-" + account }

// fakeStandings gives every node a vetted standing up all the time, but
// those set otherwise.
type fakeStandings struct {
	mu sync.Mutex
	m  map[peer.ID]karma.Standing
}

func (f *fakeStandings) set(id peer.ID, st karma.Standing) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[peer.ID]karma.Standing{}
	}
	f.m[id] = st
}

func (f *fakeStandings) of(id peer.ID) karma.Standing {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st, ok := f.m[id]; ok {
		return st
	}
	return karma.Standing{KnownEpochs: karma.WindowEpochs, Uptime: 1, State: karma.Good}
}

func vetted(id peer.ID) karma.Standing { return (&fakeStandings{}).of(id) }

func (f *fakeLookup) called(id peer.ID) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

func (f *fakeLookup) set(id peer.ID, sharing bool, fail error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sharing[id], f.fail = sharing, fail
}

var t0 = time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)

// acct returns a made-up account ID, distinct per i.
func acct(i int) peer.ID { return peer.ID(fmt.Sprintf("account-%04d", i)) }

func TestAdmissionClasses(t *testing.T) {
	const q = 8 << 30
	look := newFakeLookup()
	own, sharer, fresh, newcomer, cheat := acct(0), acct(1), acct(2), acct(3), acct(4)
	for _, id := range []peer.ID{sharer, newcomer, cheat} {
		look.set(id, true, nil)
	}
	stand := &fakeStandings{}
	stand.set(nodeOf(newcomer), karma.Standing{KnownEpochs: 4, Uptime: 1, State: karma.Vetting})
	until := t0.Add(20 * 24 * time.Hour)
	stand.set(nodeOf(cheat), karma.Standing{KnownEpochs: 30, Uptime: 1, State: karma.Malicious, Until: until})
	a, err := NewAdmission(AdmissionConfig{}, q, own, look.lookup, stand.of, (&testClock{now: t0}).Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	starterCaps := shardstore.Allowance{Max: 256 << 20, Group: GroupStarter, GroupMax: q / 8}
	for _, c := range []struct {
		id    peer.ID
		class Class
		want  shardstore.Allowance
	}{
		{own, ClassOwn, shardstore.Allowance{Group: GroupOwn}},
		// A vetted tier-3 node up all the time is credited the floor,
		// 2 GiB: a quarter of it here.
		{sharer, ClassSharing, shardstore.Allowance{Max: 512 << 20, Group: GroupSharing}},
		{fresh, ClassStarter, starterCaps},
		{newcomer, ClassVetting, starterCaps},
		{cheat, ClassZeroed, shardstore.Allowance{Max: 1, Group: GroupSharing}},
	} {
		if got := a.Classify(ctx, c.id); got != c.class {
			t.Errorf("%s: class %v, want %v", c.id, got, c.class)
		}
		got := a.Allowance(ctx, c.id, false)
		if got.Max != c.want.Max || got.Group != c.want.Group || got.GroupMax != c.want.GroupMax {
			t.Errorf("%s: allowance %+v, want %+v", c.id, got, c.want)
		}
		// A repair's caps are a quarter wider; no cap stays none.
		got = a.Allowance(ctx, c.id, true)
		if c.class == ClassZeroed {
			// Repairs of a zeroed account: a starter's cap, widened.
			c.want.Max = 256 << 20
		}
		if got.Max != c.want.Max*5/4 || got.Group != c.want.Group || got.GroupMax != c.want.GroupMax*5/4 {
			t.Errorf("%s: repair allowance %+v, want %+v widened by a quarter", c.id, got, c.want)
		}
	}
	if got := a.Allowance(ctx, cheat, false); !strings.Contains(got.Advice, until.Format(time.DateOnly)) || got.Who != zeroedWho {
		t.Errorf("a zeroed account is told %q / %q", got.Who, got.Advice)
	}
	// The sharing cap follows what the node earns: at uptime 0.5 a
	// quarter of 1 GiB is the starter's 256 MiB; a standing that changes is
	// seen at once, without a new lookup.
	calls := look.called(sharer)
	stand.set(nodeOf(sharer), karma.Standing{KnownEpochs: 30, Uptime: 0.5, State: karma.Good})
	if got := a.Allowance(ctx, sharer, false); got.Max != 256<<20 || got.Group != GroupSharing {
		t.Errorf("sharing at uptime 0.5: %+v", got)
	}
	if look.called(sharer) != calls {
		t.Error("a standing change needed a lookup")
	}
	// What other accounts state the node holds raises its credit
	// (karma.Shown: twice that plus the 2 GiB floor, up to its 8 GiB
	// tier); what the account states of its own node does not.
	var held map[peer.ID]int64
	a.SetHeld(func(node, except peer.ID) int64 {
		if except != sharer {
			t.Errorf("held of %s asked except %s, want except the account %s", node, except, sharer)
		}
		return held[node]
	})
	for _, c := range []struct{ held, cap int64 }{{0, 256 << 20}, {1 << 30, 512 << 20}, {3 << 30, 1 << 30}, {1 << 40, 1 << 30}} {
		held = map[peer.ID]int64{nodeOf(sharer): c.held}
		if got := a.Allowance(ctx, sharer, false); got.Max != c.cap {
			t.Errorf("sharing at uptime 0.5 with %d bytes held: cap %d, want %d", c.held, got.Max, c.cap)
		}
	}
	a.SetHeld(nil)
	if c := a.SharingCap(1 << 50); c != q/4 {
		t.Errorf("sharing cap of a huge allowance %d, want a quarter of the quota", c)
	}
	if look.called(own) != 0 {
		t.Error("the own account was looked up")
	}
	// Settings replace the defaults, and nonsense is refused.
	b, err := NewAdmission(AdmissionConfig{StarterBytes: 1 << 20, StarterShare: 0.5, SharingShare: 1}, q, "", look.lookup, vetted, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if s := b.AllowanceOf(ClassStarter, 0); s.Max != 1<<20 || s.GroupMax != q/2 {
		t.Errorf("starter allowance %+v", s)
	}
	if s := b.AllowanceOf(ClassSharing, 4*q); s.Max != q {
		t.Errorf("sharing allowance %+v", s)
	}
	if b.Classify(ctx, "") != ClassStarter {
		t.Error("no own account: the empty ID is own")
	}
	for _, bad := range []AdmissionConfig{{StarterShare: 1.5}, {SharingShare: -0.1}, {StarterBytes: -1}, {MaxLookups: -1}, {RepairSlack: 1.5}, {RepairSlack: -1}} {
		if _, err := NewAdmission(bad, q, "", look.lookup, vetted, time.Now); err == nil {
			t.Errorf("config %+v accepted", bad)
		}
	}
}

// TestAdmissionCache: answers are kept for their time to live, by the
// injected clock, and no longer; a failed lookup makes a starter, kept for
// the short time only.
func TestAdmissionCache(t *testing.T) {
	look := newFakeLookup()
	clock := &testClock{now: t0}
	a, err := NewAdmission(AdmissionConfig{}, 1<<30, "", look.lookup, vetted, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sharer, fresh, flaky := acct(1), acct(2), acct(3)
	look.set(sharer, true, nil)
	a.Classify(ctx, sharer)
	a.Classify(ctx, fresh)
	clock.Add(DefaultUnlinkedTTL - time.Nanosecond)
	for range 10 {
		if a.Classify(ctx, sharer) != ClassSharing || a.Classify(ctx, fresh) != ClassStarter {
			t.Fatal("cached classes changed")
		}
	}
	if look.called(sharer) != 1 || look.called(fresh) != 1 {
		t.Fatalf("looked up %d and %d times within the time to live", look.called(sharer), look.called(fresh))
	}
	// The starter answer expires first: the account now shares a node.
	look.set(fresh, true, nil)
	clock.Add(time.Nanosecond)
	if a.Classify(ctx, fresh) != ClassSharing || look.called(fresh) != 2 || look.called(sharer) != 1 {
		t.Fatal("a starter answer was kept past its time")
	}
	clock.Add(DefaultLinkedTTL - DefaultUnlinkedTTL - time.Nanosecond)
	a.Classify(ctx, sharer)
	if look.called(sharer) != 1 {
		t.Fatal("a sharing answer expired early")
	}
	clock.Add(time.Nanosecond)
	look.set(sharer, false, nil)
	if a.Classify(ctx, sharer) != ClassStarter || look.called(sharer) != 2 {
		t.Fatal("a sharing answer was kept past its time")
	}
	// A failure is a starter, asked again after the short time.
	look.set(flaky, true, errors.New("dht: no peers answered"))
	if a.Classify(ctx, flaky) != ClassStarter {
		t.Fatal("a failed lookup did not make a starter")
	}
	a.Classify(ctx, flaky)
	look.set(flaky, true, nil)
	clock.Add(DefaultUnlinkedTTL)
	if a.Classify(ctx, flaky) != ClassSharing || look.called(flaky) != 2 {
		t.Fatalf("after a failure: looked up %d times", look.called(flaky))
	}
}

// TestAdmissionLookupBounds: concurrent puts of one account share one
// lookup; at most MaxLookups run at once and each ends at LookupTimeout;
// the cache holds at most MaxCached accounts, even when 1,000 times as
// many ask.
func TestAdmissionLookupBounds(t *testing.T) {
	var running, most, calls atomic.Int64
	release := make(chan struct{})
	lookup := func(ctx context.Context, id peer.ID) (Link, error) {
		calls.Add(1)
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-release:
			return Link{Class: ClassSharing, Nodes: []LinkedNode{{ID: nodeOf(id)}}}, nil
		case <-ctx.Done():
			return Link{Class: ClassStarter}, ctx.Err()
		}
	}
	a, err := NewAdmission(AdmissionConfig{MaxLookups: 3, MaxCached: 16, LookupTimeout: time.Minute}, 1<<30, "", lookup, vetted, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	classes := make([]Class, 20)
	for i := range 20 {
		wg.Go(func() { classes[i] = a.Classify(ctx, acct(1)) })
	}
	for i := range 10 {
		wg.Go(func() { a.Classify(ctx, acct(100+i)) })
	}
	deadline := time.Now().Add(10 * time.Second)
	for running.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("lookups did not start")
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	close(release)
	wg.Wait()
	if most.Load() > 3 {
		t.Fatalf("%d lookups ran at once, limit 3", most.Load())
	}
	if calls.Load() != 11 {
		t.Fatalf("%d lookups for 11 accounts", calls.Load())
	}
	for i, c := range classes {
		if c != ClassSharing {
			t.Fatalf("waiter %d: %v", i, c)
		}
	}
	// 16,000 accounts asking one after another: the cache stays bounded.
	for i := range 16_000 {
		a.Classify(ctx, acct(1000+i))
	}
	a.mu.Lock()
	n := len(a.cache)
	a.mu.Unlock()
	if n > 16 {
		t.Fatalf("%d accounts cached, limit 16", n)
	}

	// A lookup that never answers ends at the timeout: a starter.
	stuck, err := NewAdmission(AdmissionConfig{LookupTimeout: 50 * time.Millisecond}, 1<<30, "",
		func(ctx context.Context, id peer.ID) (Link, error) {
			<-ctx.Done()
			return Link{Class: ClassSharing}, ctx.Err()
		}, vetted, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if stuck.Classify(ctx, acct(1)) != ClassStarter || time.Since(start) > 5*time.Second {
		t.Fatalf("stuck lookup: took %v", time.Since(start))
	}
}

// TestAdmissionStarterShare runs the policy against a real store: each
// fresh key stops at its own cap, several together at the starters'
// share of the quota; a sharing account and the own account are not held
// back by them.
func TestAdmissionStarterShare(t *testing.T) {
	const (
		q     = 64 << 20
		size  = 1 << 20
		limit = 5 << 20 // per starter
	)
	d, err := shardstore.New(t.TempDir(), shardstore.WithQuotaBytes(q), shardstore.WithClock((&testClock{now: t0}).Now))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	look := newFakeLookup()
	own, sharer := acct(0), acct(1)
	look.set(sharer, true, nil)
	a, err := NewAdmission(AdmissionConfig{StarterBytes: limit}, q, own, look.lookup, vetted, (&testClock{now: t0}).Now)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	put := func(id peer.ID) error {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		ctx := shardstore.ContextWithAllowance(context.Background(), func(ctx context.Context) (shardstore.Allowance, error) {
			return a.Allowance(ctx, id, false), nil
		})
		return d.Put(ctx, ownerOf(id), codec.IDOf(b), size, bytes.NewReader(b), t0.Add(time.Hour))
	}
	fill := func(id peer.ID) (int, error) {
		for n := 0; ; n++ {
			if err := put(id); err != nil {
				return n, err
			}
		}
	}
	// One fresh key: its own cap.
	n, err := fill(acct(10))
	var ae *shardstore.AllowanceError
	if n != limit/size || !errors.As(err, &ae) || ae.Collective {
		t.Fatalf("one starter stored %d shards, then %v", n, err)
	}
	// Fresh keys together: q/8 = 8 MiB, so the second stops at 3.
	n, err = fill(acct(11))
	if n != 3 || !errors.As(err, &ae) || !ae.Collective {
		t.Fatalf("second starter stored %d shards, then %v", n, err)
	}
	for i := 12; i < 20; i++ {
		if err := put(acct(i)); !errors.Is(err, shardstore.ErrOverAllowance) {
			t.Fatalf("starter %d: %v", i, err)
		}
	}
	if g := d.Usage().PerGroup[GroupStarter]; g != q/8 {
		t.Fatalf("starters hold %d, want %d", g, q/8)
	}
	// A sharing account: a quarter of the quota.
	if n, err := fill(sharer); n != q/4/size || !errors.Is(err, shardstore.ErrOverAllowance) {
		t.Fatalf("sharing account stored %d shards, then %v", n, err)
	}
	// The own account: the rest of the quota.
	n, err = fill(own)
	if want := (q - q/8 - q/4) / size; n != want || !errors.Is(err, shardstore.ErrQuotaExceeded) {
		t.Fatalf("own account stored %d shards (want %d), then %v", n, want, err)
	}
}

// ownerOf is a stand-in for the owner key's hash: the store only compares
// owners.
func ownerOf(id peer.ID) shardstore.Owner {
	var o shardstore.Owner
	copy(o[:], id)
	return o
}

// TestAdmissionTrustedObservers: with the starters' share full, an
// observer's test shard is refused, unless the observer is trusted
// (TrustObservers): then it takes ObserverBytes, in a group of its own,
// and no more. A new set replaces the old one; the set keeps at most
// MaxTrustedObservers; a sharing account in it keeps its own caps.
func TestAdmissionTrustedObservers(t *testing.T) {
	const q = 64 << 20
	d, err := shardstore.New(t.TempDir(), shardstore.WithQuotaBytes(q), shardstore.WithClock((&testClock{now: t0}).Now))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	look := newFakeLookup()
	sharer := acct(1)
	look.set(sharer, true, nil)
	a, err := NewAdmission(AdmissionConfig{}, q, acct(0), look.lookup, vetted, (&testClock{now: t0}).Now)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(6, 6))
	put := func(id peer.ID, size int) error {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		ctx := shardstore.ContextWithAllowance(context.Background(), func(ctx context.Context) (shardstore.Allowance, error) {
			return a.Allowance(ctx, id, false), nil
		})
		return d.Put(ctx, ownerOf(id), codec.IDOf(b), int64(size), bytes.NewReader(b), t0.Add(time.Hour))
	}
	// Fresh keys fill the starters' share (q/8 = 8 MiB, 1 MiB each).
	for i := 10; i < 18; i++ {
		if err := put(acct(i), 1<<20); err != nil {
			t.Fatalf("fresh key %d: %v", i, err)
		}
	}
	obs, other := acct(100), acct(101)
	var ae *shardstore.AllowanceError
	if err := put(obs, TestShardSize); !errors.As(err, &ae) || !ae.Collective {
		t.Fatalf("an untrusted observer's test shard with the starters' share full: %v", err)
	}
	a.TrustObservers([]peer.ID{obs, sharer})
	for i := range ObserverBytes / TestShardSize {
		if err := put(obs, TestShardSize); err != nil {
			t.Fatalf("trusted observer's test shard %d: %v", i, err)
		}
	}
	err = put(obs, TestShardSize)
	if !errors.As(err, &ae) || ae.Collective || ae.Max != ObserverBytes || ae.GroupMax != q/8 || !strings.Contains(err.Error(), "observer") {
		t.Fatalf("a trusted observer past ObserverBytes: %v", err)
	}
	if g := d.Usage().PerGroup[GroupObserver]; g != ObserverBytes {
		t.Fatalf("the observers' group holds %d, want %d", g, ObserverBytes)
	}
	if err := put(other, TestShardSize); !errors.As(err, &ae) || !ae.Collective {
		t.Fatalf("another observer, untrusted: %v", err)
	}
	if al := a.Allowance(context.Background(), sharer, false); al.Group != GroupSharing || al.Max <= ObserverBytes {
		t.Fatalf("a sharing account in the set: %+v", al)
	}
	// A new set replaces the old one.
	a.TrustObservers([]peer.ID{other})
	if err := put(other, TestShardSize); err != nil {
		t.Fatalf("the newly trusted observer: %v", err)
	}
	if al := a.Allowance(context.Background(), obs, false); al.Group != GroupStarter {
		t.Fatalf("an observer no longer trusted: %+v", al)
	}
	// The observers together: at most q/8, like the starters.
	var crowd []peer.ID
	for i := range 40 {
		crowd = append(crowd, acct(200+i))
	}
	a.TrustObservers(crowd)
	took := 0
	for _, o := range crowd {
		for range ObserverBytes / TestShardSize {
			if err := put(o, TestShardSize); err != nil {
				if !errors.As(err, &ae) || !ae.Collective || !strings.Contains(err.Error(), "observers holding shards of this node's account") {
					t.Fatalf("observer %d past the group's cap: %v", took, err)
				}
				goto full
			}
			took++
		}
	}
full:
	if g := d.Usage().PerGroup[GroupObserver]; g != q/8 || took*TestShardSize+ObserverBytes+TestShardSize != q/8 {
		t.Fatalf("trusted observers hold %d together after %d more test shards; cap %d", g, took, q/8)
	}

	// The bound.
	many := make([]peer.ID, MaxTrustedObservers+1)
	for i := range many {
		many[i] = peer.ID(fmt.Sprintf("observer-%06d", i))
	}
	a.TrustObservers(many)
	if !a.trusted(many[MaxTrustedObservers-1]) || a.trusted(many[MaxTrustedObservers]) {
		t.Fatal("the trusted set is not cut at MaxTrustedObservers")
	}
}
