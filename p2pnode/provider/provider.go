package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// ShardsDir is the folder of the shard store inside a node's data dir.
const ShardsDir = "shards"

// Defaults of the node record loop.
const (
	// DefaultPublishInterval is how often the node record is re-signed
	// and re-put: far inside node.NodeRecordLifetime (30 days), so a node
	// that stays up never lets its record expire, and often enough that a
	// changed address spreads within a day.
	DefaultPublishInterval = 12 * time.Hour
	// DefaultPublishRetry is the first delay after a failed publish (for
	// example the first node of a network, which has nobody to put to);
	// it doubles up to DefaultPublishInterval.
	DefaultPublishRetry = 500 * time.Millisecond
	// publishTimeout bounds one publish attempt.
	publishTimeout = time.Minute

	// DefaultCollectGrace is how long a shard is kept after the last of
	// its owners' leases ended: an owner whose renewals failed (its device
	// was away, this node was down) can still renew it until then.
	DefaultCollectGrace = 30 * 24 * time.Hour
	// DefaultCollectInterval is the period of shard collection rounds.
	DefaultCollectInterval = 6 * time.Hour
)

// NodeConfig returns cfg ready for a Jellyfish provider node: every
// account record kind (account.RecordKinds) when RecordKinds is empty, and
// the shard protocol's resource limits added to ServiceLimits.
func NodeConfig(cfg node.Config) node.Config {
	if len(cfg.RecordKinds) == 0 {
		cfg.RecordKinds = account.RecordKinds()
	}
	cfg.ServiceLimits = append(cfg.ServiceLimits, shardproto.SetServiceLimits)
	return cfg
}

// Config is what Attach needs. DataDir is required.
type Config struct {
	// DataDir is the node's data dir; the store lives in DataDir/shards.
	DataDir string
	// Tier is the offered space: 2^Tier GiB, in [0, shardstore.MaxTier].
	Tier int
	// QuotaBytes, if positive, replaces the tier's quota by an exact
	// byte count (tests); the node record then still names Tier.
	QuotaBytes int64
	// Owner is the owning account's ID (its identity peer ID bytes), or
	// nil for a node not linked to an account.
	Owner []byte
	// PublishInterval is the period of node record re-publication; zero
	// means DefaultPublishInterval. It must stay below
	// node.NodeRecordLifetime.
	PublishInterval time.Duration
	// FirstPublish is how long after Attach the record loop first
	// publishes; zero publishes at once. A test network that publishes
	// every node record itself once all its nodes are up
	// (Fleet.PublishAll) sets it beyond the test, so the records do not
	// go first to whichever few nodes were up at each start.
	FirstPublish time.Duration
	// Clock is the store's, the service's and collection's time source;
	// nil means the node's clock (node.Config.Clock, the one its record
	// validator reads).
	Clock shardstore.Clock
	// CollectGrace is how long after an owner's lease ended its reference
	// is dropped; a shard left without references is deleted. Zero means
	// DefaultCollectGrace; it must not be negative.
	CollectGrace time.Duration
	// CollectInterval is the period of collection rounds, the first one
	// interval after Attach. Zero means DefaultCollectInterval; negative
	// disables the loop (Collect still works).
	CollectInterval time.Duration
	// ClockInDoubt, if set, holds collection while it reports true (the
	// network's clocks are more than timeproto.MaxCorrection from Clock:
	// timeproto.Corrected.InDoubt). A clock a year ahead would otherwise
	// find every lease ended and delete every shard, and deleting is the
	// one thing a provider cannot take back.
	ClockInDoubt func() bool
	// Admission is the admission policy: what each account may store
	// here. The zero value enforces it with its defaults; AdmitAll turns
	// it off (and the observer with it).
	Admission AdmissionConfig
	// ObserveInterval is the period of observation rounds (Observe): the
	// probes and audits of the nodes linked to accounts storing here. Zero
	// means DefaultObserveInterval; negative disables the loop (Observe
	// still works).
	ObserveInterval time.Duration
	// StoreOptions and ServiceOptions are appended to the provider's own.
	StoreOptions   []shardstore.Option
	ServiceOptions []shardproto.Option
	// Logger defaults to the node's logger.
	Logger *slog.Logger
}

// Provider is the provider side of a node: its shard store, the shard
// protocol service, the node record loop and the collection loop. Attach creates it; Close (or
// closing the node) stops it.
type Provider struct {
	n     *node.Node
	cfg   Config
	log   *slog.Logger
	store *shardstore.Disk
	svc   *shardproto.Service
	adm   *Admission // nil when admitting all
	obs   *observer  // nil when admitting all
	seenQ chan seen  // accounts seen renewing, for the observer

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	published chan struct{} // closed after the first successful publish

	mu         sync.Mutex
	closed     bool
	lastPub    time.Time
	published1 bool
	collected  Collections
}

// Collections is what the collection rounds did since Attach.
type Collections struct {
	// Rounds counts the rounds run (Collect calls), Failed those that
	// stopped early on an error.
	Rounds, Failed int
	// Total sums what every round dropped and removed.
	Total shardstore.GCStats
	// Last is the last round's: when it began (the provider's clock), how
	// long it took, what it dropped and removed, and its error if it
	// stopped early. Last.At is zero before the first round.
	Last CollectRound
}

// CollectRound is one collection round.
type CollectRound struct {
	At    time.Time
	Took  time.Duration
	Stats shardstore.GCStats
	Err   error
}

// Attach opens the shard store, registers the shard protocol on n's host,
// starts the node record loop (its first publish is attempted at once, in
// the background, and retried until it succeeds) and attaches the
// provider to n so n.Close closes it. If Attach fails nothing it started is
// left running. ctx bounds Attach itself, not the provider's life.
func Attach(ctx context.Context, n *node.Node, cfg Config) (*Provider, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.DataDir == "" {
		return nil, errors.New("provider: DataDir is empty")
	}
	if cfg.Tier < 0 || cfg.Tier > shardstore.MaxTier || cfg.Tier > record.MaxTier {
		return nil, fmt.Errorf("provider: tier %d outside [0, %d]", cfg.Tier, shardstore.MaxTier)
	}
	if len(cfg.Owner) > record.MaxOwnerSize {
		return nil, fmt.Errorf("provider: owner of %d bytes exceeds %d", len(cfg.Owner), record.MaxOwnerSize)
	}
	if cfg.PublishInterval == 0 {
		cfg.PublishInterval = DefaultPublishInterval
	}
	if cfg.PublishInterval < 0 || cfg.PublishInterval >= node.NodeRecordLifetime {
		return nil, fmt.Errorf("provider: publish interval %v not inside the node record lifetime %v", cfg.PublishInterval, node.NodeRecordLifetime)
	}
	if cfg.FirstPublish < 0 {
		return nil, fmt.Errorf("provider: first publish delay %v is negative", cfg.FirstPublish)
	}
	if cfg.CollectGrace == 0 {
		cfg.CollectGrace = DefaultCollectGrace
	}
	if cfg.CollectGrace < 0 {
		return nil, fmt.Errorf("provider: collect grace %v is negative", cfg.CollectGrace)
	}
	if cfg.CollectInterval == 0 {
		cfg.CollectInterval = DefaultCollectInterval
	}
	var own peer.ID
	var ownOwner *shardstore.Owner
	if len(cfg.Owner) > 0 {
		// The owner account's ID names its identity key: the key its
		// puts are signed with.
		own = peer.ID(cfg.Owner)
		if pk, err := own.ExtractPublicKey(); err == nil {
			if o, err := shardproto.OwnerOf(pk); err == nil {
				ownOwner = &o
			}
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = n.Logger()
	}
	if cfg.Clock == nil {
		cfg.Clock = n.Validator().Now
	}
	sopts := []shardstore.Option{}
	if cfg.QuotaBytes > 0 {
		sopts = append(sopts, shardstore.WithQuotaBytes(cfg.QuotaBytes))
	} else {
		sopts = append(sopts, shardstore.WithTier(cfg.Tier))
	}
	sopts = append(sopts, shardstore.WithClock(cfg.Clock))
	vopts := []shardproto.Option{shardproto.WithClock(cfg.Clock)}
	sopts = append(sopts, cfg.StoreOptions...)
	vopts = append(vopts, cfg.ServiceOptions...)

	store, err := shardstore.New(filepath.Join(cfg.DataDir, ShardsDir), sopts...)
	if err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	if cfg.ObserveInterval == 0 {
		cfg.ObserveInterval = DefaultObserveInterval
	}
	p := &Provider{n: n, cfg: cfg, log: cfg.Logger, store: store, published: make(chan struct{})}
	var adm *Admission
	if !cfg.Admission.AdmitAll {
		if p.obs, err = newObserver(p); err != nil {
			return nil, errors.Join(err, store.Close())
		}
		adm, err = NewAdmission(cfg.Admission, store.Usage().Quota, own, LinkLookup(n, p.obs.watch), p.obs.standing, cfg.Clock)
		if err != nil {
			return nil, errors.Join(err, store.Close())
		}
		adm.SetHeld(p.Held)
		if ownOwner != nil {
			store.AssignGroup(*ownOwner, GroupOwn)
		}
		vopts = append(vopts, shardproto.WithAdmission(adm.Allowance), shardproto.WithStanding(p.AccountStanding), shardproto.WithReports(p.Report),
			shardproto.WithHoldings(p.Holdings), shardproto.WithRenewed(p.renewSeen))
		p.seenQ = make(chan seen, seenQueue)
	}
	svc, err := shardproto.NewService(n.Host(), store, vopts...)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("provider: %w", err), store.Close())
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p.svc, p.adm, p.cancel = svc, adm, cancel
	if err := n.Attach(p); err != nil {
		// Attach closed p already (the node is closed).
		return nil, fmt.Errorf("provider: %w", err)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.run(runCtx)
	}()
	if cfg.CollectInterval > 0 {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.collectLoop(runCtx)
		}()
	}
	if p.obs != nil {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.seenLoop(runCtx)
		}()
	}
	if p.obs != nil && cfg.ObserveInterval > 0 {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.observeLoop(runCtx, cfg.ObserveInterval)
		}()
	}
	attrs := []any{"tier", cfg.Tier, "quota_bytes", store.Usage().Quota, "shards_dir", filepath.Join(cfg.DataDir, ShardsDir), "linked", len(cfg.Owner) > 0,
		"collect_grace", cfg.CollectGrace.String(), "collect_interval", cfg.CollectInterval.String()}
	if adm == nil {
		attrs = append(attrs, "admission", "all")
	} else {
		ac := adm.Config()
		attrs = append(attrs, "admission", "enforced", "starter_bytes", ac.StarterBytes, "starter_share", ac.StarterShare, "sharing_share", ac.SharingShare)
	}
	p.log.Info("provider started", attrs...)
	return p, nil
}

// Node returns the node the provider is attached to.
func (p *Provider) Node() *node.Node { return p.n }

// Store returns the provider's shard store.
func (p *Provider) Store() *shardstore.Disk { return p.store }

// Admission returns the admission policy, or nil when the provider
// admits every account up to its quota.
func (p *Provider) Admission() *Admission { return p.adm }

// Service returns the shard protocol service.
func (p *Provider) Service() *shardproto.Service { return p.svc }

// Info returns the node record body the provider publishes: owner, tier
// and the node's current public addresses (loopback ones included, so
// in-process networks work).
func (p *Provider) Info() record.NodeInfo {
	addrs := p.n.Host().Addrs()
	out := make([]ma.Multiaddr, 0, min(len(addrs), record.MaxNodeAddrs))
	// Routable addresses first, so the cap drops the least useful ones.
	for _, pass := range []bool{false, true} {
		for _, a := range addrs {
			if manet.IsIPLoopback(a) == pass && len(out) < record.MaxNodeAddrs {
				out = append(out, a)
			}
		}
	}
	return record.NodeInfo{Owner: p.cfg.Owner, Tier: uint8(p.cfg.Tier), Addrs: out}
}

// Publish signs and puts the node record now. The loop calls it; tests and
// commands call it to publish at a moment of their choosing (for example
// once a whole test network is up).
func (p *Provider) Publish(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if _, err := p.n.PublishNodeRecord(ctx, p.Info()); err != nil {
		return fmt.Errorf("provider: publish node record: %w", err)
	}
	p.mu.Lock()
	if !p.published1 {
		p.published1 = true
		close(p.published)
	}
	p.mu.Unlock()
	return nil
}

// Published is closed once the node record has been published at least
// once.
func (p *Provider) Published() <-chan struct{} { return p.published }

// run publishes the node record after FirstPublish and every
// PublishInterval after a success, retrying failures with a doubling
// delay, and soon (addrsSettle) after the host's addresses change: a
// node that found itself behind a NAT and took relay reservations gives
// new addresses, which placement and clients read from the record.
func (p *Provider) run(ctx context.Context) {
	var changed <-chan any
	if sub, err := p.n.Host().EventBus().Subscribe(new(event.EvtLocalAddressesUpdated)); err == nil {
		defer sub.Close()
		changed = sub.Out()
	}
	if p.cfg.FirstPublish > 0 {
		t := time.NewTimer(p.cfg.FirstPublish)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	retry := DefaultPublishRetry
	for {
		wait := p.cfg.PublishInterval
		published := p.Info().Addrs
		if err := p.Publish(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			p.log.Debug("node record not published yet, will retry", "in", retry, "err", err)
			wait = retry
			retry = min(2*retry, p.cfg.PublishInterval)
		} else {
			retry = DefaultPublishRetry
			p.log.Debug("node record published", "addrs", len(published), "relayed", relayedAddrs(published), "next_in", wait)
		}
		t := time.NewTimer(wait)
	waiting:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
				break waiting
			case <-changed:
				// Events come in bursts; publish once they settle, and
				// only if what the record would say changed.
				if !slices.EqualFunc(published, p.Info().Addrs, ma.Multiaddr.Equal) {
					t.Reset(addrsSettle)
				}
			}
		}
	}
}

func relayedAddrs(addrs []ma.Multiaddr) int {
	n := 0
	for _, a := range addrs {
		if node.IsRelayed(a) {
			n++
		}
	}
	return n
}

// addrsSettle is how long after its addresses change a provider publishes
// its node record again.
const addrsSettle = 5 * time.Second

// Collect runs one collection round now: every owner reference whose
// lease ended at least CollectGrace ago (by the provider's clock) is
// dropped, and every shard left without one is deleted. A shard any owner
// renewed, or whose lease ended less than the grace ago, stays. The round
// is logged (msg="shard collection") with what it dropped and freed. It is
// held, deleting nothing and failing with ErrClockInDoubt, while
// Config.ClockInDoubt reports true.
func (p *Provider) Collect(ctx context.Context) (shardstore.GCStats, error) {
	start := time.Now()
	now := p.cfg.Clock()
	if p.cfg.ClockInDoubt != nil && p.cfg.ClockInDoubt() {
		p.mu.Lock()
		p.collected.Rounds++
		p.collected.Failed++
		p.collected.Last = CollectRound{At: now, Err: ErrClockInDoubt}
		p.mu.Unlock()
		p.log.Error("shard collection held: the network's clocks are more than a month from this machine's, so no lease is judged ended; set this machine's clock right")
		return shardstore.GCStats{}, fmt.Errorf("provider: collect: %w", ErrClockInDoubt)
	}
	st, err := p.store.GC(ctx, now.Add(-p.cfg.CollectGrace))
	p.mu.Lock()
	c := &p.collected
	c.Rounds++
	if err != nil {
		c.Failed++
	}
	c.Total.Refs += st.Refs
	c.Total.Shards += st.Shards
	c.Total.Bytes += st.Bytes
	c.Last = CollectRound{At: now, Took: time.Since(start), Stats: st, Err: err}
	p.mu.Unlock()
	u := p.store.Usage()
	attrs := []any{"refs_dropped", st.Refs, "shards_removed", st.Shards, "bytes_freed", st.Bytes,
		"shards_held", u.Shards, "bytes_used", u.Used, "grace", p.cfg.CollectGrace.String(),
		"took", time.Since(start).Round(time.Millisecond).String()}
	if err != nil {
		p.log.Warn("shard collection stopped early", append(attrs, "err", err)...)
		return st, fmt.Errorf("provider: collect: %w", err)
	}
	p.log.Info("shard collection", attrs...)
	return st, nil
}

// ErrClockInDoubt is why a collection round was held: Config.ClockInDoubt.
var ErrClockInDoubt = errors.New("collection held while the clock is in doubt")

// Collections returns what the collection rounds did since Attach.
func (p *Provider) Collections() Collections {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.collected
}

// every runs round every interval, the first one interval from now, until
// ctx ends. A round's error has been logged by the round itself.
func every(ctx context.Context, interval time.Duration, round func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := round(ctx); err != nil && ctx.Err() != nil {
			return
		}
	}
}

// collectLoop runs Collect every CollectInterval, starting one interval
// after Attach: a node back from a long outage gives owners whose
// renewals failed meanwhile that long to renew before anything goes.
func (p *Provider) collectLoop(ctx context.Context) {
	every(ctx, p.cfg.CollectInterval, func(ctx context.Context) error {
		_, err := p.Collect(ctx)
		return err
	})
}

// Drain stops the shard service taking requests and lets those being
// served finish until ctx ends (shardproto.Service.Drain); the node record
// and collection loops and the store stay up until Close. A node shutting
// down calls Drain, then closes the node.
func (p *Provider) Drain(ctx context.Context) error {
	if err := p.svc.Drain(ctx); err != nil {
		return fmt.Errorf("provider: %w", err)
	}
	return nil
}

// Close stops the record and collection loops, the shard protocol service
// and the store, in that order. It is safe to call more than once; node.Close calls it.
func (p *Provider) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	var saveErr error
	if p.obs != nil {
		saveErr = p.obs.maybeSave(true)
	}
	return errors.Join(saveErr, p.svc.Close(), p.store.Close())
}
