package shardproto

import (
	"container/list"
	"maps"
	"net/netip"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// addrGroup returns the network a connection's remote address counts
// under for the per-address caps: an IPv4 address by itself, an IPv6
// address by its /56 (the prefix libp2p's connection limiter groups by,
// and a common delegation to one customer). A relayed connection counts
// under its relay's address. It returns the invalid prefix for an address
// without an IP; such streams meet only the per-peer and total caps.
func addrGroup(a ma.Multiaddr) netip.Prefix {
	if a == nil {
		return netip.Prefix{}
	}
	ip, err := manet.ToIP(a)
	if err != nil {
		return netip.Prefix{}
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Prefix{}
	}
	addr = addr.Unmap()
	bits := 32
	if addr.Is6() {
		bits = 56
	}
	p, _ := addr.Prefix(bits)
	return p
}

// caps are the stream caps of one phase of admission: in total, per
// address group and per peer.
type caps struct {
	total, perAddr, perPeer int
}

// phase counts the streams in one phase of admission.
type phase struct {
	n      int
	peak   int
	byAddr map[netip.Prefix]int
	byPeer map[peer.ID]int
}

func newPhase() phase {
	return phase{byAddr: make(map[netip.Prefix]int), byPeer: make(map[peer.ID]int)}
}

// full reports whether a stream of t's peer and address group would pass
// a cap of c.
func (ph *phase) full(c caps, t *ticket) bool {
	return ph.n >= c.total || ph.byPeer[t.peer] >= c.perPeer || (t.addr.IsValid() && ph.byAddr[t.addr] >= c.perAddr)
}

func (ph *phase) add(t *ticket) {
	ph.n++
	ph.peak = max(ph.peak, ph.n)
	ph.byPeer[t.peer]++
	if t.addr.IsValid() {
		ph.byAddr[t.addr]++
	}
}

func (ph *phase) remove(t *ticket) {
	ph.n--
	if ph.byPeer[t.peer]--; ph.byPeer[t.peer] <= 0 {
		delete(ph.byPeer, t.peer)
	}
	if t.addr.IsValid() {
		if ph.byAddr[t.addr]--; ph.byAddr[t.addr] <= 0 {
			delete(ph.byAddr, t.addr)
		}
	}
}

type ticketState int

const (
	pending ticketState = iota // waiting for its header
	evicted                    // pushed out to make room for a newer stream
	serving                    // holds a serving slot
	done                       // refused, or left
)

// ticket is one stream's place in the gate.
type ticket struct {
	peer  peer.ID
	addr  netip.Prefix // invalid: no per-address cap
	evict func()       // ends the stream's wait; called outside the gate's lock
	elem  *list.Element
	state ticketState
}

// gate admits the service's streams in two phases. A stream waiting for
// its request header holds a pending place. The pending places are capped
// in total, per address group and per peer, and a new stream always gets
// one: when a cap is reached, the oldest pending stream of the same peer,
// else of the same address group, else of all, is pushed out (reset) to
// make room. An
// honest header arrives within a round trip of the stream opening, while
// a slowloris one never does, so the oldest are the ones to let go, and a
// peer or address at its cap only ever pushes out its own streams. A
// stream whose header decoded (and whose owner signature checked) then
// takes a serving slot, capped the same three ways; a stream beyond those
// caps is refused, not queued.
type gate struct {
	pendingCaps, servingCaps caps

	mu       sync.Mutex
	closed   bool
	queue    list.List // pending tickets, oldest first
	pending  phase
	serving  phase
	evicted  int64
	refused  int64
	handlers sync.WaitGroup
}

func newGate(pendingCaps, servingCaps caps) *gate {
	return &gate{pendingCaps: pendingCaps, servingCaps: servingCaps, pending: newPhase(), serving: newPhase()}
}

// arrive gives a new stream from peer p at address group addr a pending
// place, pushing out older pending streams if a cap requires it. The gate
// calls evict if the new stream is pushed out in turn: it must end the
// stream's wait for its header without blocking (the handler then finds
// the ticket evicted and resets the stream itself, so that a peer that
// does not read cannot stall the stream that pushed its own out). arrive
// reports false once the gate is closed. A ticket must leave.
func (g *gate) arrive(p peer.ID, addr netip.Prefix, evict func()) (*ticket, bool) {
	t := &ticket{peer: p, addr: addr, evict: evict}
	var victims []*ticket
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, false
	}
	c := g.pendingCaps
	for g.pending.full(c, t) {
		var v *ticket
		switch {
		case g.pending.byPeer[p] >= c.perPeer:
			v = g.oldest(func(o *ticket) bool { return o.peer == p })
		case addr.IsValid() && g.pending.byAddr[addr] >= c.perAddr:
			v = g.oldest(func(o *ticket) bool { return o.addr == addr })
		default: // only the total is reached
			v = g.oldest(func(*ticket) bool { return true })
		}
		if v == nil {
			break // unreachable while the caps are positive
		}
		g.queue.Remove(v.elem)
		g.pending.remove(v)
		v.state = evicted
		g.evicted++
		victims = append(victims, v)
	}
	t.elem = g.queue.PushBack(t)
	g.pending.add(t)
	g.handlers.Add(1)
	g.mu.Unlock()
	for _, v := range victims {
		v.evict()
	}
	return t, true
}

// wasEvicted reports whether t was pushed out to make room.
func (g *gate) wasEvicted(t *ticket) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return t.state == evicted
}

// oldest returns the oldest pending ticket matching match, or nil.
func (g *gate) oldest(match func(*ticket) bool) *ticket {
	for e := g.queue.Front(); e != nil; e = e.Next() {
		if o := e.Value.(*ticket); match(o) {
			return o
		}
	}
	return nil
}

// serve moves a pending stream to a serving slot. It reports false if the
// stream was pushed out meanwhile or a serving cap is reached; the caller
// then resets it.
func (g *gate) serve(t *ticket) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.state != pending {
		return false
	}
	g.queue.Remove(t.elem)
	g.pending.remove(t)
	if g.closed || g.serving.full(g.servingCaps, t) {
		t.state = done
		g.refused++
		return false
	}
	t.state = serving
	g.serving.add(t)
	return true
}

// turnAway refuses t at once, as serve would, when its peer, its address
// or the holder has no free serving slot, and reports whether it did. The
// service asks before checking a request's signature: verifying costs more
// than the request does, and a peer whose slots are all taken must not make
// the holder verify signatures only to refuse them.
func (g *gate) turnAway(t *ticket) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.state != pending || !(g.closed || g.serving.full(g.servingCaps, t)) {
		return false
	}
	g.queue.Remove(t.elem)
	g.pending.remove(t)
	t.state = done
	g.refused++
	return true
}

// leave gives up whatever place t holds.
func (g *gate) leave(t *ticket) {
	g.mu.Lock()
	switch t.state {
	case pending:
		g.queue.Remove(t.elem)
		g.pending.remove(t)
	case serving:
		g.serving.remove(t)
	}
	t.state = done
	g.mu.Unlock()
	g.handlers.Done()
}

// close admits nothing more and reports whether the gate was open.
func (g *gate) close() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	was := !g.closed
	g.closed = true
	return was
}

// drain closes the gate and pushes out every stream waiting for its
// header, as arrive does to make room: those streams are reset with the
// code clients retry on, and the streams being served go on.
func (g *gate) drain() {
	var victims []*ticket
	g.mu.Lock()
	g.closed = true
	for e := g.queue.Front(); e != nil; e = g.queue.Front() {
		v := e.Value.(*ticket)
		g.queue.Remove(e)
		g.pending.remove(v)
		v.state = evicted
		g.evicted++
		victims = append(victims, v)
	}
	g.mu.Unlock()
	for _, v := range victims {
		v.evict()
	}
}

// wait waits until every admitted stream left.
func (g *gate) wait() { g.handlers.Wait() }

// gateStats is a snapshot of a gate's counts.
type gateStats struct {
	Pending, Serving         int
	PeakPending, PeakServing int
	// Evicted counts the pending streams reset to make room, Refused the
	// streams refused a serving slot.
	Evicted, Refused int64
	// PendingByAddr and ServingByAddr count the streams per address group.
	PendingByAddr, ServingByAddr map[netip.Prefix]int
}

func (g *gate) stats() gateStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return gateStats{
		Pending: g.pending.n, Serving: g.serving.n, PeakPending: g.pending.peak, PeakServing: g.serving.peak,
		Evicted: g.evicted, Refused: g.refused,
		PendingByAddr: maps.Clone(g.pending.byAddr), ServingByAddr: maps.Clone(g.serving.byAddr),
	}
}
