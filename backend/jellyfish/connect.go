package jellyfish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/rclone/rclone/fs"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/placement"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/timeproto"
)

// parseBootstrap splits the bootstrap option (spaces, commas or newlines).
func parseBootstrap(s string) ([]ma.Multiaddr, error) {
	var out []ma.Multiaddr
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\n' || r == '\t' }) {
		a, err := ma.NewMultiaddr(f)
		if err != nil {
			return nil, fmt.Errorf("jellyfish: bootstrap address %q: %w", f, err)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("jellyfish: no bootstrap addresses configured")
	}
	return out, nil
}

// clientNet is the network of a process: one client-mode node.
type clientNet struct {
	c     *client.Client
	now   func() time.Time
	clock skewClock
	stop  context.CancelFunc // ends the clock's background estimates

	reachMu  sync.Mutex
	reachAt  time.Time // when Gone last asked (real time)
	reachErr error
	// alive is done once Gone found the network gone; operations under
	// way then stop at once. A new one serves the operations after.
	aliveMu   sync.Mutex
	alive     context.Context
	aliveStop context.CancelFunc

	mu        sync.Mutex
	providers []peer.ID
	infos     []client.ProviderInfo
	fetched   time.Time
}

// providerTTL is how long a provider list is reused before it is looked up
// again; lookups read every provider's node record.
const providerTTL = time.Minute

func connect(ctx context.Context, opt *Options, slotDir string, now func() time.Time) (network, error) {
	boot, err := parseBootstrap(opt.Bootstrap)
	if err != nil {
		return nil, err
	}
	// Each process joins with a fresh network identity: the account's key
	// signs everything that matters, and a reused identity would inherit
	// the connections a killed predecessor left open on the providers.
	dataDir := filepath.Join(slotDir, "node")
	if err := os.Remove(filepath.Join(dataDir, "identity.key")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	clock := skewClock{timeproto.NewCorrected(now)}
	c, err := client.New(ctx, client.Config{
		DataDir:   dataDir,
		Bootstrap: boot,
		Logger:    slog.New(slog.DiscardHandler),
		// Records this process validates expire on Jellyfish's clock.
		Configure: func(cfg *node.Config) { cfg.Clock = clock.Now },
	})
	if err != nil {
		return nil, fmt.Errorf("jellyfish: join the network: %w", err)
	}
	// Correct the clock by the network's before anything is signed.
	runCtx, cancel := context.WithCancel(context.Background())
	first, firstDone := context.WithTimeout(ctx, 5*time.Second)
	clock.start(first, runCtx, c.Node().ClockOffset)
	firstDone()
	n := &clientNet{c: c, now: clock.Now, clock: clock, stop: cancel}
	n.alive, n.aliveStop = context.WithCancel(context.Background())
	n.watchPeers(runCtx)
	return n, nil
}

// ErrNetworkGone: no peer of the network answers, so nothing can be
// stored or read now.
var ErrNetworkGone = fmt.Errorf("jellyfish: the network cannot be reached (%w): nothing can be stored or read until it is back", account.ErrUnreachable)

// reachTimeout bounds one reachability check; reachReuse is how long its
// verdict answers every caller (an upload failing on many shards at once
// asks once).
const (
	reachTimeout = 5 * time.Second
	reachReuse   = 5 * time.Second
)

// Gone returns ErrNetworkGone when no connected peer answers a ping and
// no bootstrap peer can be reached again (node.Reachable), else nil.
func (n *clientNet) Gone(ctx context.Context) error {
	n.reachMu.Lock()
	defer n.reachMu.Unlock()
	if !n.reachAt.IsZero() && time.Since(n.reachAt) < reachReuse {
		return n.reachErr
	}
	// The caller's cancellation says nothing of the network: a segment
	// done with its stragglers must not make the network look gone.
	err := n.c.Node().Reachable(context.WithoutCancel(ctx), reachTimeout)
	n.reachAt, n.reachErr = time.Now(), nil
	if err != nil {
		n.reachErr = fmt.Errorf("%w (%v)", ErrNetworkGone, err)
		fs.Errorf(nil, "%v", n.reachErr)
		n.aliveMu.Lock()
		n.aliveStop()
		n.alive, n.aliveStop = context.WithCancel(context.Background())
		n.aliveMu.Unlock()
	}
	return n.reachErr
}

// Alive returns a context that is done when the network is found gone
// (Gone) while the caller works: uploads and downloads stop at once then,
// instead of each waiting out its own timeouts.
func (n *clientNet) Alive() context.Context {
	n.aliveMu.Lock()
	defer n.aliveMu.Unlock()
	return n.alive
}

// watchPeers asks Gone whenever this process's last connection closes,
// until ctx ends: an upload stalled on dead connections learns that the
// network is gone without waiting for its own timeouts.
func (n *clientNet) watchPeers(ctx context.Context) {
	h := n.c.Node().Host()
	sub, err := h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		fs.Debugf(nil, "jellyfish: not watching connections: %v", err)
		return
	}
	go func() {
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case <-sub.Out():
				if len(h.Network().Peers()) == 0 {
					go n.Gone(ctx)
				}
			}
		}
	}()
}

// ClockInDoubt reports whether the peers' clocks were last found more
// than timeproto.MaxCorrection from this machine's.
func (n *clientNet) ClockInDoubt() bool { return n.clock.InDoubt() }

// Now is the network's clock: Jellyfish's corrected by its peers'.
func (n *clientNet) Now() time.Time { return n.now() }

// Shards signs requests as owner, timestamped on Jellyfish's clock (the
// holders check them against theirs).
func (n *clientNet) Shards(owner crypto.PrivKey) (shardIO, error) {
	return n.c.Shards(owner, shardproto.WithClientClock(n.now))
}

func (n *clientNet) Records() account.Records { return n.c.Records() }

func (n *clientNet) Peers() int { return len(n.c.Node().Host().Network().Peers()) }

func (n *clientNet) Close() error {
	n.stop()
	return n.c.Close()
}

func (n *clientNet) Providers(ctx context.Context) ([]peer.ID, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.providers != nil && n.now().Sub(n.fetched) < providerTTL {
		return n.providers, nil
	}
	// A fresh client may not yet know which peers speak the shard protocol
	// or have their records: retry an empty answer a few times.
	var infos []client.ProviderInfo
	var err error
	start := time.Now()
	for wait := 100 * time.Millisecond; ; wait *= 2 {
		infos, err = n.c.Providers(ctx)
		if err == nil && len(infos) > 0 || wait > 3*time.Second {
			break
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	ids := make([]peer.ID, 0, len(infos))
	for _, p := range infos {
		ids = append(ids, p.ID)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: no provider node found among %d peers", ErrTooFewNodes, n.Peers())
	}
	fs.Debugf(nil, "jellyfish: %d provider nodes (listed in %v)", len(ids), time.Since(start).Round(time.Millisecond))
	n.providers, n.infos, n.fetched = ids, infos, n.now()
	return ids, nil
}

// ProviderGroups returns the placement groups of nodes from the provider
// list Providers last fetched: each node's verified owner (none when its
// claim is not confirmed by the owner's account record) and the network
// this process reached it at. A node missing from the list gets no owner
// and an unknown network.
func (n *clientNet) ProviderGroups(nodes []peer.ID) []placement.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	byID := make(map[peer.ID]*client.ProviderInfo, len(n.infos))
	for i := range n.infos {
		byID[n.infos[i].ID] = &n.infos[i]
	}
	out := make([]placement.Node, len(nodes))
	for i, id := range nodes {
		if p := byID[id]; p != nil {
			out[i] = placement.Node{Owner: string(p.Owner), Net: p.Network, Relayed: p.Relayed}
		}
	}
	return out
}

// OwnedCapacity returns the bytes offered by the providers whose owner is
// verified to be the account (their records name it and its record lists
// them), tiers capped as client.BelievedCapacityGiB does: the account's
// allowance until karma weighs it.
func (n *clientNet) OwnedCapacity(ctx context.Context, owner peer.ID) (int64, int, error) {
	if _, err := n.Providers(ctx); err != nil {
		return 0, 0, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var total int64
	nodes := 0
	for _, p := range n.infos {
		if p.Owner == owner {
			total += int64(p.CapacityGiB) << 30
			nodes++
		}
	}
	return total, nodes, nil
}
