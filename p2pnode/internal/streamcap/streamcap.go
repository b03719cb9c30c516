// Package streamcap serves the small request-and-answer protocols of a
// Jellyfish node (marks, time): it admits a protocol's streams within a
// cap in total and a cap per peer, puts each in the protocol's
// resource-manager service, bounds it by a deadline, and on Close resets
// the streams being served and waits for their handlers.
package streamcap

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Caps counts the streams a service serves. Make one with New.
type Caps struct {
	total, perPeer int

	mu      sync.Mutex
	closed  bool
	active  int
	byPeer  map[peer.ID]int
	running sync.WaitGroup
}

// New returns caps of total streams at once, perPeer of them from one peer.
func New(total, perPeer int) *Caps {
	return &Caps{total: total, perPeer: perPeer, byPeer: map[peer.ID]int{}}
}

// Enter admits a stream from p, or reports false when a cap is reached
// or the caps were closed. An admitted stream must Leave.
func (c *Caps) Enter(p peer.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.active >= c.total || c.byPeer[p] >= c.perPeer {
		return false
	}
	c.active++
	c.byPeer[p]++
	c.running.Add(1)
	return true
}

// Leave ends a stream Enter admitted.
func (c *Caps) Leave(p peer.ID) {
	c.mu.Lock()
	c.active--
	if c.byPeer[p]--; c.byPeer[p] == 0 {
		delete(c.byPeer, p)
	}
	c.mu.Unlock()
	c.running.Done()
}

// Close admits nothing more and reports whether it was open before.
func (c *Caps) Close() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	was := !c.closed
	c.closed = true
	return was
}

// Wait waits until every admitted stream left.
func (c *Caps) Wait() { c.running.Wait() }

// Server serves one protocol on a host. Make one with Serve.
type Server struct {
	h      host.Host
	id     protocol.ID
	caps   *Caps
	ctx    context.Context
	cancel context.CancelFunc
}

// Spec describes a served protocol.
type Spec struct {
	ID      protocol.ID
	Service string        // resource-manager service name
	Total   int           // streams served at once
	PerPeer int           // of them from one peer
	Timeout time.Duration // deadline of one stream
}

// Serve registers spec's protocol on h. serve handles one admitted
// stream within the deadline; an error resets the stream, nil closes it.
func Serve(h host.Host, spec Spec, serve func(network.Stream) error) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{h: h, id: spec.ID, caps: New(spec.Total, spec.PerPeer), ctx: ctx, cancel: cancel}
	h.SetStreamHandler(spec.ID, func(st network.Stream) {
		remote := st.Conn().RemotePeer()
		if !s.caps.Enter(remote) {
			st.ResetWithError(network.StreamResourceLimitExceeded)
			return
		}
		defer s.caps.Leave(remote)
		stop := context.AfterFunc(s.ctx, func() { st.Reset() })
		defer stop()
		if err := st.Scope().SetService(spec.Service); err != nil {
			st.ResetWithError(network.StreamResourceLimitExceeded)
			return
		}
		if err := st.SetDeadline(time.Now().Add(spec.Timeout)); err != nil {
			st.Reset()
			return
		}
		if err := serve(st); err != nil {
			st.Reset()
			return
		}
		st.Close()
	})
	return s
}

// Close unregisters the handler, resets the streams being served and
// waits for their handlers to return.
func (s *Server) Close() error {
	if !s.caps.Close() {
		return nil
	}
	s.h.RemoveStreamHandler(s.id)
	s.cancel()
	s.caps.Wait()
	return nil
}

// SetLimits declares a service's resource-manager limits in cfg, before
// cfg.AutoScale: twice its own stream caps (so its admission is the one
// that refuses) and memPerStream bytes of memory a stream.
func SetLimits(cfg *rcmgr.ScalingLimitConfig, service string, total, perPeer int, memPerStream int64) {
	cfg.AddServiceLimit(service,
		rcmgr.BaseLimit{StreamsInbound: 2 * total, StreamsOutbound: 2 * total, Streams: 4 * total, Memory: int64(total) * memPerStream},
		rcmgr.BaseLimitIncrease{},
	)
	cfg.AddServicePeerLimit(service,
		rcmgr.BaseLimit{StreamsInbound: 2 * perPeer, StreamsOutbound: 2 * perPeer, Streams: 4 * perPeer, Memory: int64(perPeer) * memPerStream},
		rcmgr.BaseLimitIncrease{},
	)
}
