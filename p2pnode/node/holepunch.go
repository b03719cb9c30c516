package node

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
)

// Punches counts the hole punches this node started (it starts one when a
// peer reaches it through a relay) and how they ended.
type Punches struct {
	Succeeded, Failed uint64
}

// punchCounter is the hole punching service's event tracer.
type punchCounter struct {
	ok, failed atomic.Uint64

	mu sync.Mutex
	// punched holds when the last punch to each peer succeeded, at most
	// maxPunched peers (the oldest is forgotten first).
	punched map[peer.ID]time.Time
}

// maxPunched bounds the peers whose last successful punch a node keeps.
const maxPunched = 1024

func (c *punchCounter) Trace(evt *holepunch.Event) {
	e, ok := evt.Evt.(*holepunch.EndHolePunchEvt)
	if !ok {
		return
	}
	if !e.Success {
		c.failed.Add(1)
		return
	}
	c.ok.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.punched == nil {
		c.punched = map[peer.ID]time.Time{}
	}
	if _, known := c.punched[evt.Remote]; !known && len(c.punched) >= maxPunched {
		var oldest peer.ID
		var at time.Time
		for p, t := range c.punched {
			if oldest == "" || t.Before(at) {
				oldest, at = p, t
			}
		}
		delete(c.punched, oldest)
	}
	c.punched[evt.Remote] = time.Unix(0, evt.Timestamp)
}

func (c *punchCounter) punchedAt(p peer.ID) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.punched[p]
	return t, ok
}

func (c *punchCounter) get() Punches {
	return Punches{Succeeded: c.ok.Load(), Failed: c.failed.Load()}
}

// HolePunches counts the hole punches the node started since it started;
// zero when Config.HolePunching is off.
func (n *Node) HolePunches() Punches { return n.punches.get() }

// PunchedAt returns when the last hole punch this node started to p
// succeeded, if one did (of the last 1,024 peers punched to).
func (n *Node) PunchedAt(p peer.ID) (time.Time, bool) { return n.punches.punchedAt(p) }

// HolePunching reports whether the node punches holes (Config.HolePunching)
// and serves and uses relays (Config.Relays).
func (n *Node) HolePunching() (punch, relays bool) { return n.cfg.HolePunching, n.cfg.Relays }
