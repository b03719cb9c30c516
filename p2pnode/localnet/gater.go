package localnet

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// gater refuses connections to and from blocked peers. One gater belongs to
// one node slot and outlives restarts of that node.
type gater struct {
	mu      sync.RWMutex
	blocked map[peer.ID]bool
}

func newGater() *gater { return &gater{blocked: map[peer.ID]bool{}} }

func (g *gater) block(p peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.blocked[p] = true
}

func (g *gater) clear() []peer.ID {
	g.mu.Lock()
	defer g.mu.Unlock()
	var was []peer.ID
	for p := range g.blocked {
		was = append(was, p)
	}
	clear(g.blocked)
	return was
}

func (g *gater) allowed(p peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return !g.blocked[p]
}

func (g *gater) InterceptPeerDial(p peer.ID) bool { return g.allowed(p) }

func (g *gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.allowed(p) }

func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.allowed(p)
}

func (g *gater) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	return g.allowed(c.RemotePeer()), 0
}
