package provider

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/karma"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"golang.org/x/sync/errgroup"
)

// The observer: a provider watches the nodes linked to the accounts that
// store on it and decides what those accounts may store from what it saw
// itself (docs/design.md §6.10, §6.12).
const (
	// ObserverFile is the observer's saved state inside the data dir.
	ObserverFile = "observer.json"
	// DefaultObserveInterval is the period of observation rounds: each
	// makes the probes that fell due since the last.
	DefaultObserveInterval = time.Minute
	// TestShardSize is the size of the test shard an observer puts on each
	// node it watches and audits twice a day: one leaf (codec.LeafSize),
	// the least a leaf proof can ask for, since a node holds a test shard
	// of about every provider (16 KiB × 10,000 providers is 160 MiB; test
	// shards of 64 KiB, before, made it 640 MiB). TestShardLease is its
	// lease. A new test shard replaces one whose lease ends within
	// testShardRenewBefore, so no audit ever asks for a shard whose lease
	// ended (which the holder may delete).
	TestShardSize        = codec.LeafSize
	TestShardLease       = 40 * 24 * time.Hour
	testShardRenewBefore = 10 * 24 * time.Hour
	// probeTimeout bounds one probe and its audit; observeParallel the
	// probes run at once. A probe of a node that is down costs its whole
	// timeout: watching karma.DefaultMaxObserved nodes (196,608 probes a
	// day), a fifth of them down, takes about 0.8 M slot-seconds a day,
	// which 32 slots give 3.3 times over (8 would fall behind).
	probeTimeout    = 20 * time.Second
	observeParallel = 32
	// observerSaveEvery is how often (by the provider's clock) a changed
	// state is written; Close writes it too.
	observerSaveEvery = 10 * time.Minute
)

// TestShard is an observer's test shard on one node.
type TestShard struct {
	ID    codec.ShardID
	Lease time.Time
}

// ObserveRound is what one observation round did.
type ObserveRound struct {
	At   time.Time
	Took time.Duration
	// Skipped is set when the provider had no connection at all: its own
	// network is down, and counting the probes would blame the nodes.
	Skipped                 bool
	Probes, Answered        int
	Audits, Passed, Deleted int
	// Silenced counts test shards counted as deleted after containment
	// (within Deleted).
	Silenced int
	Puts     int // test shards placed
}

// observer is the provider's observer service.
type observer struct {
	p      *Provider
	client *shardproto.Client
	path   string

	mu    sync.Mutex
	obs   *karma.Observer
	tests map[peer.ID]TestShard
	// contained holds, per node, the containment of its test shard: an
	// audit the node left unanswered while answering the probe before it.
	contained map[peer.ID]*karma.Containment
	// holdings are accounts' statements of what nodes keep for them.
	holdings *holdings
	rng      *rand.Rand
	dirty    bool
	saved    time.Time
	rounds   int
	last     ObserveRound
}

type observerFile struct {
	Observer  *karma.Observer
	Tests     idKeyed[TestShard]
	Contained idKeyed[*karma.Containment] `json:",omitempty"`
	Holdings  idKeyed[*accountHoldings]   `json:",omitempty"`
}

// idKeyed is a map keyed by peer IDs that is written with the IDs' text
// form. A plain map[peer.ID] cannot be read back: encoding/json writes a
// string-kinded key's raw bytes but reads keys through peer.ID's
// UnmarshalText, which wants the text form. Keys that do not decode (as
// written by versions with a plain map) are dropped on reading.
type idKeyed[V any] map[peer.ID]V

// MarshalJSON writes m with its keys' text form.
func (m idKeyed[V]) MarshalJSON() ([]byte, error) {
	s := make(map[string]V, len(m))
	for k, v := range m {
		s[k.String()] = v
	}
	return json.Marshal(s)
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (m *idKeyed[V]) UnmarshalJSON(b []byte) error {
	var s map[string]V
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*m = make(idKeyed[V], len(s))
	for k, v := range s {
		if id, err := peer.Decode(k); err == nil {
			(*m)[id] = v
		}
	}
	return nil
}

// newObserver loads the saved state from dataDir, if any. A state that
// cannot be read is logged and replaced: it only delays vetting.
func newObserver(p *Provider) (*observer, error) {
	h := p.n.Host()
	key := h.Peerstore().PrivKey(h.ID())
	if key == nil {
		return nil, errors.New("provider: observer: the host has no private key")
	}
	client, err := shardproto.NewClient(h, key, shardproto.WithClientClock(p.cfg.Clock))
	if err != nil {
		return nil, fmt.Errorf("provider: observer: %w", err)
	}
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("provider: observer: %w", err)
	}
	o := &observer{p: p, client: client, path: filepath.Join(p.cfg.DataDir, ObserverFile),
		obs: karma.NewObserver(string(h.ID()), 0), tests: map[peer.ID]TestShard{}, contained: map[peer.ID]*karma.Containment{},
		holdings: newHoldings(nil), rng: rand.New(rand.NewChaCha8(seed))}
	b, err := os.ReadFile(o.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		p.log.Warn("observer state not read; starting afresh", "path", o.path, "err", err)
	default:
		f := observerFile{Observer: karma.NewObserver(string(h.ID()), 0)}
		if err := json.Unmarshal(b, &f); err != nil {
			p.log.Warn("observer state not used; starting afresh", "path", o.path, "err", err)
		} else {
			o.obs = f.Observer
			o.holdings = newHoldings(f.Holdings)
			for id, t := range f.Tests {
				if o.obs.Watching(string(id)) {
					o.tests[id] = t
					if c := f.Contained[id]; c != nil && c.Shard == karma.ShardRef(t.ID) {
						o.contained[id] = c
					}
				}
			}
		}
	}
	o.saved = p.cfg.Clock()
	return o, nil
}

// watch notes that nodes are linked to an account storing here.
func (o *observer) watch(nodes []peer.ID) {
	now := o.p.cfg.Clock()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, id := range nodes {
		o.obs.Watch(string(id), now)
	}
	o.dirty = true
}

// standing returns node's standing as this provider observed it.
func (o *observer) standing(node peer.ID) karma.Standing {
	now := o.p.cfg.Clock()
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.obs.Standing(string(node), now)
}

// Observe runs one observation round now: every watched node with a probe
// due is probed (a stat request over the shard protocol; any answer, an
// error status included, is an answer), and at two of each
// day's probes the provider's test shard there is audited with leaf proofs
// (or put, when it has none or its lease ends soon). A wrong proof or a
// signed "not found" is a failed audit and a deleted shard; a timeout is
// neither, only an unanswered probe. The round is skipped when the
// provider has no connection at all.
func (p *Provider) Observe(ctx context.Context) (ObserveRound, error) {
	o := p.obs
	if o == nil {
		return ObserveRound{}, errors.New("provider: no observer: admission is off")
	}
	now := p.cfg.Clock()
	round := ObserveRound{At: now}
	start := time.Now()
	defer func() { o.setTook(time.Since(start)) }()
	if len(p.n.Host().Network().Peers()) == 0 {
		round.Skipped = true
		o.finish(round)
		return round, nil
	}
	o.mu.Lock()
	subjects, audits := o.obs.Due(now, o.rng)
	o.mu.Unlock()
	results := make([]probeResult, len(subjects))
	var g errgroup.Group
	g.SetLimit(observeParallel)
	for i, s := range subjects {
		id := peer.ID(s)
		o.mu.Lock()
		test, leaf := o.tests[id], o.rng.Int64N(TestShardSize/codec.LeafSize)
		o.mu.Unlock()
		g.Go(func() error {
			r := &results[i]
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			r.answered = o.probe(pctx, id, test.ID)
			if !r.answered || !audits[i] {
				return nil
			}
			if test.ID.IsZero() || !now.Add(testShardRenewBefore).Before(test.Lease) {
				t, err := o.putTest(pctx, id, now)
				if err != nil {
					p.log.Debug("observer: test shard not placed", "node", id, "err", err)
					return nil
				}
				r.put, r.test = true, t
				return nil
			}
			_, _, err := o.client.Proof(pctx, id, test.ID, []int64{leaf})
			var nf *shardproto.NotFoundError
			var bad *shardproto.BadProofError
			switch {
			case err == nil:
				r.audited, r.passed = true, true
			case errors.As(err, &nf) || errors.As(err, &bad):
				r.audited, r.deleted, r.shard = true, true, test.ID
			case ctx.Err() == nil:
				// Answered the probe, not the audit of the shard (in
				// time, or at all): a try of its containment.
				r.silent, r.shard = true, test.ID
				p.log.Debug("observer: audit not answered", "node", id, "err", err)
			}
			return nil
		})
	}
	g.Wait()
	if err := ctx.Err(); err != nil {
		// Stopping: what failed failed because of that, not the nodes.
		// The probes are not made up later (Due skips their slots).
		return round, err
	}
	o.mu.Lock()
	for i, s := range subjects {
		o.record(peer.ID(s), now, results[i], &round)
	}
	o.obs.Prune(now)
	for id := range o.tests {
		if !o.obs.Watching(string(id)) {
			delete(o.tests, id)
			delete(o.contained, id)
		}
	}
	o.dirty = o.dirty || len(subjects) > 0
	o.mu.Unlock()
	o.finish(round)
	if round.Probes > 0 {
		p.log.Debug("observation round", "probes", round.Probes, "answered", round.Answered,
			"audits", round.Audits, "passed", round.Passed, "deleted", round.Deleted, "test_shards_put", round.Puts)
	}
	return round, o.maybeSave(false)
}

// probeResult is what one probe, and the audit after it, gave.
type probeResult struct {
	answered, audited, passed, deleted, put bool
	// silent: the probe was answered, the audit of the test shard not.
	silent bool
	test   TestShard     // put: the new test shard
	shard  codec.ShardID // deleted, silent: the test shard
}

// record counts r, the probe of node id at now, in the observer and in
// round. A test shard whose audit the node leaves unanswered while it
// answers the probe is contained (karma.Containment): released by any
// answer about it, counted as deleted after karma.ContainmentTries silent
// tries over karma.ContainmentSpan. The caller holds o.mu.
func (o *observer) record(id peer.ID, now time.Time, r probeResult, round *ObserveRound) {
	s := string(id)
	round.Probes++
	o.obs.Probed(s, now, r.answered)
	if r.answered {
		round.Answered++
	}
	if r.put {
		round.Puts++
		o.tests[id] = r.test
		delete(o.contained, id)
	}
	if r.audited {
		round.Audits++
		o.obs.Audited(s, now, r.passed)
		delete(o.contained, id) // an answer about the shard ends containment
		if r.passed {
			round.Passed++
		}
	}
	deleted := r.deleted
	if r.silent {
		c := o.contained[id]
		if c == nil || c.Shard != karma.ShardRef(r.shard) {
			c = &karma.Containment{Shard: karma.ShardRef(r.shard), Since: now}
			o.contained[id] = c
		}
		if c.Record(now, karma.ShardSilent) == karma.Silenced {
			round.Silenced++
			deleted = true
			o.p.log.Warn("observer: a node stays silent on its test shard while answering probes", "node", id, "shard", r.shard.Short(), "tries", c.Tries)
		}
	}
	if deleted {
		round.Deleted++
		o.obs.Deleted(s, now, karma.ShardRef(r.shard))
		delete(o.tests, id) // a new one goes at the next audit
		delete(o.contained, id)
		if r.deleted {
			o.p.log.Warn("observer: a node lost its test shard", "node", id, "shard", r.shard.Short())
		}
	}
}

func (o *observer) setTook(d time.Duration) {
	o.mu.Lock()
	o.last.Took = d
	o.mu.Unlock()
}

func (o *observer) finish(r ObserveRound) {
	o.mu.Lock()
	o.rounds++
	o.last = r
	o.mu.Unlock()
}

// probe asks node id about the provider's test shard there (a stat
// request; any answer counts, "not found" included: it is a probe of the
// node, not an audit), finding its addresses in its node record when the
// peerstore has none. A stat is unsigned and costs the node a lookup in
// its index, nothing more.
func (o *observer) probe(ctx context.Context, id peer.ID, test codec.ShardID) bool {
	h := o.p.n.Host()
	if h.Network().Connectedness(id) != network.Connected && len(h.Peerstore().Addrs(id)) == 0 {
		info, _, err := o.p.n.NodeInfo(ctx, id)
		if err != nil {
			return false
		}
		h.Peerstore().AddAddrs(id, info.Addrs, peerstore.TempAddrTTL)
	}
	answered := func() bool {
		_, err := o.client.Stat(ctx, id, test)
		var remote *shardproto.RemoteError
		return err == nil || errors.As(err, &remote)
	}
	if answered() {
		return true
	}
	// The node may have moved (a new address after a restart, a new
	// relay): read its record again and try once more.
	info, _, err := o.p.n.NodeInfo(ctx, id)
	if err != nil || ctx.Err() != nil {
		return false
	}
	h.Peerstore().SetAddrs(id, info.Addrs, peerstore.TempAddrTTL)
	return answered()
}

// putTest places a fresh test shard of random bytes on id.
func (o *observer) putTest(ctx context.Context, id peer.ID, now time.Time) (TestShard, error) {
	data := make([]byte, TestShardSize)
	o.mu.Lock()
	for i := 0; i < len(data); i += 8 {
		binary.LittleEndian.PutUint64(data[i:], o.rng.Uint64())
	}
	o.mu.Unlock()
	sid := codec.IDOf(data)
	lease := now.Add(TestShardLease)
	if _, err := o.client.Put(ctx, id, sid, data, lease); err != nil {
		return TestShard{}, err
	}
	return TestShard{ID: sid, Lease: lease}, nil
}

// maybeSave writes the state when it changed and observerSaveEvery passed
// (or always, with force), atomically.
func (o *observer) maybeSave(force bool) error {
	now := o.p.cfg.Clock()
	o.mu.Lock()
	if !o.dirty || (!force && now.Sub(o.saved) < observerSaveEvery) {
		o.mu.Unlock()
		return nil
	}
	o.holdings.prune(now)
	b, err := json.Marshal(observerFile{Observer: o.obs, Tests: o.tests, Contained: o.contained, Holdings: o.holdings.accounts})
	o.dirty, o.saved = false, now
	o.mu.Unlock()
	if err != nil {
		return fmt.Errorf("provider: observer state: %w", err)
	}
	tmp := o.path + ".tmp"
	if err := writeSync(tmp, b); err != nil {
		return fmt.Errorf("provider: observer state: %w", err)
	}
	if err := os.Rename(tmp, o.path); err != nil {
		return fmt.Errorf("provider: observer state: %w", err)
	}
	return nil
}

func writeSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Observations is what the observer holds, for status pages. Interval
// is the period of rounds (negative when they are not run on their own).
type Observations struct {
	Interval                          time.Duration
	Watched                           int
	Unknown, Vetting, Good, Malicious int
	Rounds                            int
	Last                              ObserveRound
}

// Observations returns a count of the watched nodes by standing and the
// last round; zero when admission is off.
func (p *Provider) Observations() Observations {
	o := p.obs
	if o == nil {
		return Observations{}
	}
	now := p.cfg.Clock()
	o.mu.Lock()
	defer o.mu.Unlock()
	out := Observations{Interval: p.cfg.ObserveInterval, Rounds: o.rounds, Last: o.last}
	for _, s := range o.obs.Subjects() {
		out.Watched++
		switch o.obs.Standing(s, now).State {
		case karma.Vetting:
			out.Vetting++
		case karma.Good:
			out.Good++
		case karma.Malicious:
			out.Malicious++
		default:
			out.Unknown++
		}
	}
	return out
}

// Standing returns node's standing as the provider observed it (Unknown
// when admission is off or the node is not watched).
func (p *Provider) Standing(node peer.ID) karma.Standing {
	if p.obs == nil {
		return karma.Standing{At: p.cfg.Clock()}
	}
	return p.obs.standing(node)
}

// observeLoop runs Observe every interval.
func (p *Provider) observeLoop(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func(ctx context.Context) error {
		_, err := p.Observe(ctx)
		if err != nil && ctx.Err() == nil {
			p.log.Warn("observation round", "err", err)
		}
		return err
	})
}

// TestShard returns the provider's test shard on node, if it has one.
func (p *Provider) TestShard(node peer.ID) (TestShard, bool) {
	if p.obs == nil {
		return TestShard{}, false
	}
	p.obs.mu.Lock()
	defer p.obs.mu.Unlock()
	t, ok := p.obs.tests[node]
	return t, ok
}

// Watching reports whether the provider's observer watches node.
func (p *Provider) Watching(node peer.ID) bool {
	if p.obs == nil {
		return false
	}
	p.obs.mu.Lock()
	defer p.obs.mu.Unlock()
	return p.obs.obs.Watching(string(node))
}

// AccountStanding is the provider's answer to a standing request
// (shardproto.WithStanding): account's class here, what its nodes earned,
// its cap, and each linked node's standing as this provider observed it.
func (p *Provider) AccountStanding(ctx context.Context, account peer.ID) shardproto.AccountStanding {
	if p.adm == nil {
		return shardproto.AccountStanding{Class: "all"}
	}
	class, earned, nodes := p.adm.Explain(ctx, account)
	al := p.adm.allowanceOf(class, earned)
	out := shardproto.AccountStanding{Class: class.String(), Cap: max(al.Max, 0), Until: earned.Until}
	if class == ClassSharing {
		// The allowance its nodes earned (at least the starter's); a
		// vetting account earns nothing yet, a zeroed one nothing.
		out.Earned = max(earned.Bytes, 0)
	}
	for i, n := range nodes[:min(len(nodes), shardproto.MaxStandingNodes)] {
		ns := shardproto.NodeStanding{ID: n.ID, Watched: p.Watching(n.ID), State: karma.Unknown.String(), Held: p.Held(n.ID, account)}
		if i < len(earned.Credits) {
			ns.Credit = max(earned.Credits[i], 0)
		}
		if ns.Watched {
			st := p.Standing(n.ID)
			ns.State, ns.KnownEpochs, ns.Strikes = st.State.String(), st.KnownEpochs, len(st.Strikes)
			ns.AuditsPassed, ns.AuditsFailed = min(st.AuditsPassed, 65535), min(st.AuditsFailed, 65535)
			ns.Until = st.Until
			if st.UptimeKnown() {
				ns.Uptime = min(max(st.Uptime, 0), 1)
			}
		}
		out.Nodes = append(out.Nodes, ns)
	}
	return out
}

// Report takes a report that a node deleted a shard it kept
// (shardproto.WithReports): when the provider watches the node and the
// report is evidence (karma.CheckDeletedPart with shardproto.KarmaEvidence:
// the node's own renew receipt and its later failed answer, inside the
// lease and the window), the shard counts as deleted in the current epoch,
// as the provider's own failed audits do. Anyone may carry a report; a
// report about a node the provider does not watch changes nothing.
func (p *Provider) Report(ctx context.Context, r karma.DeletedPart) (string, error) {
	if p.obs == nil {
		return "not watched here: this provider admits every account", nil
	}
	holder := peer.ID(r.Holder)
	if !p.Watching(holder) {
		return "not watched here", nil
	}
	now := p.cfg.Clock()
	if _, err := karma.CheckDeletedPart(r, shardproto.KarmaEvidence{}, now); err != nil {
		return "", fmt.Errorf("%w: %v", shardstore.ErrInvalid, err)
	}
	p.obs.mu.Lock()
	p.obs.obs.Deleted(r.Holder, now, r.Shard)
	p.obs.dirty = true
	p.obs.mu.Unlock()
	p.log.Warn("observer: a report shows a node deleted a shard it kept", "node", holder, "shard", codec.ShardID(r.Shard).Short())
	return "recorded", nil
}

// Accounts seen renewing (shardproto.WithRenewed): an account that only
// renews makes no lookup, and its nodes would stop being needed and be
// dropped with their tallies after a window, to start vetting again at its
// next put. So a renewal refreshes them, at most every seenEvery per
// account, through a queue the shard service never waits on.
const (
	seenQueue = 256
	seenEvery = 6 * time.Hour
	seenKept  = 4096 // accounts remembered for seenEvery
)

// renewSeen queues account; when the queue is full it is dropped (the
// next renewal queues it again).
func (p *Provider) renewSeen(account peer.ID) {
	select {
	case p.seenQ <- seen{account, p.cfg.Clock()}:
	default:
	}
}

// seen is an account seen renewing, and when.
type seen struct {
	account peer.ID
	at      time.Time
}

// seenLoop refreshes the linked nodes of the accounts seen renewing: from
// the admission's cache, or a lookup when it expired (which the lookup
// slots bound, as for puts).
func (p *Provider) seenLoop(ctx context.Context) {
	last := map[peer.ID]time.Time{}
	for {
		var s seen
		select {
		case <-ctx.Done():
			return
		case s = <-p.seenQ:
		}
		// By the renewals' times, not the queue's: a queue served late
		// does not skip a renewal due a refresh.
		account := s.account
		if t, ok := last[account]; ok && s.at.Sub(t) < seenEvery {
			continue
		}
		if len(last) >= seenKept {
			clear(last)
		}
		last[account] = s.at
		_, _, nodes := p.adm.Explain(ctx, account)
		ids := make([]peer.ID, 0, len(nodes))
		for _, n := range nodes {
			ids = append(ids, n.ID)
		}
		if len(ids) > 0 {
			p.obs.watch(ids)
		}
	}
}
