package provider

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/sync/errgroup"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// answers reports whether node id can be reached now and speaks the shard
// protocol. A node behind a NAT counts when it can be reached through a
// relay: the connection is only for identify.
func answers(ctx context.Context, n *node.Node, id peer.ID, addrs []ma.Multiaddr) bool {
	h := n.Host()
	if id == h.ID() {
		return true
	}
	if err := h.Connect(network.WithAllowLimitedConn(ctx, "jellyfish-admission"), peer.AddrInfo{ID: id, Addrs: addrs}); err != nil {
		return false
	}
	protos, err := h.Peerstore().SupportsProtocols(id, shardproto.ID)
	return err == nil && len(protos) > 0
}

// linkReads bounds the node records one lookup reads at once.
const linkReads = 4

// LinkLookup returns the ClassLookup of a provider on n: it reads the
// account's record (account.AccountKey) from the DHT and, for the nodes it
// lists, their node records (record.NodeKey); the nodes whose records name
// the account as their owner are linked, as karma.LinkedNodes counts a
// link, and the account is sharing when one of them answers now: n
// connects to it and its identify lists the shard protocol. The records
// are checked by n's validator (signed by the account's and the node's own
// keys). watch, if not nil, is given the linked nodes of every account
// looked up: the observer watches them, and what they earn is what it saw
// (docs/design.md §6.10–6.12).
func LinkLookup(n *node.Node, watch func([]peer.ID)) ClassLookup {
	return func(ctx context.Context, id peer.ID) (Link, error) {
		rec, _, err := n.GetRecord(ctx, account.AccountKey(id))
		if err != nil {
			return Link{Class: ClassStarter}, err
		}
		pub, err := account.ParsePublic(rec.Body)
		if err != nil {
			return Link{Class: ClassStarter}, fmt.Errorf("provider: account %s: %w", id, err)
		}
		var g errgroup.Group
		g.SetLimit(linkReads)
		var mu sync.Mutex
		linked := make([]*LinkedNode, len(pub.Nodes))
		var answered atomic.Bool
		for i, nid := range pub.Nodes {
			g.Go(func() error {
				info, _, err := n.NodeInfo(ctx, nid)
				if err != nil || !bytes.Equal(info.Owner, []byte(id)) {
					return nil // a node whose record is gone, or names another, links nothing
				}
				mu.Lock()
				linked[i] = &LinkedNode{ID: nid, Tier: int(info.Tier)}
				mu.Unlock()
				if !answered.Load() && answers(ctx, n, nid, info.Addrs) {
					answered.Store(true)
				}
				return nil
			})
		}
		g.Wait()
		l := Link{Class: ClassStarter}
		var ids []peer.ID
		for _, ln := range linked {
			if ln != nil && !slices.Contains(ids, ln.ID) {
				l.Nodes = append(l.Nodes, *ln)
				ids = append(ids, ln.ID)
			}
		}
		if answered.Load() {
			l.Class = ClassSharing
		}
		if watch != nil && len(ids) > 0 {
			watch(ids)
		}
		return l, nil
	}
}
