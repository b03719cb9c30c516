package provider

import (
	"bytes"
	"context"
	"fmt"

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
// lists, their node records (record.NodeKey); the account is sharing when
// one of those names it as its owner, as karma.LinkedNodes counts a link,
// and that node answers now: n connects to it and its identify lists the
// shard protocol. The records are checked by n's validator (signed by the
// account's and the node's own keys). Records alone cost two signatures;
// a node that answers costs a running process, so a sharing account is at
// least that (what the node holds and how often it is up is the witness
// service's to measure, docs/design.md §6.10–6.11).
func LinkLookup(n *node.Node) ClassLookup {
	return func(ctx context.Context, id peer.ID) (Class, error) {
		rec, _, err := n.GetRecord(ctx, account.AccountKey(id))
		if err != nil {
			return ClassStarter, err
		}
		pub, err := account.ParsePublic(rec.Body)
		if err != nil {
			return ClassStarter, fmt.Errorf("provider: account %s: %w", id, err)
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var g errgroup.Group
		g.SetLimit(linkReads)
		found := make(chan struct{}, 1)
		for _, nid := range pub.Nodes {
			g.Go(func() error {
				if ctx.Err() != nil {
					return nil
				}
				info, _, err := n.NodeInfo(ctx, nid)
				if err != nil {
					return nil // a node whose record is gone links nothing
				}
				if bytes.Equal(info.Owner, []byte(id)) && answers(ctx, n, nid, info.Addrs) {
					select {
					case found <- struct{}{}:
					default:
					}
					cancel()
				}
				return nil
			})
		}
		g.Wait()
		select {
		case <-found:
			return ClassSharing, nil
		default:
			return ClassStarter, nil
		}
	}
}
