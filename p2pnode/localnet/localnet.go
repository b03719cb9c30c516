package localnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"golang.org/x/sync/errgroup"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// Options tune a Network. The zero value is usable.
type Options struct {
	// Logger receives every node's logs, tagged with its index; nil
	// discards them.
	Logger *slog.Logger
	// Clock is handed to every node's record validator; nil means time.Now.
	Clock record.Clock
	// RepublishInterval and MaxRecordAge are passed to every node; zero
	// keeps the node defaults.
	RepublishInterval time.Duration
	MaxRecordAge      time.Duration
	// MinRoutingTable is the routing table size every node must reach
	// before Start returns; zero means min(n-1, 10).
	MinRoutingTable int
	// Parallel bounds how many nodes start at once; zero means 8.
	Parallel int
	// TCPOnly makes every node listen on TCP alone, without QUIC. In one
	// process QUIC costs far more CPU per connection than TCP (quic-go
	// runs its packet loop, loss recovery and TLS in user space, where the
	// kernel carries a loopback TCP connection), which decides how many
	// nodes a few cores can start.
	TCPOnly bool
	// BootstrapFanout, if positive, bootstraps each node after node 0 to
	// that many nodes picked at random among those already started,
	// instead of to node 0 alone: with hundreds of nodes, node 0 would
	// otherwise take every joining node's handshakes and first lookups.
	BootstrapFanout int
	// Configure, if set, may change node i's config before it starts
	// (after the network filled in data dir, addresses, bootstrap peers
	// and gater).
	Configure func(i int, cfg *node.Config)
	// OnStart, if set, runs after node i started, on the first start and
	// after every Restart; it attaches extra services, typically with
	// n.Attach so they close with the node. An error fails the start.
	OnStart func(ctx context.Context, i int, n *node.Node) error
}

// Network is a set of in-process nodes. Its methods are safe for
// concurrent use.
type Network struct {
	dir  string
	opts Options
	log  *slog.Logger

	mu    sync.Mutex
	slots []*slot
}

// slot is one node position: it keeps the identity, data directory, ports
// and gater across Kill and Restart.
type slot struct {
	dir    string
	gater  *gater
	id     peer.ID
	listen []ma.Multiaddr
	node   *node.Node // nil while killed
}

// loopbackListen are the addresses of a node's first start;
// loopbackTCP those with Options.TCPOnly.
var (
	loopbackListen = []ma.Multiaddr{
		ma.StringCast("/ip4/127.0.0.1/tcp/0"),
		ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1"),
	}
	loopbackTCP = loopbackListen[:1:1]
)

// firstListen returns the addresses of a node's first start.
func (o Options) firstListen() []ma.Multiaddr {
	if o.TCPOnly {
		return loopbackTCP
	}
	return loopbackListen
}

// Start starts n nodes with data directories dir/node-<i>: node 0 first,
// then the others bootstrapped to node 0 (or, with
// Options.BootstrapFanout, to random nodes already up), and returns once
// every routing table holds Options.MinRoutingTable peers. On error every
// node started is closed again.
func Start(ctx context.Context, dir string, n int, opts Options) (_ *Network, err error) {
	if n < 1 {
		return nil, fmt.Errorf("localnet: need at least one node, got %d", n)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 8
	}
	if opts.MinRoutingTable <= 0 {
		opts.MinRoutingTable = min(n-1, 10)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("localnet: %w", err)
	}
	nw := &Network{dir: dir, opts: opts, log: opts.Logger}
	for i := range n {
		nw.slots = append(nw.slots, &slot{dir: filepath.Join(dir, fmt.Sprintf("node-%d", i)), gater: newGater(), listen: opts.firstListen()})
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, nw.Close())
		}
	}()

	if err := nw.startSlot(ctx, 0, nil); err != nil {
		return nil, err
	}
	boot := nw.slots[0].node.Addrs()
	up := newStarted(boot)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Parallel)
	for i := 1; i < n; i++ {
		g.Go(func() error {
			b := boot
			if opts.BootstrapFanout > 0 {
				b = up.pick(opts.BootstrapFanout)
			}
			if err := nw.startSlot(gctx, i, b); err != nil {
				return err
			}
			up.add(nw.Node(i).Addrs())
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := nw.WaitRoutingTables(ctx, opts.MinRoutingTable); err != nil {
		return nil, err
	}
	return nw, nil
}

// startSlot starts the node of slot i, bootstraps it to boot and runs
// OnStart. It tries the slot's previous ports first and random ports if
// those are taken.
func (nw *Network) startSlot(ctx context.Context, i int, boot []ma.Multiaddr) error {
	nw.mu.Lock()
	s := nw.slots[i]
	listen := s.listen
	nw.mu.Unlock()

	cfg := node.Config{
		DataDir:           s.dir,
		ListenAddrs:       listen,
		BootstrapPeers:    boot,
		Logger:            nw.log.With("node", i),
		Clock:             nw.opts.Clock,
		RepublishInterval: nw.opts.RepublishInterval,
		MaxRecordAge:      nw.opts.MaxRecordAge,
		ConnectionGater:   s.gater,
		BootstrapTimeout:  30 * time.Second,
	}
	if nw.opts.Configure != nil {
		nw.opts.Configure(i, &cfg)
	}
	n, err := node.New(ctx, cfg)
	if first := nw.opts.firstListen(); err != nil && !sameAddrs(cfg.ListenAddrs, first) {
		nw.log.Info("previous ports unavailable, using new ones", "node", i, "err", err)
		cfg.ListenAddrs = first
		n, err = node.New(ctx, cfg)
	}
	if err != nil {
		return fmt.Errorf("localnet: start node %d: %w", i, err)
	}
	if err := n.Bootstrap(ctx); err != nil {
		return errors.Join(fmt.Errorf("localnet: node %d: %w", i, err), n.Close())
	}
	if nw.opts.OnStart != nil {
		if err := nw.opts.OnStart(ctx, i, n); err != nil {
			return errors.Join(fmt.Errorf("localnet: node %d: start services: %w", i, err), n.Close())
		}
	}
	nw.mu.Lock()
	s.node = n
	s.id = n.ID()
	s.listen = boundLoopback(n, nw.opts.firstListen())
	nw.mu.Unlock()
	return nil
}

// boundLoopback returns the node's concrete loopback listen addresses, to
// reuse its ports on restart, or first if it has none.
func boundLoopback(n *node.Node, first []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range n.Host().Network().ListenAddresses() {
		if manet.IsIPLoopback(a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return first
	}
	return out
}

// started collects the addresses of the nodes Start has started, for
// bootstrapping later ones to random earlier ones.
type started struct {
	mu    sync.Mutex
	rng   *rand.Rand
	addrs [][]ma.Multiaddr
}

func newStarted(first []ma.Multiaddr) *started {
	return &started{rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), addrs: [][]ma.Multiaddr{first}}
}

func (s *started) add(addrs []ma.Multiaddr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addrs = append(s.addrs, addrs)
}

// pick returns the addresses of k distinct started nodes chosen at random
// (all of them if fewer have started).
func (s *started) pick(k int) []ma.Multiaddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ma.Multiaddr
	for _, j := range s.rng.Perm(len(s.addrs))[:min(k, len(s.addrs))] {
		out = append(out, s.addrs[j]...)
	}
	return out
}

func sameAddrs(a, b []ma.Multiaddr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// Len returns the number of node slots, live or killed.
func (nw *Network) Len() int {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return len(nw.slots)
}

// Dir returns the network's base directory.
func (nw *Network) Dir() string { return nw.dir }

// Node returns node i, or nil while it is killed.
func (nw *Network) Node(i int) *node.Node {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return nw.slots[i].node
}

// ID returns the peer ID of slot i; it stays the same across restarts.
func (nw *Network) ID(i int) peer.ID {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return nw.slots[i].id
}

// Live returns the indexes of the nodes that are running.
func (nw *Network) Live() []int {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	var out []int
	for i, s := range nw.slots {
		if s.node != nil {
			out = append(out, i)
		}
	}
	return out
}

// Kill closes node i at once: its connections drop, its goroutines stop
// and its database is closed. Nothing is flushed beyond what every write
// already synced. Killing a killed node is a no-op.
func (nw *Network) Kill(i int) error {
	nw.mu.Lock()
	n := nw.slots[i].node
	nw.slots[i].node = nil
	nw.mu.Unlock()
	if n == nil {
		return nil
	}
	if err := n.Close(); err != nil {
		return fmt.Errorf("localnet: kill node %d: %w", i, err)
	}
	return nil
}

// Restart starts killed node i again with the same identity, data
// directory and, if free, ports, bootstrapped to up to three live nodes.
// Restarting a live node kills it first.
func (nw *Network) Restart(ctx context.Context, i int) error {
	if err := nw.Kill(i); err != nil {
		return err
	}
	var boot []ma.Multiaddr
	for _, j := range nw.Live() {
		if len(boot) >= 6 {
			break
		}
		boot = append(boot, nw.Node(j).Addrs()...)
	}
	return nw.startSlot(ctx, i, boot)
}

// Partition cuts every node in a off from every node in b, in both
// directions, and closes their existing connections, until Heal.
func (nw *Network) Partition(a, b []int) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	for _, i := range a {
		for _, j := range b {
			si, sj := nw.slots[i], nw.slots[j]
			si.gater.block(sj.id)
			sj.gater.block(si.id)
			if si.node != nil {
				_ = si.node.Host().Network().ClosePeer(sj.id)
			}
			if sj.node != nil {
				_ = sj.node.Host().Network().ClosePeer(si.id)
			}
		}
	}
}

// Heal lifts every partition and reconnects the live nodes that were cut
// off from each other. Reconnection is best effort; use WaitFor to wait
// for what a test needs.
func (nw *Network) Heal(ctx context.Context) {
	nw.mu.Lock()
	type pair struct {
		n  *node.Node
		to peer.ID
	}
	var redial []pair
	for _, s := range nw.slots {
		for _, p := range s.gater.clear() {
			if s.node != nil {
				redial = append(redial, pair{s.node, p})
			}
		}
	}
	nw.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range redial {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = r.n.Host().Connect(ctx, r.n.Host().Peerstore().PeerInfo(r.to))
		}()
	}
	wg.Wait()
}

// WaitRoutingTables waits until every live node's routing table holds at
// least min peers.
func (nw *Network) WaitRoutingTables(ctx context.Context, min int) error {
	err := WaitFor(ctx, func() bool {
		for _, i := range nw.Live() {
			if n := nw.Node(i); n != nil && n.DHT().RoutingTable().Size() < min {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("localnet: routing tables below %d peers (%s): %w", min, nw.shortTables(min), err)
	}
	return nil
}

// shortTables says which live nodes' routing tables hold fewer than min
// peers, and of the live nodes missing from each, whether it is
// connected to them.
func (nw *Network) shortTables(min int) string {
	var out []string
	live := nw.Live()
	for _, i := range live {
		n := nw.Node(i)
		if n == nil || n.DHT().RoutingTable().Size() >= min {
			continue
		}
		var missing []string
		for _, j := range live {
			m := nw.Node(j)
			if j == i || m == nil || n.DHT().RoutingTable().Find(m.ID()) != "" {
				continue
			}
			missing = append(missing, fmt.Sprintf("%d (%s)", j, n.Host().Network().Connectedness(m.ID())))
		}
		out = append(out, fmt.Sprintf("node %d: %d peers, missing %s", i, n.DHT().RoutingTable().Size(), strings.Join(missing, ", ")))
	}
	return strings.Join(out, "; ")
}

// WaitFor calls cond every 20 ms until it returns true or ctx ends, and
// then returns ctx's error.
func (nw *Network) WaitFor(ctx context.Context, cond func() bool) error {
	return WaitFor(ctx, cond)
}

// WaitFor calls cond every 20 ms until it returns true (nil) or ctx ends
// (ctx's error).
func WaitFor(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Close closes every live node, in parallel, and joins their errors.
func (nw *Network) Close() error {
	var g errgroup.Group
	errs := make([]error, nw.Len())
	for i := range nw.Len() {
		g.Go(func() error {
			errs[i] = nw.Kill(i)
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(errs...)
}
