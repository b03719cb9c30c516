package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	routedhost "github.com/libp2p/go-libp2p/p2p/host/routed"
	"golang.org/x/sync/singleflight"
)

// findHolderTimeout bounds one search for a holder's addresses. Callers
// waiting on it share it, and it runs on after the first one gives up,
// so the next caller finds it done.
const findHolderTimeout = 15 * time.Second

// holderRouting finds a holder's addresses for the host that carries the
// client's shard traffic (routedhost), when the peerstore has none — in a
// network larger than a routing table, a fresh process knows almost none
// of the holders its references name — or when a dial to the ones known
// failed (the holder moved, or restarted on other ports).
//
// It reads the holder's node record: the addresses the node publishes
// whenever they change, relayed ones included for a node behind a NAT,
// which a DHT lookup does not find (such a node is no DHT server). Only
// for a holder with no known address and no record to read does a DHT
// lookup ask the peers closest to it, which know the addresses of those
// they are connected to; after a failed dial, a record naming nothing new
// ends the search (a dead holder costs one record read, not a lookup).
// An answer is kept for findHolderMemo, so the reads of one file, which
// ask the same holders segment after segment, search each once.
type holderRouting struct {
	c      *Client
	flight singleflight.Group
	now    func() time.Time

	mu   sync.Mutex
	memo map[peer.ID]foundHolder
	// unready is when PunchReady last gave up: for punchRetry after it,
	// holders behind NATs fail at once instead of each waiting for it.
	unready time.Time
	// How many searches ran and how often one waited for PunchReady,
	// for tests.
	searches, waits atomic.Int64
}

// punchRetry is how long a client whose hole punching was not ready
// treats it as not ready without waiting again.
const punchRetry = time.Minute

// punchReady is Client.PunchReady, not waited for again within
// punchRetry of a wait that gave up (a client behind a symmetric NAT is
// never ready, and would wait for every holder behind a NAT).
func (r *holderRouting) punchReady(ctx context.Context) bool {
	r.mu.Lock()
	recent := !r.unready.IsZero() && r.now().Sub(r.unready) < punchRetry
	r.mu.Unlock()
	if recent {
		return false
	}
	r.waits.Add(1)
	if r.c.PunchReady(ctx) {
		return true
	}
	if ctx.Err() == nil {
		r.mu.Lock()
		r.unready = r.now()
		r.mu.Unlock()
	}
	return false
}

// foundHolder is a search's answer and when it was found.
type foundHolder struct {
	info peer.AddrInfo
	err  error
	at   time.Time
}

// findHolderMemo is how long a search's answer is kept; memoPrune is the
// number of answers past which expired ones are dropped.
const (
	findHolderMemo = 30 * time.Second
	memoPrune      = 1024
)

// FindPeer is routedhost.Routing.
func (r *holderRouting) FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	if f, ok := r.remembered(id); ok {
		return f.info, f.err
	}
	ch := r.flight.DoChan(string(id), func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), findHolderTimeout)
		defer cancel()
		info, err := r.find(lctx, id)
		r.remember(id, foundHolder{info: info, err: err, at: r.now()})
		return info, err
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return peer.AddrInfo{}, res.Err
		}
		return res.Val.(peer.AddrInfo), nil
	case <-ctx.Done():
		return peer.AddrInfo{}, ctx.Err()
	}
}

func (r *holderRouting) remembered(id peer.ID) (foundHolder, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.memo[id]
	if !ok || r.now().Sub(f.at) > findHolderMemo {
		return foundHolder{}, false
	}
	return f, true
}

func (r *holderRouting) remember(id peer.ID, f foundHolder) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.memo == nil {
		r.memo = map[peer.ID]foundHolder{}
	}
	if len(r.memo) >= memoPrune {
		for p, old := range r.memo {
			if r.now().Sub(old.at) > findHolderMemo {
				delete(r.memo, p)
			}
		}
	}
	r.memo[id] = f
}

func (r *holderRouting) find(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	r.searches.Add(1)
	n := r.c.n
	known := n.Host().Peerstore().Addrs(id)
	rctx, cancel := context.WithTimeout(ctx, recordTimeout)
	info, _, recErr := n.NodeInfo(rctx, id)
	cancel()
	if recErr == nil && len(info.Addrs) == 0 {
		recErr = errors.New("its node record gives no address")
	}
	switch {
	case recErr == nil && ReachabilityOf(info.Addrs) == ReachRelayed:
		// Behind a NAT: the holder starts a hole punch when the relayed
		// connection reaches it, and this host must be ready to answer
		// (Reach waits the same way). A shard stream cannot use the
		// relayed connection itself, so without a punch there is no point
		// in making one.
		if !r.punchReady(ctx) {
			return peer.AddrInfo{}, fmt.Errorf("client: find %s: it is behind a NAT, reached only by a hole punch, and this client can take part in none (it knows no public address of its own)", id.ShortString())
		}
		n.Logger().Debug("holder behind a NAT found by its node record", "peer", id, "addrs", len(info.Addrs))
		return peer.AddrInfo{ID: id, Addrs: info.Addrs}, nil
	case recErr == nil:
		// routedhost dials again only if these name an address its
		// failed dial did not try.
		n.Logger().Debug("holder found by its node record", "peer", id, "addrs", len(info.Addrs))
		return peer.AddrInfo{ID: id, Addrs: info.Addrs}, nil
	case len(known) > 0:
		return peer.AddrInfo{}, fmt.Errorf("client: find %s: %w", id.ShortString(), recErr)
	}
	pi, err := n.DHT().FindPeer(ctx, id)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("client: find %s: no node record (%v), not found in the DHT (%w)", id.ShortString(), recErr, err)
	}
	n.Logger().Debug("holder found in the DHT", "peer", id, "addrs", len(pi.Addrs))
	return pi, nil
}

// newShardHost wraps the client's host so that dials find holders'
// addresses as above.
func newShardHost(c *Client) (*routedhost.RoutedHost, *holderRouting) {
	r := &holderRouting{c: c, now: time.Now}
	return routedhost.Wrap(c.n.Host(), r), r
}
