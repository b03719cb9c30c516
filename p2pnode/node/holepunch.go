package node

import (
	"sync/atomic"

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
}

func (c *punchCounter) Trace(evt *holepunch.Event) {
	if e, ok := evt.Evt.(*holepunch.EndHolePunchEvt); ok {
		if e.Success {
			c.ok.Add(1)
		} else {
			c.failed.Add(1)
		}
	}
}

func (c *punchCounter) get() Punches {
	return Punches{Succeeded: c.ok.Load(), Failed: c.failed.Load()}
}

// HolePunches counts the hole punches the node started since it started;
// zero when Config.HolePunching is off.
func (n *Node) HolePunches() Punches { return n.punches.get() }

// HolePunching reports whether the node punches holes (Config.HolePunching)
// and serves and uses relays (Config.Relays).
func (n *Node) HolePunching() (punch, relays bool) { return n.cfg.HolePunching, n.cfg.Relays }
