package client

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
)

// Reads over TCP. The client's host prefers QUIC, whose handshake costs
// one round trip where TCP's with Noise costs three: what lookups and
// record walks need. But quic-go's congestion control is loss-based (CUBIC,
// not settable), so at 0.5 % random loss and an 80 ms round trip one
// connection carries about 2.4 Mbit/s however fast the path, and a
// download from a dozen holders stays near 30 Mbit/s. A holder sending over
// TCP uses the control its node sets on each connection (BBR by default,
// node.DefaultCongestion), which such loss does not slow. libp2p keeps one
// connection per peer, so the TCP connections are a second host's: it has
// a network identity of its own made for the process (a get is signed by
// nothing, so a holder serves it to any peer), listens nowhere, and dials
// the holders' TCP addresses in the background the first time a get goes
// to them; gets use it once it is connected and the client's host until
// then, or when it cannot connect (a holder behind a NAT, reached by a
// hole punch, has no TCP address it could dial). Holders on loopback
// addresses are left to the client's host: in-process networks gain
// nothing from a second connection.
const (
	// readsDialTimeout bounds one background dial of the reads host.
	readsDialTimeout = 15 * time.Second
	// readsRetry is how long after a failed dial a holder is dialled
	// again; meanwhile its gets use the client's host.
	readsRetry = 5 * time.Minute
	// readsPeersSwept is how many holders the reads host may keep a dial
	// state of before it forgets those whose retry time has passed.
	readsPeersSwept = 4096
)

// readsHost is the second host that carries gets over TCP.
type readsHost struct {
	h        host.Host
	main     host.Host
	log      *slog.Logger
	loopback bool             // dial holders on loopback addresses too (tests)
	now      func() time.Time // the clock of retry times
	ctx      context.Context
	stop     context.CancelFunc
	wg       sync.WaitGroup

	mu    sync.Mutex
	peers map[peer.ID]*readsPeer
	// streams counts the streams route opened.
	streams atomic.Int64
}

// readsPeer is the dial state of a holder the reads host is dialling or
// failed to reach; a connected holder has none.
type readsPeer struct {
	dialing bool
	retry   time.Time // no dial before this, after a failed one
}

// newReadsHost starts the reads host of a client whose host is main.
func newReadsHost(main host.Host, congestion string, log *slog.Logger) (*readsHost, error) {
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	h, err := node.NewHost(priv, node.HostConfig{
		Congestion:    congestion,
		Logger:        log,
		ConnLow:       64,
		ConnHigh:      128,
		ServiceLimits: []func(*rcmgr.ScalingLimitConfig){shardproto.SetServiceLimits},
	})
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	return &readsHost{h: h, main: main, log: log, now: time.Now, ctx: ctx, stop: stop, peers: map[peer.ID]*readsPeer{}}, nil
}

// Close stops the dials in flight and the host.
func (r *readsHost) Close() error {
	// Under the lock, so that no dial starts once Wait has begun.
	r.mu.Lock()
	r.stop()
	r.mu.Unlock()
	r.wg.Wait()
	return r.h.Close()
}

// route is the shardproto.ReadRoute: a stream on the reads host's
// connection to p if there is one, else nil, having started a dial.
func (r *readsHost) route(ctx context.Context, p peer.ID) network.Stream {
	if r.h.Network().Connectedness(p) == network.Connected {
		st, err := r.h.NewStream(network.WithNoDial(ctx, "reads over an open connection"), p, shardproto.ID)
		if err == nil {
			r.streams.Add(1)
			return st
		}
		r.log.Debug("reads host: stream refused, reading through the client's host", "peer", p, "err", err)
		r.failed(p)
		return nil
	}
	r.dial(p)
	return nil
}

// failed stops using p's connection until readsRetry has passed.
func (r *readsHost) failed(p peer.ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rp := r.peers[p]
	if rp == nil {
		rp = &readsPeer{}
		r.peers[p] = rp
	}
	rp.retry = r.now().Add(readsRetry)
	_ = r.h.Network().ClosePeer(p)
}

// dial starts a background dial to p's TCP addresses unless one is in
// flight, one failed less than readsRetry ago, or p has none.
func (r *readsHost) dial(p peer.ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx.Err() != nil {
		return
	}
	now := r.now()
	rp := r.peers[p]
	if rp == nil {
		if len(r.peers) >= readsPeersSwept {
			for q, s := range r.peers {
				if !s.dialing && !now.Before(s.retry) {
					delete(r.peers, q)
				}
			}
		}
		rp = &readsPeer{}
		r.peers[p] = rp
	}
	if rp.dialing || now.Before(rp.retry) {
		return
	}
	addrs := r.tcpAddrs(p)
	if len(addrs) == 0 {
		rp.retry = now.Add(readsRetry)
		return
	}
	rp.dialing = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		ctx, cancel := context.WithTimeout(r.ctx, readsDialTimeout)
		defer cancel()
		start := time.Now()
		err := r.h.Connect(ctx, peer.AddrInfo{ID: p, Addrs: addrs})
		r.mu.Lock()
		defer r.mu.Unlock()
		rp.dialing = false
		if err != nil {
			rp.retry = r.now().Add(readsRetry)
			r.log.Debug("reads host: no TCP connection, reading through the client's host", "peer", p, "err", err)
			return
		}
		if r.peers[p] == rp {
			delete(r.peers, p)
		}
		r.log.Debug("reads host: connected over TCP", "peer", p, "took", time.Since(start))
	}()
}

// tcpAddrs returns the direct TCP addresses the client's host knows for
// p, without loopback ones unless r.loopback.
func (r *readsHost) tcpAddrs(p peer.ID) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range r.main.Peerstore().Addrs(p) {
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
			continue
		}
		if _, err := a.ValueForProtocol(ma.P_TCP); err != nil {
			continue
		}
		if _, err := a.ValueForProtocol(ma.P_WS); err == nil {
			continue
		}
		if !r.loopback && manet.IsIPLoopback(a) {
			continue
		}
		out = append(out, a)
	}
	return out
}
