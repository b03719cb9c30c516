package provider_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/karma"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/localnet"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/testnet"
)

// offsetClock is real time moved forward by what tests add.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// observedNet is four providers on 127.0.0.1 whose clocks move together
// (clock): provider 0 enforces admission and runs its observation rounds
// only when the test does (rounds); node 1 is the node of account acct,
// whose record names it; c is a client of the network.
type observedNet struct {
	clock *offsetClock
	nw    *localnet.Network
	fleet *provider.Fleet
	p0    *provider.Provider
	node1 peer.ID
	c     *client.Client
	acct  *account.Account
	mgr   *account.Manager
}

// startObserved starts an observedNet with admission adm at provider 0
// and quota bytes on each provider (0: the test default); more, if given,
// changes each provider's configuration after that.
func startObserved(t *testing.T, ctx context.Context, adm provider.AdmissionConfig, quota int64, more ...func(int, *provider.Config)) *observedNet {
	t.Helper()
	o := &observedNet{clock: &offsetClock{}}
	ownerKey := newKey(t)
	nw, fleet, err := provider.StartTestnet(ctx, t.TempDir(), 4, provider.TestnetConfig{
		Base:       localnet.Options{Clock: o.clock.Now},
		QuotaBytes: quota,
		Provider: func(i int, cfg *provider.Config) {
			switch i {
			case 0:
				cfg.Admission = adm
				cfg.ObserveInterval = -1 // rounds run by the test, by the moved clock
			case 1:
				cfg.Owner = []byte(peerOf(t, ownerKey))
			}
			for _, f := range more {
				f(i, cfg)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nw.Close() })
	o.nw, o.fleet, o.p0, o.node1 = nw, fleet, fleet.Provider(0), nw.ID(1)
	if o.c, err = client.New(ctx, client.Config{DataDir: t.TempDir(), Bootstrap: nw.Node(0).Addrs()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.c.Close() })
	o.mgr = account.NewManager(o.c.Records(), account.InsecureTestKDF())
	o.acct = account.Restore("owner", ownerKey, account.RootKey{}, 1, newKey(t))
	if err := o.mgr.PublishAccount(ctx, o.acct, &account.Public{Created: time.Now().Unix(), Nodes: []peer.ID{o.node1}}); err != nil {
		t.Fatal(err)
	}
	return o
}

// rounds runs n of provider 0's observation rounds, ten minutes apart by
// the moved clock, and returns their sums. A skipped round fails the test:
// the network is connected.
func (o *observedNet) rounds(t *testing.T, ctx context.Context, n int) provider.ObserveRound {
	t.Helper()
	var sum provider.ObserveRound
	for range n {
		o.clock.Advance(10 * time.Minute)
		r, err := o.p0.Observe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.Skipped {
			t.Fatal("a round was skipped on a connected network")
		}
		addRounds(&sum, r)
	}
	return sum
}

// addRounds adds r to sum.
func addRounds(sum *provider.ObserveRound, r provider.ObserveRound) {
	sum.Probes += r.Probes
	sum.Answered += r.Answered
	sum.Audits += r.Audits
	sum.Passed += r.Passed
	sum.Deleted += r.Deleted
	sum.Silenced += r.Silenced
	sum.Puts += r.Puts
}

// roundsPerDay is a day of rounds ten minutes apart.
const roundsPerDay = 144

// TestObserverOnRealNetwork runs provider 0's observer on a four-node
// network on 127.0.0.1 whose clocks all move forward together, ten minutes
// per observation round: alice's account links node 1, so provider 0
// watches it; while it is vetting alice has a starter's caps there, once
// it has answered for seven days and passed its audits she has the
// sharing cap of what it earned; when node 1 then deletes provider 0's
// test shard on three days, alice's account is zeroed at provider 0: new
// shards are refused with the date it ends, and what she stored stays. At
// each step the standing request tells her what provider 0 made of her.
func TestObserverOnRealNetwork(t *testing.T) {
	const (
		q       = 32 << 20
		size    = 1 << 20
		starter = 3 << 20
	)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o := startObserved(t, ctx, provider.AdmissionConfig{StarterBytes: starter}, q)
	clock, nw, fleet, p0, node1, c := o.clock, o.nw, o.fleet, o.p0, o.node1, o.c
	alice, aliceKey := o.acct, o.acct.Identity
	// Linked and answering, but not vetted here: a starter's caps.
	err := testnet.WaitFor(ctx, func() bool { return p0.Admission().Classify(ctx, alice.ID()) == provider.ClassVetting })
	if err != nil {
		t.Fatalf("alice is %v at provider 0, want vetting", p0.Admission().Classify(ctx, alice.ID()))
	}
	sc, err := c.Shards(aliceKey, shardproto.WithClientClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	fill := func(max int) (int, error) {
		for n := 0; n < max; n++ {
			data := randBytes(t, size)
			if _, err := sc.Put(ctx, nw.ID(0), codec.IDOf(data), data, clock.Now().Add(40*24*time.Hour)); err != nil {
				return n, err
			}
		}
		return max, nil
	}
	n, err := fill(20)
	var re *shardproto.RemoteError
	if n != starter/size || !errors.As(err, &re) || !strings.Contains(re.Msg, "has not vetted yet") {
		t.Fatalf("alice, vetting, stored %d shards, then %v", n, err)
	}
	// What provider 0 tells her: vetting, a starter's cap, node 1 watched
	// and not known yet; a provider admitting all says so.
	standing := func(holder peer.ID) shardproto.AccountStanding {
		t.Helper()
		a, err := sc.Standing(ctx, holder)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if a := standing(nw.ID(0)); a.Class != "vetting" || a.Cap != starter || a.Earned != 0 || len(a.Nodes) != 1 ||
		a.Nodes[0].ID != node1 || !a.Nodes[0].Watched || a.Nodes[0].State != "unknown" {
		t.Fatalf("standing at provider 0 while vetting: %+v", a)
	}
	if a := standing(nw.ID(2)); a.Class != "all" || len(a.Nodes) != 0 {
		t.Fatalf("standing at a provider admitting all: %+v", a)
	}

	// days runs observation rounds every ten minutes for d days, calling
	// each at the start of every day.
	var rounds provider.ObserveRound
	days := func(d int, each func()) {
		for range d {
			if each != nil {
				each()
			}
			addRounds(&rounds, o.rounds(t, ctx, roundsPerDay))
		}
	}
	days(karma.VettingEpochs+1, nil)
	st := p0.Standing(node1)
	if st.State != karma.Good || st.Uptime != 1 || rounds.Answered != rounds.Probes || rounds.Passed < karma.VettingAudits || rounds.Puts != 1 {
		t.Fatalf("after 8 days node 1 is %v (uptime %.2f, %d epochs); rounds %+v", st.State, st.Uptime, st.KnownEpochs, rounds)
	}
	if rounds.Probes < 8*karma.ProbesPerEpoch-karma.ProbesPerEpoch || rounds.Probes > 9*karma.ProbesPerEpoch {
		t.Fatalf("%d probes in 8 days", rounds.Probes)
	}
	// Vetted: a quarter of what node 1 earned (tier 0, up all the time:
	// 1 GiB), within a quarter of the quota: 8 MiB.
	if c := p0.Admission().Classify(ctx, alice.ID()); c != provider.ClassSharing {
		t.Fatalf("alice is %v once node 1 is vetted", c)
	}
	n, err = fill(20)
	if n != q/4/size-starter/size || !errors.As(err, &re) || !strings.Contains(re.Msg, "at most 8 MiB for one account, for what its nodes earned") {
		t.Fatalf("alice, sharing, stored %d more shards, then %v", n, err)
	}
	if a := standing(nw.ID(0)); a.Class != "sharing" || a.Cap != q/4 || a.Earned != 1<<30 ||
		a.Nodes[0].State != "good" || a.Nodes[0].Uptime != 1 || a.Nodes[0].KnownEpochs < karma.VettingEpochs || a.Nodes[0].AuditsPassed < karma.VettingAudits {
		t.Fatalf("standing at provider 0 once vetted: %+v", a)
	}
	if obs := p0.Observations(); obs.Watched != 1 || obs.Good != 1 {
		t.Fatalf("observations %+v", obs)
	}

	// Node 1 drops provider 0's test shard at the start of three days.
	// Each of those days is one epoch: its first audit finds the shard
	// gone, its second puts a new one, and the strikes fall in three
	// epochs (days straddling two epochs could hold one audit, or three).
	clock.Advance(karma.EpochOf(clock.Now()).End().Sub(clock.Now()))
	deleted := 0
	days(3, func() {
		ts, ok := p0.TestShard(node1)
		if !ok {
			t.Fatal("provider 0 has no test shard on node 1")
		}
		// Collected early: node 1 drops every reference whose lease
		// ends by the test shard's, which is all it holds.
		gc, err := fleet.Provider(1).Store().GC(ctx, ts.Lease)
		if err != nil || gc.Shards == 0 {
			t.Fatalf("early collection at node 1: %+v, %v", gc, err)
		}
		if _, err := fleet.Provider(1).Store().Stat(ctx, ts.ID); err == nil {
			t.Fatal("the test shard is still held")
		}
		deleted++
	})
	clock.Advance(time.Minute)
	st = p0.Standing(node1)
	if rounds.Deleted != deleted || st.State != karma.Malicious || len(st.Strikes) != 3 {
		t.Fatalf("after %d deleted test shards node 1 is %v with %d strikes (rounds %+v)", deleted, st.State, len(st.Strikes), rounds)
	}
	if c := p0.Admission().Classify(ctx, alice.ID()); c != provider.ClassZeroed {
		t.Fatalf("alice is %v once her node is malicious", c)
	}
	data := randBytes(t, size)
	_, err = sc.Put(ctx, nw.ID(0), codec.IDOf(data), data, clock.Now().Add(time.Hour))
	if !errors.Is(err, shardstore.ErrOverAllowance) || !errors.As(err, &re) ||
		!strings.Contains(re.Msg, "an account whose node lost shards it held") || !strings.Contains(re.Msg, st.Until.UTC().Format(time.DateOnly)) {
		t.Fatalf("a zeroed account's put: %v", err)
	}
	if a := standing(nw.ID(0)); a.Class != "zeroed" || a.Cap != 1 || !a.Until.Equal(st.Until) ||
		a.Nodes[0].State != "malicious" || a.Nodes[0].Strikes != 3 {
		t.Fatalf("standing at provider 0 once zeroed: %+v", a)
	}
	// What she stored stays.
	aliceOwner, err := shardproto.OwnerOf(aliceKey.GetPublic())
	if err != nil {
		t.Fatal(err)
	}
	if h := p0.Store().Usage().PerOwner[aliceOwner]; h != q/4 {
		t.Fatalf("alice holds %d bytes at provider 0, want %d", h, q/4)
	}

	// Node 1 now goes down for the first 8 hours of each of 3 days and
	// comes back (restarted on its data dir): about a third of those
	// days' probes go unanswered, the rest are answered.
	before := rounds
	for range 3 {
		if err := nw.Kill(1); err != nil {
			t.Fatal(err)
		}
		addRounds(&rounds, o.rounds(t, ctx, roundsPerDay/3)) // 8 hours down
		if err := nw.Restart(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if err := fleet.Provider(1).Publish(ctx); err != nil {
			t.Fatal(err)
		}
		addRounds(&rounds, o.rounds(t, ctx, roundsPerDay-roundsPerDay/3))
	}
	probes, answered := rounds.Probes-before.Probes, rounds.Answered-before.Answered
	t.Logf("down a third of 3 days: %d of %d probes answered", answered, probes)
	if share := float64(answered) / float64(probes); probes < 30 || share < 0.45 || share > 0.85 {
		t.Fatalf("down a third of 3 days: %d of %d probes answered", answered, probes)
	}
	st = p0.Standing(node1)
	if !(st.Uptime < 1) {
		t.Fatalf("uptime %v after three days down a third of the time", st.Uptime)
	}
	// Rounds cut short by the provider stopping count nothing against
	// the node: after two days of them, only the day already under way
	// when they began has become known (by the probes made before).
	rounds0 := p0.Observations().Rounds
	stopped, stop := context.WithCancel(ctx)
	stop()
	for range 2 * 144 {
		clock.Advance(10 * time.Minute)
		if _, err := p0.Observe(stopped); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	}
	if after := p0.Standing(node1); after.KnownEpochs > st.KnownEpochs+1 || p0.Observations().Rounds != rounds0 {
		t.Fatalf("cancelled rounds counted: %d known days before, %d after; %d rounds before, %d after",
			st.KnownEpochs, after.KnownEpochs, rounds0, p0.Observations().Rounds)
	}
}

// TestObserverKeepsRenewingAccounts: an account that stores once and then
// only renews (a backup that does not change) keeps its node watched and
// vetted at provider 0 past the 30 days after which a node nobody needs is
// dropped with its tallies: renewals count as need.
func TestObserverKeepsRenewingAccounts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	o := startObserved(t, ctx, provider.AdmissionConfig{}, 0)
	clock, nw, fleet, p0, node1, c, aliceKey := o.clock, o.nw, o.fleet, o.p0, o.node1, o.c, o.acct.Identity
	sc, err := c.Shards(aliceKey, shardproto.WithClientClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(t, 100_000)
	id := codec.IDOf(data)
	if _, err := sc.Put(ctx, nw.ID(0), id, data, clock.Now().Add(40*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !p0.Watching(node1) {
		t.Fatal("provider 0 does not watch alice's node after her put")
	}
	// A renewal refreshes her nodes at most every 6 hours: a renewal an
	// hour after the put refreshes them (past the cached lookup's 30
	// minutes: a lookup), the next, 6 hours less a minute later, does not,
	// and the one 2 minutes after that does. The queue is served in order,
	// so once the third renewal's lookup is counted, the second's would
	// have been. The first is waited for: served late, its lookup would
	// find the clock already moved on, and cache an answer the third would
	// read.
	renew := func(lease time.Duration) {
		t.Helper()
		if missing, err := sc.Renew(ctx, nw.ID(0), []codec.ShardID{id}, clock.Now().Add(lease)); err != nil || len(missing) != 0 {
			t.Fatalf("renew: %v, missing %v", err, missing)
		}
	}
	lookups := p0.Admission().Lookups()
	for i, step := range []time.Duration{time.Hour, 6*time.Hour - time.Minute, 2 * time.Minute} {
		clock.Advance(step)
		renew(40 * 24 * time.Hour)
		if i == 0 {
			if err := testnet.WaitFor(ctx, func() bool { return p0.Admission().Lookups() > lookups }); err != nil {
				t.Fatal("a renewal did not refresh alice's nodes")
			}
		}
	}
	if err := testnet.WaitFor(ctx, func() bool { return p0.Admission().Lookups() >= lookups+2 }); err != nil {
		t.Fatal("renewals did not refresh alice's nodes")
	}
	if n := p0.Admission().Lookups() - lookups; n != 2 {
		t.Fatalf("three renewals over 6 hours looked alice up %d times, want 2", n)
	}
	// 32 days: node 1 republishes its record and alice renews each day.
	var first provider.TestShard
	for d := range 32 {
		if err := fleet.Provider(1).Publish(ctx); err != nil {
			t.Fatal(err)
		}
		renew(40 * 24 * time.Hour)
		o.rounds(t, ctx, roundsPerDay)
		if d == 0 {
			first, _ = p0.TestShard(node1)
		}
	}
	// The first test shard (a 40-day lease) was replaced once its lease
	// had less than 10 days left, and audits never stopped.
	if ts, ok := p0.TestShard(node1); !ok || first.ID.IsZero() || ts.ID == first.ID || !ts.Lease.After(first.Lease) {
		t.Fatalf("test shard after 32 days %+v (%v), first %+v", ts, ok, first)
	}
	if st := p0.Standing(node1); !p0.Watching(node1) || st.State != karma.Good || st.KnownEpochs < karma.WindowEpochs-1 {
		t.Fatalf("after 32 days of renewals only: watched %v, %v over %d days", p0.Watching(node1), st.State, st.KnownEpochs)
	}
}

// TestOwnerReports: owners' evidence reaches the observer. Bob's account
// links node 1, so provider 0 watches it. Carol stores three shards on
// node 1 and renews them; node 1 then drops one a day before its lease
// ends (collecting early), and carol, whose audit gets a signed "not
// found", reports it to provider 0 (shard request 11): three days of
// that make node 1 malicious and bob zeroed at provider 0, although node 1
// kept provider 0's own test shard. A forged report is refused and counts
// nothing; a report about a node provider 0 does not watch changes
// nothing.
func TestOwnerReports(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o := startObserved(t, ctx, provider.AdmissionConfig{}, 0)
	clock, nw, fleet, p0, node1, c, bob := o.clock, o.nw, o.fleet, o.p0, o.node1, o.c, o.acct
	if err := testnet.WaitFor(ctx, func() bool { return p0.Admission().Classify(ctx, bob.ID()) == provider.ClassVetting }); err != nil {
		t.Fatalf("bob is %v at provider 0", p0.Admission().Classify(ctx, bob.ID()))
	}
	carol, err := c.Shards(newKey(t), shardproto.WithClientClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	// Three shards on node 1, renewed to leases an hour apart, ten days
	// out: node 1 can drop them one at a time by collecting early.
	var ids []codec.ShardID
	var leases []time.Time
	var receipts []shardproto.Renewal
	for i := range 3 {
		data := randBytes(t, 50_000)
		id := codec.IDOf(data)
		lease := clock.Now().Add(10*24*time.Hour + time.Duration(i)*time.Hour)
		if _, err := carol.Put(ctx, node1, id, data, lease); err != nil {
			t.Fatal(err)
		}
		_, rs, err := carol.RenewReceipts(ctx, node1, []codec.ShardID{id}, lease)
		if err != nil || len(rs) != 1 {
			t.Fatalf("renew: %v", err)
		}
		ids, leases, receipts = append(ids, id), append(leases, lease), append(receipts, rs[0])
	}
	report := func(i int) karma.DeletedPart {
		t.Helper()
		_, _, err := carol.Proof(ctx, node1, ids[i], []int64{0})
		var nf *shardproto.NotFoundError
		if !errors.As(err, &nf) {
			t.Fatalf("audit of shard %d after node 1 dropped it: %v", i, err)
		}
		inc, err := receipts[i].Inclusion(ids[i])
		if err != nil {
			t.Fatal(err)
		}
		return karma.DeletedPart{Holder: string(node1), Shard: karma.ShardRef(ids[i]), Receipt: inc.Marshal(), Answer: nf.Answer.Marshal()}
	}
	day := func() { o.rounds(t, ctx, roundsPerDay) }
	day() // provider 0 has probed node 1 and placed its test shard
	for i := range 3 {
		if _, err := fleet.Provider(1).Store().GC(ctx, leases[i]); err != nil {
			t.Fatal(err)
		}
		r := report(i)
		if i == 0 {
			// Forged: the answer's bytes changed. Refused, nothing counted.
			bad := r
			bad.Answer = append([]byte(nil), r.Answer...)
			bad.Answer[len(bad.Answer)-1] ^= 1
			var re *shardproto.RemoteError
			if _, err := carol.Report(ctx, nw.ID(0), bad); !errors.As(err, &re) || !strings.Contains(re.Msg, "not evidence") {
				t.Fatalf("forged report: %v", err)
			}
			// About a node provider 0 does not watch: nothing.
			other := r
			other.Holder = string(nw.ID(2))
			if msg, err := carol.Report(ctx, nw.ID(0), other); err != nil || msg != "not watched here" {
				t.Fatalf("report about an unwatched node: %q, %v", msg, err)
			}
		}
		if msg, err := carol.Report(ctx, nw.ID(0), r); err != nil || msg != "recorded" {
			t.Fatalf("report %d: %q, %v", i, msg, err)
		}
		day()
		if st := p0.Standing(node1); len(st.Strikes) != i+1 {
			t.Fatalf("after %d reports node 1 has %d strikes", i+1, len(st.Strikes))
		}
	}
	st := p0.Standing(node1)
	if st.State != karma.Malicious || st.AuditsFailed != 0 {
		t.Fatalf("node 1 is %v with %d failed audits of provider 0's own", st.State, st.AuditsFailed)
	}
	if c := p0.Admission().Classify(ctx, bob.ID()); c != provider.ClassZeroed {
		t.Fatalf("bob is %v once his node is malicious", c)
	}
}

// TestHoldingsOnRealNetwork: on the observed network, bob's account links
// node 2 and alice's node 1; both share 8 GiB (tier 3). Once provider 0
// has vetted both, each is credited the 2 GiB floor. Bob states that node
// 1 holds 3 GiB of his: it counts up to his own allowance, 2 GiB, and
// alice is credited 6 GiB (karma.Shown: twice 2 plus the floor, within the
// tier); what bob states of his own node counts for nothing. A fresh
// key's statement is not counted. Carol's account is provider 0's own: her
// word that node 1 holds 1 GiB counts in full, and alice is credited the
// whole tier. Provider 0 restarted keeps all it observed and was told: the
// standings, its test shards and the statements.
func TestHoldingsOnRealNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bobKey, carolKey := newKey(t), newKey(t)
	o := startObserved(t, ctx, provider.AdmissionConfig{}, 0, func(i int, cfg *provider.Config) {
		switch i {
		case 0:
			cfg.Owner = []byte(peerOf(t, carolKey))
		case 1:
			cfg.Tier = 3
		case 2:
			cfg.Tier, cfg.Owner = 3, []byte(peerOf(t, bobKey))
		}
	})
	nw, fleet, node1, node2 := o.nw, o.fleet, o.node1, o.nw.ID(2)
	bob := account.Restore("bob", bobKey, account.RootKey{}, 1, newKey(t))
	if err := o.mgr.PublishAccount(ctx, bob, &account.Public{Created: time.Now().Unix(), Nodes: []peer.ID{node2}}); err != nil {
		t.Fatal(err)
	}
	if err := fleet.PublishAll(ctx, nw); err != nil {
		t.Fatal(err)
	}
	shards := func(key crypto.PrivKey) *shardproto.Client {
		sc, err := o.c.Shards(key, shardproto.WithClientClock(o.clock.Now))
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	alice, bobc := shards(o.acct.Identity), shards(bobKey)
	// A put each makes provider 0 watch their nodes.
	for _, sc := range []*shardproto.Client{alice, bobc} {
		data := randBytes(t, 1<<10)
		if _, err := sc.Put(ctx, nw.ID(0), codec.IDOf(data), data, o.clock.Now().Add(40*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := testnet.WaitFor(ctx, func() bool { return o.p0.Watching(node1) && o.p0.Watching(node2) }); err != nil {
		t.Fatal("provider 0 does not watch both nodes")
	}
	earned := func(sc *shardproto.Client) int64 {
		t.Helper()
		a, err := sc.Standing(ctx, nw.ID(0))
		if err != nil {
			t.Fatal(err)
		}
		if a.Class != "sharing" {
			t.Fatalf("standing at provider 0: %+v", a)
		}
		return a.Earned
	}
	o.rounds(t, ctx, (karma.VettingEpochs+1)*roundsPerDay)
	if a, b := earned(alice), earned(bobc); a != karma.ShownFloor || b != karma.ShownFloor {
		t.Fatalf("alice earns %d and bob %d once their nodes are vetted, want the floor", a, b)
	}
	// Bob states what nodes 1 and 2 hold of his.
	msg, err := bobc.Holdings(ctx, nw.ID(0), []shardproto.Holding{{Holder: node1, Bytes: 3 << 30}, {Holder: node2, Bytes: 1 << 40}})
	if err != nil || msg != "counted 1 of 2" {
		t.Fatalf("bob's statement: %q, %v", msg, err)
	}
	if e := earned(alice); e != 6<<30 {
		t.Fatalf("alice earns %d once bob states node 1 holds 3 GiB, want 6 GiB", e)
	}
	// The standing answer says why, per node.
	if a, err := alice.Standing(ctx, nw.ID(0)); err != nil || a.Nodes[0].Held != 2<<30 || a.Nodes[0].Credit != 6<<30 {
		t.Fatalf("alice's standing: %+v, %v; want node 1 held 2 GiB, credited 6 GiB", a, err)
	}
	if h := o.p0.Held(node2, ""); h != 0 {
		t.Fatalf("bob's word on his own node counted: %d", h)
	}
	fresh := shards(newKey(t))
	if msg, err := fresh.Holdings(ctx, nw.ID(0), []shardproto.Holding{{Holder: node1, Bytes: 1 << 40}}); err != nil || !strings.HasPrefix(msg, "not counted") {
		t.Fatalf("a fresh key's statement: %q, %v", msg, err)
	}
	if msg, err := shards(carolKey).Holdings(ctx, nw.ID(0), []shardproto.Holding{{Holder: node1, Bytes: 1 << 30}}); err != nil || msg != "counted 1 of 1" {
		t.Fatalf("the provider's own account's statement: %q, %v", msg, err)
	}
	if e := earned(alice); e != karma.TierBytes(3) {
		t.Fatalf("alice earns %d once provider 0's own account states node 1 holds 1 GiB more, want her 8 GiB tier", e)
	}
	// A restart of provider 0 keeps what it observed and was told.
	ts, _ := o.p0.TestShard(node1)
	if err := nw.Restart(ctx, 0); err != nil {
		t.Fatal(err)
	}
	o.p0 = fleet.Provider(0)
	if st := o.p0.Standing(node1); st.State != karma.Good {
		t.Fatalf("after a restart node 1 is %v", st.State)
	}
	if got, ok := o.p0.TestShard(node1); !ok || got.ID != ts.ID || !got.Lease.Equal(ts.Lease) {
		t.Fatalf("after a restart the test shard on node 1 is %+v (%v), want %+v", got, ok, ts)
	}
	if h := o.p0.Held(node1, o.acct.ID()); h != 3<<30 {
		t.Fatalf("after a restart node 1 holds %d by the statements", h)
	}
	if err := testnet.WaitFor(ctx, func() bool {
		a, err := alice.Standing(ctx, nw.ID(0))
		return err == nil && a.Earned == karma.TierBytes(3)
	}); err != nil {
		t.Fatal("after a restart alice is not credited what bob stated")
	}
}
