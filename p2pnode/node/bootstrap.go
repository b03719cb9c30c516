package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
)

// ErrNoPeersReachable is returned by Bootstrap when none of the configured
// bootstrap addresses could be reached in time.
var ErrNoPeersReachable = errors.New("no peers reachable")

// ParseBootstrapAddrs groups full multiaddrs (each ending in /p2p/<ID>) by
// peer. It fails on an address without a peer ID.
func ParseBootstrapAddrs(addrs []ma.Multiaddr) ([]peer.AddrInfo, error) {
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil {
		return nil, fmt.Errorf("%w: bootstrap addresses: %w", ErrConfig, err)
	}
	return infos, nil
}

// Bootstrap connects h to the bootstrap peers, all in parallel, waits until
// at least one of them is in d's routing table and starts a routing table
// refresh in the background. Once one peer answered, the other dials get
// stragglerWait more, so a hung bootstrap peer does not delay the start. It gives up after timeout with an error
// wrapping ErrNoPeersReachable that says how many addresses were tried when
// no peer answered. With no bootstrap peers it only logs that this node
// starts a new network and returns nil.
func Bootstrap(ctx context.Context, h host.Host, d *dht.IpfsDHT, peers []peer.AddrInfo, timeout time.Duration, log *slog.Logger) error {
	_, err := bootstrap(ctx, h, d, peers, timeout, log, false)
	return err
}

// bootstrap is Bootstrap; with selfLookup it looks up the node's own ID,
// within the timeout, instead of starting a refresh. It returns the
// refresh's channel (kad-dht's: it yields once the refresh ended), nil
// when it started none.
func bootstrap(ctx context.Context, h host.Host, d *dht.IpfsDHT, peers []peer.AddrInfo, timeout time.Duration, log *slog.Logger, selfLookup bool) (<-chan error, error) {
	if len(peers) == 0 {
		log.Info("no bootstrap peers configured: this node starts a new network and waits for others to connect")
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nAddrs := 0
	for _, p := range peers {
		nAddrs += len(p.Addrs)
	}

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		reached  int
		connErrs []error
		firstOK  = make(chan struct{})
		allDone  = make(chan struct{})
	)
	start := time.Now()
	dialed := 0
	for _, p := range peers {
		if p.ID == h.ID() {
			continue
		}
		dialed++
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := h.Connect(ctx, p)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				connErrs = append(connErrs, fmt.Errorf("%s: %w", p.ID, err))
				return
			}
			if reached++; reached == 1 {
				close(firstOK)
			}
		}()
	}
	go func() { wg.Wait(); close(allDone) }()
	// Every dial is waited for, so placement later sees all the peers that
	// answer, except that one hung or far-away peer must not hold up the
	// start: once one peer answered, the others get stragglerWait more
	// (or four times as long as the first took). The dials still pending
	// are cancelled when Bootstrap returns.
	select {
	case <-allDone:
	case <-firstOK:
		straggle := time.NewTimer(stragglerWait + 4*time.Since(start))
		select {
		case <-allDone:
		case <-straggle.C:
		case <-ctx.Done():
		}
		straggle.Stop()
	case <-ctx.Done():
	}
	mu.Lock()
	reached, pending, errs := reached, dialed-reached-len(connErrs), slices.Clone(connErrs)
	mu.Unlock()
	if reached == 0 {
		return nil, fmt.Errorf("node: bootstrap: %w: tried %d bootstrap addresses of %d peers within %v: %w",
			ErrNoPeersReachable, nAddrs, len(peers), timeout, errors.Join(errs...))
	}
	log.Info("connected to bootstrap peers", "reached", reached, "tried", len(peers), "still_dialing", pending)

	// Connected peers enter the routing table once identify confirms they
	// speak the DHT protocol; a refresh before that would find nobody.
	if err := waitRoutingTable(ctx, d, 1); err != nil {
		return nil, fmt.Errorf("node: bootstrap: connected to %d peers but none joined the routing table: %w", reached, err)
	}
	if selfLookup {
		// The peers closest to this node learn of it (it queries them) and
		// it of them: what lookups of keys near it need.
		if _, err := d.GetClosestPeers(ctx, string(h.ID())); err != nil {
			return nil, fmt.Errorf("node: bootstrap: look up own ID: %w", err)
		}
		log.Info("bootstrapped", "routing_table", d.RoutingTable().Size(), "refresh", false)
		return nil, nil
	}
	// The refresh runs in the DHT's own goroutine; waiting for it would tie
	// Bootstrap to the slowest dial of every lookup (an unreachable peer
	// costs a full dial timeout) for no gain: the node is usable as soon
	// as it has routing table entries.
	refreshed := d.RefreshRoutingTable()
	log.Info("bootstrapped", "routing_table", d.RoutingTable().Size())
	return refreshed, nil
}

// stragglerWait is how long Bootstrap waits for the remaining bootstrap
// dials once one peer answered (plus four times that first answer's time).
const stragglerWait = 500 * time.Millisecond

// waitRoutingTable polls until d's routing table holds at least n peers.
func waitRoutingTable(ctx context.Context, d *dht.IpfsDHT, n int) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for d.RoutingTable().Size() < n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// reachPeers is how many connected peers Reachable pings.
const reachPeers = 5

// Reachable reports whether this node can still reach the network: nil as
// soon as one of up to five connected peers answers a ping, or, when none
// does, one of the bootstrap peers can be connected to again (within
// timeout each). Otherwise it returns an error wrapping
// ErrNoPeersReachable. It does not depend on how long anything took: a
// slow link that still answers is reachable.
func (n *Node) Reachable(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	peers := n.host.Network().Peers()
	if len(peers) > reachPeers {
		peers = peers[:reachPeers]
	}
	ok := make(chan struct{}, len(peers)+len(n.bootstrap))
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := PingOnce(ctx, n.host, p); err == nil {
				ok <- struct{}{}
			}
		}()
	}
	for _, p := range n.bootstrap {
		if p.ID == n.ID() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n.host.Connect(ctx, p) == nil {
				ok <- struct{}{}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-ok:
		return nil
	case <-done:
		select {
		case <-ok:
			return nil
		default:
		}
	}
	return fmt.Errorf("%w: none of %d connected and %d bootstrap peers answered", ErrNoPeersReachable, len(peers), len(n.bootstrap))
}

// PingOnce times one round trip to p with libp2p's ping protocol. It fails
// when ctx ends first: ping.Ping's channel then closes without a result,
// which a plain receive would read as a round trip of zero with no error.
func PingOnce(ctx context.Context, h host.Host, p peer.ID) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ping.Ping pings until its context ends
	r, ok := <-ping.Ping(ctx, h, p)
	if !ok {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("no answer to a ping: %w", err)
		}
		return 0, errors.New("no answer to a ping")
	}
	return r.RTT, r.Error
}
