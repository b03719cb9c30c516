package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/markproto"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/timeproto"
)

// Datastore prefixes inside the node's database.
const (
	dhtPrefix       = "/dht"
	highWaterPrefix = "/hwm"
)

// ErrClosed is returned by operations on a closed Node.
var ErrClosed = errors.New("node: closed")

// Node is one running Jellyfish network node: host, DHT, record store and
// republisher. Create it with New and release it with Close.
type Node struct {
	publishMu sync.Mutex // serialises PublishNodeRecord
	cfg       Config
	log       *slog.Logger
	priv      crypto.PrivKey
	store     *Datastore
	records   *recordStore
	validator *record.Validator
	highWater *record.DatastoreHighWater
	host      host.Host
	dht       *dht.IpfsDHT
	repub     *Republisher
	marks     *markproto.Service
	times     *timeproto.Service
	bootstrap []peer.AddrInfo
	punches   *punchCounter

	// runCtx ends when the node closes; cancel ends it. Goroutines the
	// node owns run under it and are counted in wg.
	runCtx context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	attached []io.Closer
	// refreshed is closed when the routing table refresh the last
	// Bootstrap started has ended (nil before any Bootstrap).
	refreshed chan struct{}
}

// New starts a node from cfg: it loads or creates the identity in
// cfg.DataDir, opens the record database, starts the host and the DHT and
// the republisher loop. It does not contact bootstrap peers; call Bootstrap.
// If New fails, everything it started has been stopped. ctx bounds
// construction only; the node lives until Close.
func New(ctx context.Context, cfg Config) (n *Node, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	boot, err := ParseBootstrapAddrs(cfg.BootstrapPeers)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: create data dir: %w", err)
	}

	// undo runs the teardown of everything built so far if New fails.
	var undo []func() error
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				err = errors.Join(err, undo[i]())
			}
		}
	}()

	priv, err := LoadOrCreateIdentity(filepath.Join(cfg.DataDir, IdentityFile))
	if err != nil {
		return nil, err
	}
	store, err := OpenDatastore(filepath.Join(cfg.DataDir, DatastoreDir))
	if err != nil {
		return nil, err
	}
	undo = append(undo, store.Close)

	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("node: identity: %w", err)
	}
	log := cfg.Logger.With("peer", id.String())
	scopes, err := record.NewScopes(cfg.RecordKinds...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	owned := newOwnedRecords()
	dhtStore, err := openRecordStore(ctx, namespace.Wrap(store, ds.NewKey(dhtPrefix)), scopes, cfg.RecordLimits, owned, log)
	if err != nil {
		return nil, err
	}
	markRetain := time.Duration(0)
	if cfg.MarkMargin > 0 {
		markRetain = record.DefaultMaxLifetime + cfg.MarkMargin
	}
	highWater, err := record.OpenDatastoreHighWater(ctx, store, highWaterPrefix, record.MarkPolicy{
		Scopes: scopes,
		Limits: cfg.MarkLimits,
		Admit:  dhtStore.mayMark,
		Retain: markRetain,
		Clock:  cfg.Clock,
	})
	if err != nil {
		return nil, fmt.Errorf("node: open high-water marks: %w", err)
	}
	dhtStore.marks = highWater
	vopts := []record.Option{record.WithClock(cfg.Clock), record.WithHighWater(highWater)}
	for _, k := range cfg.RecordKinds {
		vopts = append(vopts, record.WithKind(k))
	}
	validator, err := record.NewValidator(vopts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}

	punches := &punchCounter{}
	var relayed *relayDirectory
	if cfg.Relays {
		relayed = newRelayDirectory()
	}
	h, err := NewHost(priv, HostConfig{
		PunchTracer:    punches,
		RelayACL:       relayACL(relayed),
		ListenAddrs:    cfg.ListenAddrs,
		AnnounceAddrs:  cfg.AnnounceAddrs,
		PortMapping:    cfg.PortMapping,
		AutoNATService: cfg.AutoNATService,
		HolePunching:   cfg.HolePunching,
		Relays:         cfg.Relays,
		Congestion:     cfg.TCPCongestion,
		Logger:         log,
		ConnLow:        cfg.ConnLow,
		ConnHigh:       cfg.ConnHigh,
		ConnGrace:      cfg.ConnGrace,
		Gater:          cfg.ConnectionGater,
		Limits:         cfg.ResourceLimits,
		ServiceLimits:  append(slices.Clip(cfg.ServiceLimits), markproto.SetServiceLimits, timeproto.SetServiceLimits),
	})
	if err != nil {
		return nil, err
	}
	undo = append(undo, h.Close)
	if relayed != nil {
		relayed.serve(h)
	}
	marks := markproto.NewService(h, highWater)
	undo = append(undo, marks.Close)
	times := timeproto.NewService(h, cfg.Clock)
	undo = append(undo, times.Close)

	d, err := NewDHT(h, DHTConfig{
		Mode:           cfg.Mode,
		Validator:      validator,
		Store:          dhtStore,
		MaxRecordAge:   cfg.MaxRecordAge,
		BootstrapPeers: boot,
		Extra:          cfg.DHTOptions,
	})
	if err != nil {
		return nil, err
	}
	undo = append(undo, d.Close)
	repub, err := NewRepublisher(d, dhtStore, validator, cfg.RepublishInterval, log, withOwned(owned))
	if err != nil {
		return nil, err
	}

	runCtx, cancel := context.WithCancel(context.Background())
	n = &Node{
		cfg:       cfg,
		log:       log,
		priv:      priv,
		store:     store,
		records:   dhtStore,
		validator: validator,
		highWater: highWater,
		host:      h,
		dht:       d,
		repub:     repub,
		marks:     marks,
		times:     times,
		bootstrap: boot,
		punches:   punches,
		runCtx:    runCtx,
		cancel:    cancel,
	}
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		n.repub.Run(runCtx)
	}()
	go func() {
		defer n.wg.Done()
		n.pruneMarksLoop(runCtx)
	}()
	n.log.Info("node started", "mode", cfg.Mode, "addrs", h.Addrs(), "datadir", cfg.DataDir)
	return n, nil
}

// ID returns the node's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Host returns the libp2p host, for services the caller attaches.
func (n *Node) Host() host.Host { return n.host }

// DHT returns the Kademlia DHT.
func (n *Node) DHT() *dht.IpfsDHT { return n.dht }

// Validator returns the record validator the DHT uses.
func (n *Node) Validator() *record.Validator { return n.validator }

// PrivateKey returns the node's identity key, for services that sign as
// the node (receipts, node records).
func (n *Node) PrivateKey() crypto.PrivKey { return n.priv }

// Republisher returns the node's republisher.
func (n *Node) Republisher() *Republisher { return n.repub }

// Logger returns the node's logger.
func (n *Node) Logger() *slog.Logger { return n.log }

// Addrs returns the node's listen addresses with /p2p/<ID> appended, ready
// to be used as bootstrap addresses by others.
func (n *Node) Addrs() []ma.Multiaddr {
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()})
	if err != nil {
		return nil
	}
	return addrs
}

// Bootstrap connects to the configured bootstrap peers and fills the
// routing table, within Config.BootstrapTimeout: by a refresh in the
// background, or with Config.BootstrapSelfLookup by one lookup of the
// node's own ID that Bootstrap waits for. See the package-level Bootstrap
// for the errors.
func (n *Node) Bootstrap(ctx context.Context) error {
	refreshing, err := bootstrap(ctx, n.host, n.dht, n.bootstrap, n.cfg.BootstrapTimeout, n.log, n.cfg.BootstrapSelfLookup)
	done := make(chan struct{})
	n.mu.Lock()
	defer n.mu.Unlock()
	n.refreshed = done
	if refreshing == nil || n.closed {
		close(done)
		return err
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(done)
		select {
		case <-refreshing:
		case <-n.runCtx.Done():
		}
	}()
	return err
}

// Refreshed waits until the routing table refresh the last Bootstrap
// started has ended (at once when it started none, or before any
// Bootstrap), or ctx ends. A table being refilled lacks most of the
// peers a walk of the key space starts from.
func (n *Node) Refreshed(ctx context.Context) error {
	n.mu.Lock()
	done := n.refreshed
	n.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Attach hands c to the node to be closed by Close, before the DHT and the
// host, in reverse order of attachment. Attaching to a closed node closes c
// at once and returns ErrClosed.
func (n *Node) Attach(c io.Closer) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return errors.Join(ErrClosed, c.Close())
	}
	n.attached = append(n.attached, c)
	n.mu.Unlock()
	return nil
}

// PutRecord validates value, stores it in the DHT and remembers it as owned
// by this node so the republisher keeps re-putting it until it expires.
func (n *Node) PutRecord(ctx context.Context, key string, value []byte) error {
	if _, err := n.validator.Check(key, value); err != nil {
		return fmt.Errorf("node: put %q: %w", key, err)
	}
	n.repub.Own(key, value)
	if err := n.dht.PutValue(ctx, key, value); err != nil {
		return fmt.Errorf("node: put %q: %w", key, err)
	}
	return nil
}

// PutRecordConfirmed is PutRecord followed by remote confirmation; see the
// package-level PutRecordConfirmed. It returns the number of remote peers
// that confirmed.
func (n *Node) PutRecordConfirmed(ctx context.Context, key string, value []byte, minRemote int) (int, error) {
	if _, err := n.validator.Check(key, value); err != nil {
		return 0, fmt.Errorf("node: put %q: %w", key, err)
	}
	n.repub.Own(key, value)
	return PutRecordConfirmed(ctx, n.dht, n.validator, key, value, minRemote)
}

// GetRecord fetches the best record for key from the DHT and returns it
// decoded and validated, with its encoding.
func (n *Node) GetRecord(ctx context.Context, key string) (*record.Record, []byte, error) {
	value, err := n.dht.GetValue(ctx, key)
	if err != nil {
		return nil, nil, fmt.Errorf("node: get %q: %w", key, err)
	}
	r, err := n.validator.Check(key, value)
	if err != nil {
		return nil, nil, fmt.Errorf("node: get %q: %w", key, err)
	}
	return r, value, nil
}

// Mark returns this node's own high-water mark of key: the highest
// sequence number it has seen in a valid record there, 0 if none.
func (n *Node) Mark(key string) (uint64, error) { return n.highWater.Seen(key) }

// PeerMarks asks the peers closest to key (this node excluded) for their
// high-water marks of key (protocol markproto), all at once, and returns
// the marks of those that answered. Marks outlive records: a peer that
// stopped serving an expired record still remembers its sequence number.
// Each mark is one peer's unverified word.
func (n *Node) PeerMarks(ctx context.Context, key string) (map[peer.ID]uint64, error) {
	peers, err := n.dht.GetClosestPeers(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("node: marks of %q: find closest peers: %w", key, err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		marks = map[peer.ID]uint64{}
	)
	for _, p := range peers {
		if p == n.ID() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := markproto.Query(ctx, n.host, p, key)
			if err != nil {
				n.log.Debug("no mark from peer", "peer", p.String(), "key", key, "err", err)
				return
			}
			mu.Lock()
			marks[p] = m
			mu.Unlock()
		}()
	}
	wg.Wait()
	return marks, ctx.Err()
}

// StoreStats is what the node keeps for the DHT: its records and its
// high-water marks, each counted per kind, with the new keys refused
// since the node started because a limit was reached.
type StoreStats struct {
	Records, Marks record.QuotaStats
}

// StoreStats counts the records and marks the node keeps now.
func (n *Node) StoreStats() StoreStats {
	return StoreStats{Records: n.records.Stats(), Marks: n.highWater.Stats()}
}

// PruneMarks deletes the high-water marks that protect nothing any more
// (record.DatastoreHighWater.Prune): those of kinds that do not keep
// their marks, last raised more than record.DefaultMaxLifetime plus
// Config.MarkMargin ago. The node runs it every day.
func (n *Node) PruneMarks(ctx context.Context) (record.PruneStats, error) {
	return n.highWater.Prune(ctx)
}

// Mark pruning runs markPruneFirst after the node starts, then every
// markPruneInterval.
const (
	markPruneFirst    = 5 * time.Minute
	markPruneInterval = 24 * time.Hour
)

func (n *Node) pruneMarksLoop(ctx context.Context) {
	if n.cfg.MarkMargin < 0 {
		return
	}
	t := time.NewTimer(markPruneFirst)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := n.PruneMarks(ctx)
		if err != nil && ctx.Err() == nil {
			n.log.Warn("pruning high-water marks failed", "err", err)
		}
		if err == nil {
			q := n.highWater.Stats()
			n.log.Info("pruned high-water marks", "kept", st.Kept, "pruned", st.Pruned, "stamped", st.Stamped,
				"marks", q.Keys, "refused_since_start", q.Refused)
		}
		t.Reset(markPruneInterval)
	}
}

// clockPeers is how many peers ClockOffset asks.
const clockPeers = 7

// ClockOffset estimates how far the network's clocks are ahead of local
// (timeproto.Estimate): it asks up to seven peers of the routing table
// and connected peers for their time and returns the median offset and
// the samples. It fails when fewer than three answered.
func (n *Node) ClockOffset(ctx context.Context, local func() time.Time) (time.Duration, []timeproto.Sample, error) {
	peers := n.host.Network().Peers()
	for _, p := range n.dht.RoutingTable().ListPeers() {
		if !slices.Contains(peers, p) {
			peers = append(peers, p)
		}
	}
	return timeproto.Estimate(ctx, n.host, peers, clockPeers, local)
}

// NodeInfo reads the node record of id and decodes its body: what the
// node says of itself (owner, tier, addresses), signed by its own key. It
// is one walk to the peers closest to the record's key (ReadRecord), done
// once nodeInfoQuorum of them answered and the grace after: a listing of
// the providers reads one per provider at once.
func (n *Node) NodeInfo(ctx context.Context, id peer.ID) (record.NodeInfo, *record.Record, error) {
	var info record.NodeInfo
	key := record.NodeKey(id)
	rd, err := n.ReadRecord(ctx, key, nodeInfoQuorum)
	rec := rd.Record
	if rec == nil {
		if err == nil {
			err = routing.ErrNotFound
		}
		return info, nil, fmt.Errorf("node: get %q: %w", key, err)
	}
	if err := info.Unmarshal(rec.Body); err != nil {
		return info, nil, fmt.Errorf("node: node record of %s: %w", id.ShortString(), err)
	}
	return info, rec, nil
}

// IsRelayed reports whether a is an address through a relay
// (…/p2p/RELAY/p2p-circuit).
func IsRelayed(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// nodeInfoQuorum is how many of the closest peers' answers a node
// record's read waits for (then the grace): the node re-signs its record
// rarely and alone, so a few answers hold its newest.
const nodeInfoQuorum = 3

// NodeRecordLifetime is how long a node record published by
// PublishNodeRecord stays valid without being re-signed.
const NodeRecordLifetime = 30 * 24 * time.Hour

// PublishNodeRecord signs this node's record with info and puts it. The
// sequence number is the current time in milliseconds, or one more than
// the highest seen if that is larger, so a new record always wins.
func (n *Node) PublishNodeRecord(ctx context.Context, info record.NodeInfo) ([]byte, error) {
	body, err := info.Marshal()
	if err != nil {
		return nil, err
	}
	key := record.NodeKey(n.ID())
	// Choosing the sequence number and storing the record happen under one
	// lock: two concurrent publications would otherwise race, and the one
	// with the lower number would be refused as stale.
	n.publishMu.Lock()
	defer n.publishMu.Unlock()
	now := n.validator.Now()
	seq := uint64(now.UnixMilli())
	seen, err := n.highWater.Seen(key)
	if err != nil {
		return nil, fmt.Errorf("node: publish node record: %w", err)
	}
	if seen >= seq {
		seq = seen + 1
	}
	rec := record.Record{Kind: record.KindNode, Seq: seq, Expires: now.Add(NodeRecordLifetime), Body: body}
	value, err := rec.Sign(key, n.priv)
	if err != nil {
		return nil, err
	}
	return value, n.PutRecord(ctx, key, value)
}

// Close stops the republisher, closes attached services, the DHT, the host
// and the record database, in that order, and returns every error joined.
// It is safe to call more than once; later calls return nil.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	attached := n.attached
	n.attached = nil
	n.mu.Unlock()

	n.cancel()
	n.wg.Wait()
	var errs []error
	for i := len(attached) - 1; i >= 0; i-- {
		if err := attached[i].Close(); err != nil {
			errs = append(errs, fmt.Errorf("node: close attached service: %w", err))
		}
	}
	if err := n.marks.Close(); err != nil {
		errs = append(errs, fmt.Errorf("node: close mark service: %w", err))
	}
	if err := n.times.Close(); err != nil {
		errs = append(errs, fmt.Errorf("node: close time service: %w", err))
	}
	if err := n.dht.Close(); err != nil {
		errs = append(errs, fmt.Errorf("node: close DHT: %w", err))
	}
	if err := n.host.Close(); err != nil {
		errs = append(errs, fmt.Errorf("node: close host: %w", err))
	}
	if err := n.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("node: close datastore: %w", err))
	}
	n.log.Info("node closed")
	return errors.Join(errs...)
}
