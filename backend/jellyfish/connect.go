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
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/rclone/rclone/fs"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
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
	clock *skewClock
	stop  context.CancelFunc // ends the clock's background estimates

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
	clock := &skewClock{base: now}
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
	return &clientNet{c: c, now: clock.Now, clock: clock, stop: cancel}, nil
}

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
	fs.Debugf(nil, "jellyfish: %d provider nodes", len(ids))
	n.providers, n.infos, n.fetched = ids, infos, n.now()
	return ids, nil
}

// OwnedCapacity returns the bytes offered by the providers that name the
// account as their owner: the account's allowance until karma weighs it.
func (n *clientNet) OwnedCapacity(ctx context.Context, owner peer.ID) (int64, int, error) {
	if _, err := n.Providers(ctx); err != nil {
		return 0, 0, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var total int64
	nodes := 0
	for _, p := range n.infos {
		if string(p.Info.Owner) == string(owner) {
			total += int64(p.CapacityGiB) << 30
			nodes++
		}
	}
	return total, nodes, nil
}
