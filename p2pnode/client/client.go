package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/sync/errgroup"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
)

// DefaultBootstrapTimeout bounds joining the network in New.
const DefaultBootstrapTimeout = 20 * time.Second

// Config is what New needs. DataDir and Bootstrap are required.
type Config struct {
	// DataDir holds the client node's identity and record cache.
	DataDir string
	// Bootstrap are full multiaddrs (ending in /p2p/<ID>) of network nodes.
	Bootstrap []ma.Multiaddr
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// ListenAddrs default to TCP and QUIC on 127.0.0.1 and all IPv4
	// interfaces at random ports (a client dials out; listening lets
	// holders' connections be reused both ways).
	ListenAddrs []ma.Multiaddr
	// BootstrapTimeout bounds joining; zero means DefaultBootstrapTimeout.
	BootstrapTimeout time.Duration
	// Configure, if set, may change the node config before it starts.
	Configure func(*node.Config)
}

// ErrNoBootstrap is returned by New when Config.Bootstrap is empty: a
// client cannot start a network of its own.
var ErrNoBootstrap = errors.New("client: no bootstrap peers configured")

// Client is a DHT-client-mode node joined to a Jellyfish network. Create it
// with New and release it with Close.
type Client struct {
	n    *node.Node
	recs *Records
}

// New starts a client-mode node with every Jellyfish record kind and
// bootstraps it. It fails (leaving nothing running) if no bootstrap peer
// answers within the timeout; that error matches node.ErrNoPeersReachable
// and account.ErrUnreachable. ctx bounds New only.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if len(cfg.Bootstrap) == 0 {
		return nil, ErrNoBootstrap
	}
	if cfg.BootstrapTimeout == 0 {
		cfg.BootstrapTimeout = DefaultBootstrapTimeout
	}
	ncfg := node.Config{
		DataDir:          cfg.DataDir,
		ListenAddrs:      cfg.ListenAddrs,
		BootstrapPeers:   cfg.Bootstrap,
		Mode:             node.ModeClient,
		Logger:           cfg.Logger,
		BootstrapTimeout: cfg.BootstrapTimeout,
		// A short-lived client republishes nothing on a timer; what it put
		// is confirmed stored by remote peers, who keep re-putting it.
		RepublishInterval: -1,
		RecordKinds:       account.RecordKinds(),
		// Shard streams this client opens count against the shard
		// service's limits, as on providers.
		ServiceLimits: []func(*rcmgr.ScalingLimitConfig){shardproto.SetServiceLimits},
	}
	if cfg.Configure != nil {
		cfg.Configure(&ncfg)
	}
	n, err := node.New(ctx, ncfg)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if err := n.Bootstrap(ctx); err != nil {
		err = fmt.Errorf("client: join network: %w: %w", account.ErrUnreachable, err)
		return nil, errors.Join(err, n.Close())
	}
	return &Client{n: n, recs: NodeRecords(n)}, nil
}

// Close stops the node and everything attached to it.
func (c *Client) Close() error { return c.n.Close() }

// Node returns the underlying node (host, DHT, records).
func (c *Client) Node() *node.Node { return c.n }

// Records returns the account.Records adapter of the client's node.
func (c *Client) Records() account.Records { return c.recs }

// Shards returns a shard protocol client that signs as ownerKey (an
// Ed25519 key: the account's identity key, so holders account shards to
// the account) and reaches holders through the client's host.
func (c *Client) Shards(ownerKey crypto.PrivKey, opts ...shardproto.ClientOption) (*shardproto.Client, error) {
	return shardproto.NewClient(c.n.Host(), ownerKey, opts...)
}

// ProviderInfo is a provider the client can place shards on.
type ProviderInfo struct {
	// ID is the provider's peer ID: the holder argument of shardproto.
	ID peer.ID
	// Info is the body of its signed node record: owner, tier, addresses.
	Info record.NodeInfo
	// CapacityGiB is the space its tier offers: 2^tier GiB.
	CapacityGiB uint64
}

// recordTimeout bounds the node record lookup of one provider.
const recordTimeout = 10 * time.Second

// Providers returns the providers known to the client: the peers in its
// routing table and, where the table is full, those a walk of the key
// space finds (walk), whose host speaks the shard protocol (or, for peers
// the walk found, has not told yet) and whose node record can be read and
// verified, sorted by peer ID. Peers without a readable record are left
// out (a fresh node may not have published yet). It fails only when no
// peer qualifies and ctx ended or the table is empty.
func (c *Client) Providers(ctx context.Context) ([]ProviderInfo, error) {
	ids := c.n.DHT().RoutingTable().ListPeers()
	if len(ids) == 0 {
		return nil, fmt.Errorf("client: providers: %w: empty routing table", account.ErrUnreachable)
	}
	inTable := make(map[peer.ID]bool, len(ids))
	for _, id := range ids {
		inTable[id] = true
	}
	for _, id := range c.walk(ctx) {
		if !inTable[id] && id != c.n.ID() {
			ids = append(ids, id)
		}
	}
	ps := c.n.Host().Peerstore()
	var (
		mu  sync.Mutex
		out []ProviderInfo
		g   errgroup.Group
	)
	g.SetLimit(16)
	for _, id := range ids {
		// A peer's protocols are known once identify ran; a table peer
		// always ran it, a peer the walk found may still be running it.
		if protos, err := ps.SupportsProtocols(id, shardproto.ID); err != nil || len(protos) == 0 && (inTable[id] || knowsProtocols(ps, id)) {
			continue
		}
		g.Go(func() error {
			rctx, cancel := context.WithTimeout(ctx, recordTimeout)
			defer cancel()
			rec, _, err := c.n.GetRecord(rctx, record.NodeKey(id))
			if err != nil {
				return nil
			}
			var info record.NodeInfo
			if err := info.Unmarshal(rec.Body); err != nil {
				return nil
			}
			mu.Lock()
			out = append(out, ProviderInfo{ID: id, Info: info, CapacityGiB: info.CapacityGiB()})
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
	if len(out) == 0 && ctx.Err() != nil {
		return nil, fmt.Errorf("client: providers: %w", ctx.Err())
	}
	slices.SortFunc(out, func(a, b ProviderInfo) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out, nil
}

// knowsProtocols reports whether identify told the peerstore any protocol
// of id.
func knowsProtocols(ps peerstore.Peerstore, id peer.ID) bool {
	protos, err := ps.GetProtocols(id)
	return err == nil && len(protos) > 0
}
