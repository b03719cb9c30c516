package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/sync/errgroup"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
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
	// NoTCPReads turns off the second host that carries shard reads over
	// TCP (see reads.go): all traffic then uses the client's own host.
	NoTCPReads bool
}

// ErrNoBootstrap is returned by New when Config.Bootstrap is empty: a
// client cannot start a network of its own.
var ErrNoBootstrap = errors.New("client: no bootstrap peers configured")

// Client is a DHT-client-mode node joined to a Jellyfish network. Create it
// with New and release it with Close.
type Client struct {
	n     *node.Node
	recs  *Records
	reads *readsHost // nil with Config.NoTCPReads
	// shardHost is the node's host, finding the addresses of holders it
	// has none for (route.go); shard traffic goes through it.
	shardHost host.Host
	routing   *holderRouting
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
		// A client behind a NAT reaches a node behind another through the
		// node's relay and a hole punch.
		HolePunching: true,
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
	cl := &Client{n: n, recs: NodeRecords(n)}
	cl.shardHost, cl.routing = newShardHost(cl)
	if !cfg.NoTCPReads {
		cl.reads, err = newReadsHost(n.Host(), cmp.Or(ncfg.TCPCongestion, node.DefaultCongestion), n.Logger())
		if err != nil {
			return nil, errors.Join(fmt.Errorf("client: reads host: %w", err), n.Close())
		}
	}
	return cl, nil
}

// Close stops the node and everything attached to it.
func (c *Client) Close() error {
	var err error
	if c.reads != nil {
		err = c.reads.Close()
	}
	return errors.Join(err, c.n.Close())
}

// Node returns the underlying node (host, DHT, records).
func (c *Client) Node() *node.Node { return c.n }

// Records returns the account.Records adapter of the client's node.
func (c *Client) Records() account.Records { return c.recs }

// Shards returns a shard protocol client that signs as ownerKey (an
// Ed25519 key: the account's identity key, so holders account shards to
// the account) and reaches holders through the client's host, finding
// the addresses of those it does not know, and for reads through the TCP
// reads host where it is connected.
func (c *Client) Shards(ownerKey crypto.PrivKey, opts ...shardproto.ClientOption) (*shardproto.Client, error) {
	if c.reads != nil {
		opts = append([]shardproto.ClientOption{shardproto.WithReadRoute(c.reads.route)}, opts...)
	}
	return shardproto.NewClient(c.shardHost, ownerKey, opts...)
}

// ProviderInfo is a provider the client can place shards on.
type ProviderInfo struct {
	// ID is the provider's peer ID: the holder argument of shardproto.
	ID peer.ID
	// Info is the body of its signed node record, as the node wrote it:
	// the owner it claims, its tier, its addresses.
	Info record.NodeInfo
	// Owner is the account the node belongs to, verified: the node's
	// record names the account and the account's record (signed by the
	// account's identity key) lists the node. Empty when either side is
	// missing: a claim alone groups the node with nobody.
	Owner peer.ID
	// Network is the network this client reached the node at (NetworkOf
	// the remote address of a live connection: where the node answered,
	// not what its record claims); "" only for a connection whose address
	// has no IP in it.
	Network string
	// CapacityGiB is the space its tier offers, 2^tier GiB, with the tier
	// taken as at most MaxBelievedTier.
	CapacityGiB uint64
	// Relayed says the node is behind a NAT: found through a relay that
	// holds its reservation, and connected directly by a hole punch.
	Relayed bool
}

// MaxBelievedTier is the highest tier a client believes: the highest a
// Jellyfish provider offers (shardstore.MaxTier, 2^20 GiB = 1 PiB). The
// record format allows 40, and a node record is only its owner's word; a
// record above this one names more space than the provider code can
// serve, so its capacity counts as this tier's.
const MaxBelievedTier = shardstore.MaxTier

// BelievedCapacityGiB is the capacity of tier as a client counts it:
// 2^min(tier, MaxBelievedTier) GiB.
func BelievedCapacityGiB(tier uint8) uint64 { return 1 << min(tier, MaxBelievedTier) }

// NetworkOf returns the network an address is in, as placement groups
// nodes: "ip4:a.b.c.0/24" for IPv4 (an IPv4-mapped IPv6 address counts as
// IPv4), "ip6:p:q:r::/48" for IPv6, from the address's first IP
// component (for a relayed address, the relay's), "" for an address
// without one.
func NetworkOf(a ma.Multiaddr) string {
	var ip net.IP
	for _, c := range a {
		if c.Code() == ma.P_IP4 || c.Code() == ma.P_IP6 {
			ip = net.IP(c.RawValue())
			break
		}
	}
	if ip == nil {
		return ""
	}
	if v4 := ip.To4(); v4 != nil {
		return "ip4:" + v4.Mask(net.CIDRMask(24, 32)).String() + "/24"
	}
	return "ip6:" + ip.Mask(net.CIDRMask(48, 128)).String() + "/48"
}

// recordTimeout bounds the node record lookup of one provider, and the
// connection made to it when there is none.
const recordTimeout = 10 * time.Second

// providerParallel bounds the lookups Providers runs at once.
const providerParallel = 16

// Providers returns the providers known to the client: the peers in its
// routing table and, where the table is full, those a walk of the key
// space finds (walk), whose host speaks the shard protocol (or, for peers
// the walk found, has not told yet), whose node record can be read and
// verified, and which answer a connection, sorted by peer ID. Peers
// without a readable record are left out (a fresh node may not have
// published yet), and so are peers it cannot connect to now (shards put
// there would fail; and a network this client has not seen a node answer
// from would be the node's word). Each claimed owner is verified against
// the owner's account record. It fails only when no peer qualifies and
// ctx ended or the table is empty.
func (c *Client) Providers(ctx context.Context) ([]ProviderInfo, error) {
	// The table and the walk from its full buckets find most providers
	// only once the refresh joining started has filled the table; a
	// network smaller than a bucket is known whole without it.
	wctx, cancel := context.WithTimeout(ctx, refreshWait)
	if !c.smallNetwork(wctx) {
		_ = c.n.Refreshed(wctx)
	}
	cancel()
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
	h := c.n.Host()
	ps := h.Peerstore()
	var (
		mu  sync.Mutex
		out []ProviderInfo
		g   errgroup.Group
	)
	g.SetLimit(providerParallel)
	for _, id := range ids {
		// A peer's protocols are known once identify ran; a table peer
		// always ran it, a peer the walk found may still be running it.
		if protos, err := ps.SupportsProtocols(id, shardproto.ID); err != nil || len(protos) == 0 && (inTable[id] || knowsProtocols(ps, id)) {
			continue
		}
		g.Go(func() error {
			rctx, cancel := context.WithTimeout(ctx, recordTimeout)
			defer cancel()
			info, _, err := c.n.NodeInfo(rctx, id)
			if err != nil {
				return nil
			}
			network, ok := c.network(rctx, id)
			if !ok {
				return nil
			}
			p := ProviderInfo{ID: id, Info: info, CapacityGiB: BelievedCapacityGiB(info.Tier), Network: network}
			mu.Lock()
			out = append(out, p)
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
	out = append(out, c.relayedProviders(ctx, out)...)
	if len(out) == 0 && ctx.Err() != nil {
		return nil, fmt.Errorf("client: providers: %w", ctx.Err())
	}
	c.verifyOwners(ctx, out)
	slices.SortFunc(out, func(a, b ProviderInfo) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out, nil
}

// smallNetwork reports whether the network has fewer peers than a bucket
// holds: a lookup of this node's own ID that ends with fewer than that
// many peers found every peer any of them knows. A table already holding
// a bucket's worth says no at once; so does a lookup cut short by ctx
// (which also bounds the refresh wait after it).
func (c *Client) smallNetwork(ctx context.Context) bool {
	if c.n.DHT().RoutingTable().Size() >= bucketSize {
		return false
	}
	peers, err := c.n.DHT().GetClosestPeers(ctx, string(c.n.ID()))
	return err == nil && len(peers) < bucketSize
}

// refreshWait bounds how long Providers waits for the routing table
// refresh that joining started, before walking the key space.
const refreshWait = 20 * time.Second

// Bounds of relayedProviders.
const (
	// maxRelayedCandidates bounds the nodes behind NATs one Providers
	// call considers, whatever the relays answer, and maxPerRelay those
	// one relay can add.
	maxRelayedCandidates = 512
	maxPerRelay          = 64
	// relayedPhase bounds the whole search for them: a relay naming peers
	// that do not exist costs a client this much at most.
	relayedPhase = 30 * time.Second
	// punchTimeout bounds the wait for the direct connection a hole punch
	// makes to a node reached through a relay.
	punchTimeout = 10 * time.Second
)

// relayedProviders finds the providers behind NATs that this client can
// reach directly: it asks each public provider which peers hold a relay
// reservation with it (node.RelayedProtocol), reads each such peer's node
// record, connects to it through a relay and waits for the hole punch.
// A private node is in no routing table, so the walk never finds it; one
// that cannot be punched to from here (symmetric NATs) is left out, since
// shards never go through a relay.
func (c *Client) relayedProviders(ctx context.Context, public []ProviderInfo) []ProviderInfo {
	ctx, cancel := context.WithTimeout(ctx, relayedPhase)
	defer cancel()
	h := c.n.Host()
	known := make(map[peer.ID]bool, len(public))
	for _, p := range public {
		known[p.ID] = true
	}
	var (
		mu    sync.Mutex
		cands []peer.ID
		g     errgroup.Group
	)
	g.SetLimit(providerParallel)
	for _, p := range public {
		if protos, err := h.Peerstore().SupportsProtocols(p.ID, node.RelayedProtocol); err != nil || len(protos) == 0 {
			continue
		}
		g.Go(func() error {
			ids, err := node.RelayedPeers(ctx, h, p.ID)
			if err != nil {
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			added := 0
			for _, id := range ids {
				if !known[id] && id != h.ID() && len(cands) < maxRelayedCandidates && added < maxPerRelay {
					known[id] = true
					cands = append(cands, id)
					added++
				}
			}
			return nil
		})
	}
	_ = g.Wait()
	if len(cands) == 0 || !c.PunchReady(ctx) {
		return nil
	}
	var out []ProviderInfo
	for _, id := range cands {
		g.Go(func() error {
			rctx, cancel := context.WithTimeout(ctx, recordTimeout+punchTimeout)
			defer cancel()
			info, _, err := c.n.NodeInfo(rctx, id)
			if err != nil {
				return nil
			}
			h.Peerstore().AddAddrs(id, info.Addrs, peerstore.AddressTTL)
			conn, err := c.direct(rctx, id)
			if err != nil {
				c.n.Logger().Debug("provider behind a NAT not reachable directly", "peer", id, "err", err)
				return nil
			}
			if protos, err := h.Peerstore().SupportsProtocols(id, shardproto.ID); err != nil || len(protos) == 0 {
				return nil
			}
			p := ProviderInfo{ID: id, Info: info, CapacityGiB: BelievedCapacityGiB(info.Tier), Network: NetworkOf(conn.RemoteMultiaddr()), Relayed: true}
			mu.Lock()
			out = append(out, p)
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
	return out
}

// punchReadyWait bounds the wait for this client's hole punching.
const punchReadyWait = 5 * time.Second

// PunchReady waits until libp2p's hole punching service takes requests,
// which it does once the host knows a public address of its own (what
// the peers it joined through see it at), soon after joining. A client
// behind a symmetric NAT has none: no node behind a NAT is reachable from
// it, and false says so without trying each.
func (c *Client) PunchReady(ctx context.Context) bool {
	h := c.n.Host()
	ready := func() bool { return slices.Contains(h.Mux().Protocols(), holepunch.Protocol) }
	// The service sets its stream handler when it is ready, which the
	// host announces.
	sub, err := h.EventBus().Subscribe(new(event.EvtLocalProtocolsUpdated))
	if err != nil {
		return ready()
	}
	defer sub.Close()
	t := time.NewTimer(punchReadyWait)
	defer t.Stop()
	for !ready() {
		select {
		case <-sub.Out():
		case <-t.C:
			c.n.Logger().Debug("no hole punching from this client: it knows no public address of its own")
			return false
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// direct returns a direct connection to id: an existing one, or one a
// hole punch makes after connecting through a relay.
func (c *Client) direct(ctx context.Context, id peer.ID) (network.Conn, error) {
	h := c.n.Host()
	if err := h.Connect(network.WithAllowLimitedConn(ctx, "provider behind a NAT"), peer.AddrInfo{ID: id}); err != nil {
		return nil, err
	}
	// A stream that may not use a limited connection waits for the direct
	// one; libp2p's ping is the cheapest stream every node accepts.
	s, err := h.NewStream(network.WithDialPeerTimeout(ctx, punchTimeout), id, ping.ID)
	if err != nil {
		return nil, err
	}
	conn := s.Conn()
	s.Reset()
	return conn, nil
}

// network returns the network id answers this client from: NetworkOf the
// remote address of a live connection, connecting first when there is
// none; the smallest when connections come from several. false when no
// connection can be made.
func (c *Client) network(ctx context.Context, id peer.ID) (string, bool) {
	h := c.n.Host()
	if len(h.Network().ConnsToPeer(id)) == 0 {
		if err := h.Connect(ctx, peer.AddrInfo{ID: id}); err != nil {
			return "", false
		}
	}
	conns := h.Network().ConnsToPeer(id)
	best := ""
	for _, conn := range conns {
		if n := NetworkOf(conn.RemoteMultiaddr()); n != "" && (best == "" || n < best) {
			best = n
		}
	}
	return best, len(conns) > 0
}

// verifyOwners sets Owner on the providers whose claimed owner's account
// record lists them, reading each claimed owner's record once (a quorum
// read). An owner whose record cannot be read verifies nobody.
func (c *Client) verifyOwners(ctx context.Context, provs []ProviderInfo) {
	claims := map[peer.ID][]int{}
	for i, p := range provs {
		if len(p.Info.Owner) == 0 {
			continue
		}
		if owner, err := peer.IDFromBytes(p.Info.Owner); err == nil {
			claims[owner] = append(claims[owner], i)
		}
	}
	var (
		mu sync.Mutex
		g  errgroup.Group
	)
	g.SetLimit(providerParallel)
	for owner, idx := range claims {
		g.Go(func() error {
			key := account.AccountKey(owner)
			raw, err := c.recs.Get(ctx, key)
			if err != nil {
				return nil
			}
			rec, err := account.VerifyOwned(key, raw)
			if err != nil {
				return nil
			}
			pub, err := account.ParsePublic(rec.Body)
			if err != nil {
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			for _, i := range idx {
				if slices.Contains(pub.Nodes, provs[i].ID) {
					provs[i].Owner = owner
				}
			}
			return nil
		})
	}
	_ = g.Wait()
}

// knowsProtocols reports whether identify told the peerstore any protocol
// of id.
func knowsProtocols(ps peerstore.Peerstore, id peer.ID) bool {
	protos, err := ps.GetProtocols(id)
	return err == nil && len(protos) > 0
}
