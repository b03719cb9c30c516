package client

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"golang.org/x/sync/errgroup"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
)

// PathKind is how a connection to a node was made.
type PathKind string

// Paths of a connection. Shard traffic needs a direct connection: a
// relayed one carries identify and pings, never shards.
const (
	PathDirect      PathKind = "direct"
	PathHolePunched PathKind = "hole-punched"
	PathRelayed     PathKind = "relayed"
)

// Path is how Reach connected to a node.
type Path struct {
	Kind PathKind
	// Connect is the time to the first connection, Direct the time to
	// the direct one a hole punch made (zero for the other kinds).
	Connect, Direct time.Duration
	// Via is the relay of the first connection, if it went through one.
	Via peer.ID
	// Remote is the node's address on the direct connection.
	Remote ma.Multiaddr
}

// Reach connects to the node at info (the node's own addresses, else
// those this client knows) and tells how: directly, through a relay and
// then directly after a hole punch, or through a relay only. A direct
// connection that exists already counts as hole punched when it goes to
// a public address and info's addresses give none but relayed ones. When the
// first connection is through a relay it waits at most punchWait for the
// direct one the hole punch makes (the node starts the punch when the
// relayed connection reaches it). It fails only when no connection at
// all can be made.
func (c *Client) Reach(ctx context.Context, info peer.AddrInfo, punchWait time.Duration) (Path, error) {
	h := c.n.Host()
	h.Peerstore().AddAddrs(info.ID, info.Addrs, peerstore.TempAddrTTL)
	if directConn(h.Network().ConnsToPeer(info.ID)) == nil {
		// The node behind a NAT starts the punch as soon as the relayed
		// connection reaches it; this host must answer it by then.
		c.PunchReady(ctx)
	}
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := h.Connect(network.WithAllowLimitedConn(cctx, "reach"), peer.AddrInfo{ID: info.ID}); err != nil {
		return Path{}, fmt.Errorf("connect to %s: %w", info.ID.ShortString(), err)
	}
	p := Path{Connect: time.Since(start)}
	if conn := directConn(h.Network().ConnsToPeer(info.ID)); conn != nil {
		p.Kind, p.Remote = PathDirect, conn.RemoteMultiaddr()
		if ReachabilityOf(info.Addrs) == ReachRelayed && manet.IsPublicAddr(p.Remote) {
			// The node gives no public address of its own: a direct
			// connection to a public one was made by a hole punch, this
			// one or an earlier one (finding providers punches to those
			// behind NATs).
			p.Kind, p.Direct = PathHolePunched, p.Connect
		}
		return p, nil
	}
	for _, conn := range h.Network().ConnsToPeer(info.ID) {
		if relay, err := conn.RemoteMultiaddr().ValueForProtocol(ma.P_P2P); err == nil {
			p.Via, _ = peer.Decode(relay)
			break
		}
	}
	// A stream that may not use a limited connection waits for the
	// direct one (the swarm's wait is bounded by the dial timeout).
	wctx, cancel2 := context.WithTimeout(ctx, punchWait+5*time.Second)
	defer cancel2()
	s, err := h.NewStream(network.WithDialPeerTimeout(wctx, punchWait), info.ID, ping.ID)
	if err != nil {
		p.Kind = PathRelayed
		return p, nil
	}
	p.Direct = time.Since(start)
	p.Kind, p.Remote = PathHolePunched, s.Conn().RemoteMultiaddr()
	s.Reset()
	return p, nil
}

func directConn(conns []network.Conn) network.Conn {
	for _, c := range conns {
		if !c.Stat().Limited && !node.IsRelayed(c.RemoteMultiaddr()) {
			return c
		}
	}
	return nil
}

// Reachability is what a node record's addresses say of a node.
type Reachability string

// Kinds of Reachability.
const (
	// ReachPublic: at least one address is not through a relay and has a
	// public IP (or is a DNS name): anyone can dial it.
	ReachPublic Reachability = "public"
	// ReachRelayed: no public address, and some through a relay: the node
	// is behind a NAT, and from outside its own network it is reached
	// through a relay and a hole punch (or, past a symmetric NAT, through
	// the relay only).
	ReachRelayed Reachability = "relayed"
	// ReachLocal: only addresses of a private network or loopback (a LAN,
	// a test network on one machine): dialable from that network only.
	ReachLocal Reachability = "local only"
	// ReachNone: the record gives no address.
	ReachNone Reachability = "no addresses"
)

// ReachabilityOf tells what addrs, a node record's addresses, say.
func ReachabilityOf(addrs []ma.Multiaddr) Reachability {
	if len(addrs) == 0 {
		return ReachNone
	}
	relayed := false
	for _, a := range addrs {
		switch {
		case node.IsRelayed(a):
			relayed = true
		case manet.IsPublicAddr(a):
			return ReachPublic
		}
	}
	if relayed {
		return ReachRelayed
	}
	return ReachLocal
}

// NodeCheck is what one node of an account looks like from this client:
// its node record, whether it is linked to the account and whether it
// answers now.
type NodeCheck struct {
	ID peer.ID
	// Record: its node record was read; RecordErr says why not.
	Record    bool
	RecordErr error
	// Owner is the account its record names (empty: none, or bytes that
	// are no peer ID).
	Owner peer.ID
	// Linked: its record names the account (the account's record lists
	// it, or it would not be checked): the link karma.LinkedNodes counts
	// and providers' admission looks for.
	Linked bool
	Tier   uint8
	// Addrs are its record's addresses; Relayed how many are through a
	// relay; Reach what they say.
	Addrs   []ma.Multiaddr
	Relayed int
	Reach   Reachability
	// Path is how this client connected to it, ConnErr why it could not
	// (Path.Kind is empty then).
	Path    Path
	ConnErr error
	// Shards: its identify lists the shard protocol.
	Shards bool
}

// Answers reports whether the node counts for its account's sharing class
// at a provider: linked, reachable (through a relay is enough) and
// speaking the shard protocol, as provider.LinkLookup decides.
func (nc NodeCheck) Answers() bool {
	return nc.Linked && nc.Path.Kind != "" && nc.Shards
}

// Bounds of CheckNodes.
const (
	checkParallel   = 4
	checkRecordWait = 30 * time.Second
)

// DefaultPunchWait is how long CheckNodes' callers wait for a hole punch:
// as long as finding providers does, so a node it shows reached through a
// relay only is one placement leaves out too.
const DefaultPunchWait = punchTimeout

// CheckNodes checks the nodes an account's record lists (at most 4 at a
// time): reads each one's node record, whether it names acct, and
// connects to it as Reach does, waiting at most punchWait for a hole
// punch. The answer is in the order of ids.
func (c *Client) CheckNodes(ctx context.Context, acct peer.ID, ids []peer.ID, punchWait time.Duration) []NodeCheck {
	out := make([]NodeCheck, len(ids))
	var g errgroup.Group
	g.SetLimit(checkParallel)
	for i, id := range ids {
		g.Go(func() error {
			out[i] = c.checkNode(ctx, acct, id, punchWait)
			return nil
		})
	}
	_ = g.Wait()
	return out
}

func (c *Client) checkNode(ctx context.Context, acct, id peer.ID, punchWait time.Duration) NodeCheck {
	nc := NodeCheck{ID: id}
	rctx, cancel := context.WithTimeout(ctx, checkRecordWait)
	info, _, err := c.n.NodeInfo(rctx, id)
	cancel()
	if err != nil {
		nc.RecordErr = err
	} else {
		nc.Record = true
		nc.Owner, _ = peer.IDFromBytes(info.Owner)
		nc.Linked = nc.Owner != "" && nc.Owner == acct
		nc.Tier, nc.Addrs, nc.Reach = info.Tier, info.Addrs, ReachabilityOf(info.Addrs)
		for _, a := range info.Addrs {
			if node.IsRelayed(a) {
				nc.Relayed++
			}
		}
	}
	// A node whose record is gone links nothing (provider.LinkLookup
	// skips it too): no need to look for it.
	if !nc.Record || id == c.n.Host().ID() {
		return nc
	}
	p, err := c.Reach(ctx, peer.AddrInfo{ID: id, Addrs: nc.Addrs}, punchWait)
	if err != nil {
		nc.ConnErr = err
		return nc
	}
	nc.Path = p
	protos, err := c.n.Host().Peerstore().SupportsProtocols(id, shardproto.ID)
	nc.Shards = err == nil && len(protos) > 0
	return nc
}
