package shardproto

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func TestAddrGroup(t *testing.T) {
	for in, want := range map[string]string{
		"/ip4/192.0.2.7/tcp/4001":             "192.0.2.7/32",
		"/ip4/127.0.0.3/udp/9/quic-v1":        "127.0.0.3/32",
		"/ip6/2001:db8:1:2ff:1::9/tcp/4001":   "2001:db8:1:200::/56",
		"/ip6/::ffff:192.0.2.7/tcp/1":         "192.0.2.7/32",
		"/ip4/198.51.100.1/tcp/1/p2p-circuit": "198.51.100.1/32",
		"/dns4/example.com/tcp/1":             "invalid Prefix",
		"/ip6zone/eth0/ip6/fe80::1/tcp/1":     "fe80::/56",
	} {
		a, err := ma.NewMultiaddr(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := addrGroup(a).String(); got != want {
			t.Errorf("addrGroup(%s) = %s, want %s", in, got, want)
		}
	}
	if addrGroup(nil).IsValid() {
		t.Error("nil address has a group")
	}
}

// fakeStream stands for a stream in the gate: it records its eviction.
type fakeStream struct {
	peer    peer.ID
	addr    netip.Prefix
	t       *ticket
	evicted bool
}

func arriveAll(t *testing.T, g *gate, streams ...*fakeStream) {
	t.Helper()
	for _, s := range streams {
		var ok bool
		s.t, ok = g.arrive(s.peer, s.addr, func() { s.evicted = true })
		if !ok {
			t.Fatal("gate closed")
		}
	}
}

func streams(n int, p peer.ID, addr string) []*fakeStream {
	out := make([]*fakeStream, n)
	for i := range out {
		out[i] = &fakeStream{peer: p, addr: netip.MustParsePrefix(addr)}
	}
	return out
}

func evictedCount(ss []*fakeStream) int {
	n := 0
	for _, s := range ss {
		if s.evicted {
			n++
		}
	}
	return n
}

func TestGatePendingCaps(t *testing.T) {
	g := newGate(caps{total: 10, perAddr: 4, perPeer: 2}, caps{total: 4, perAddr: 2, perPeer: 1})
	// A peer past its cap pushes out its own oldest streams.
	a := streams(5, "A", "192.0.2.1/32")
	arriveAll(t, g, a...)
	if fmt.Sprint(evictedCount(a[:3]), evictedCount(a[3:])) != "3 0" {
		t.Fatalf("peer cap: evicted %v", a)
	}
	// Another peer on the same address fills the address; one more pushes
	// out the address's oldest (A's), never another address's stream.
	other := streams(1, "Z", "198.51.100.1/32")
	arriveAll(t, g, other...)
	b := streams(3, "B", "192.0.2.1/32")
	arriveAll(t, g, b[:2]...)
	if evictedCount(a) != 3 || evictedCount(b) != 0 {
		t.Fatal("address below its cap pushed something out")
	}
	arriveAll(t, g, streams(1, "C", "192.0.2.1/32")...)
	if !a[3].evicted || a[4].evicted || evictedCount(b) != 0 || other[0].evicted {
		t.Fatalf("address cap: want A's oldest out; A %v B %v", a, b)
	}
	// The total: the oldest of all goes, A's last, then Z's.
	arriveAll(t, g, streams(2, "D", "203.0.113.1/32")...)
	arriveAll(t, g, streams(2, "E", "203.0.113.2/32")...)
	if gs := g.stats(); gs.Pending != 9 {
		t.Fatalf("pending %d, want 9", gs.Pending)
	}
	arriveAll(t, g, streams(1, "F", "203.0.113.3/32")...)
	if a[4].evicted || other[0].evicted {
		t.Fatal("pushed out below the total")
	}
	arriveAll(t, g, streams(1, "G", "203.0.113.4/32")...)
	if !a[4].evicted || other[0].evicted {
		t.Fatalf("total: want the oldest (A's last) out, got A %v Z %v", a, other)
	}
	arriveAll(t, g, streams(1, "H", "203.0.113.5/32")...)
	if !other[0].evicted || evictedCount(b) != 0 {
		t.Fatal("total: want the next oldest (Z) out")
	}
	if gs := g.stats(); gs.Pending != 10 || gs.Evicted != 6 || gs.PendingByAddr[netip.MustParsePrefix("192.0.2.1/32")] != 3 {
		t.Fatalf("stats %+v", gs)
	}
	// A pushed-out stream cannot be served; it leaves without counting.
	if g.serve(other[0].t) || !g.wasEvicted(other[0].t) {
		t.Fatal("evicted stream served")
	}
	g.leave(other[0].t)
	if gs := g.stats(); gs.Pending != 10 {
		t.Fatalf("an evicted stream's leave changed the count: %+v", gs)
	}
}

func TestGateServingCaps(t *testing.T) {
	g := newGate(caps{total: 100, perAddr: 100, perPeer: 100}, caps{total: 4, perAddr: 2, perPeer: 1})
	a := streams(2, "A", "192.0.2.1/32")
	b := streams(2, "B", "192.0.2.1/32")
	c := streams(1, "C", "192.0.2.2/32")
	d := streams(2, "D", "192.0.2.3/32")
	arriveAll(t, g, a...)
	arriveAll(t, g, b...)
	arriveAll(t, g, c...)
	arriveAll(t, g, d...)
	var got []bool
	for _, s := range []*fakeStream{a[0], a[1], b[0], b[1], c[0], d[0], d[1]} {
		got = append(got, g.serve(s.t))
	}
	// a[1]: peer cap; b[1]: peer cap; d[1]: total.
	if fmt.Sprint(got) != "[true false true false true true false]" {
		t.Fatalf("served %v", got)
	}
	e := streams(1, "E", "192.0.2.1/32")
	arriveAll(t, g, e...)
	g.leave(d[0].t)
	if g.serve(e[0].t) {
		t.Fatal("address cap passed")
	}
	gs := g.stats()
	if gs.Serving != 3 || gs.PeakServing != 4 || gs.Refused != 4 || gs.Pending != 0 {
		t.Fatalf("stats %+v", gs)
	}
	for _, s := range [][]*fakeStream{a, b, c, d[1:], e} {
		for _, x := range s {
			g.leave(x.t)
		}
	}
	if gs := g.stats(); gs.Serving != 0 || gs.Pending != 0 || len(gs.ServingByAddr) != 0 || len(gs.PendingByAddr) != 0 {
		t.Fatalf("after all left: %+v", gs)
	}
	if !g.close() {
		t.Fatal("close of an open gate")
	}
	g.wait()
	if _, ok := g.arrive("A", netip.Prefix{}, func() {}); ok {
		t.Fatal("closed gate admitted a stream")
	}
}
