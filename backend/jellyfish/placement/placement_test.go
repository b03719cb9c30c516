package placement

import (
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestAssignKnownAnswers(t *testing.T) {
	for _, c := range []struct {
		nodes int
		seg   uint64
		total int
		want  []int
	}{
		{5, 0, 3, []int{0, 1, 2}},
		{5, 1, 3, []int{3, 4, 0}},
		{4, 0, 6, []int{0, 1, 2, 3, 0, 1}},
		{4, 3, 6, []int{2, 3, 0, 1, 2, 3}},
		{1, 7, 3, []int{0, 0, 0}},
	} {
		if got := Assign(c.nodes, 0, c.seg, c.total); !slices.Equal(got, c.want) {
			t.Errorf("Assign(%d, %d, %d) = %v, want %v", c.nodes, c.seg, c.total, got, c.want)
		}
	}
}

func TestCountsEvenAndDistinct(t *testing.T) {
	for nodes := 1; nodes <= 40; nodes++ {
		for seg := range uint64(7) {
			c := Counts(nodes, 0, seg, 30)
			lo, hi := 30/nodes, (30+nodes-1)/nodes
			sum := 0
			for _, n := range c {
				sum += n
				if n != 0 && (n < lo || n > hi) || n == 0 && nodes <= 30 {
					t.Fatalf("%d nodes, segment %d: counts %v not even", nodes, seg, c)
				}
			}
			if sum != 30 {
				t.Fatalf("%d nodes: %d shards placed", nodes, sum)
			}
		}
	}
}

// TestSaltSpreadsObjects: objects with different salts start on different
// nodes, and the salt never changes how evenly one segment is spread.
func TestSaltSpreadsObjects(t *testing.T) {
	starts := map[int]bool{}
	for salt := range uint64(60) {
		a := Assign(60, salt*7919, 0, 30)
		starts[a[0]] = true
		seen := map[int]bool{}
		for _, n := range a {
			if seen[n] {
				t.Fatalf("salt %d: node %d twice", salt, n)
			}
			seen[n] = true
		}
		if !slices.Equal(Counts(7, salt, 3, 30), rotate(Counts(7, 0, 3, 30), int(salt%7))) {
			t.Fatalf("salt %d changes the spread", salt)
		}
	}
	if len(starts) < 30 {
		t.Fatalf("60 salts started on only %d nodes", len(starts))
	}
}

func rotate(c []int, by int) []int {
	out := make([]int, len(c))
	for i := range c {
		out[(i+by)%len(c)] = c[i]
	}
	return out
}

// groups counts a placement's shards per node, per owner (a node without
// one is its own) and per network.
func groups(nodes []Node, placed []int) (perNode, perOwner, perNet map[string]int) {
	perNode, perOwner, perNet = map[string]int{}, map[string]int{}, map[string]int{}
	for _, j := range placed {
		perNode[fmt.Sprint(j)]++
		if o := nodes[j].Owner; o != "" {
			perOwner[o]++
		} else {
			perOwner[fmt.Sprint("node ", j)]++
		}
		perNet[nodes[j].Net]++
	}
	return
}

func most(m map[string]int) (int, string) {
	n, at := 0, ""
	for k, v := range m {
		if v > n {
			n, at = v, k
		}
	}
	return n, at
}

// TestGroupCap pins the caps of the codes in use.
func TestGroupCap(t *testing.T) {
	for _, c := range []struct{ k, m, want int }{
		{10, 20, 4}, {2, 6, 1}, {2, 2, 1}, {20, 10, 4}, {29, 51, 10}, {4, 0, 1}, {29, 3, 3}, {1, 1, 1},
	} {
		if got := GroupCap(c.k, c.m); got != c.want {
			t.Errorf("GroupCap(%d, %d) = %d, want %d", c.k, c.m, got, c.want)
		}
	}
}

// TestDiverseWithoutGroupsIsAssign: nodes that name no owner and share one
// network (a network on one machine, or nothing known) are placed exactly
// as Assign places them.
func TestDiverseWithoutGroupsIsAssign(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 29, 30, 31, 60} {
		nodes := make([]Node, n)
		for _, total := range []int{1, 4, 8, 30} {
			for _, salt := range []uint64{0, 5, 1 << 40} {
				for seg := range uint64(4) {
					got := Diverse(nodes, 4, salt, seg, total)
					if want := Assign(n, salt, seg, total); !slices.Equal(got, want) {
						t.Fatalf("%d nodes, %d shards, salt %d, segment %d: %v, Assign gives %v", n, total, salt, seg, got, want)
					}
				}
			}
		}
	}
}

// sybilNet is honest nodes, each in its own /24, and sybil nodes all in
// one /24 (one machine or one rented block running many identities).
func sybilNet(honest, sybil int) []Node {
	var nodes []Node
	for i := range honest {
		nodes = append(nodes, Node{Net: fmt.Sprintf("ip4:10.%d.%d.0/24", i/256, i%256)})
	}
	for range sybil {
		nodes = append(nodes, Node{Net: "ip4:203.0.113.0/24"})
	}
	// Sorted by peer ID in the backend: mix them.
	mrand.New(mrand.NewPCG(1, 2)).Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	return nodes
}

// TestDiverseBoundsOneNetwork: 100 sybil identities on one /24 among 40
// honest nodes hold at most 4 of a segment's 30 shards (1 of the 8 of a
// metadata object's), whatever the salt and segment, and every shard has a
// node of its own. Assign, which knows no networks, gives them 21 on
// average (100 of 140 nodes).
func TestDiverseBoundsOneNetwork(t *testing.T) {
	nodes := sybilNet(40, 100)
	worstAssign := 0
	for _, code := range [][2]int{{10, 20}, {2, 6}} {
		total, cap := code[0]+code[1], GroupCap(code[0], code[1])
		for salt := range uint64(200) {
			for seg := range uint64(3) {
				placed := Diverse(nodes, cap, salt*7919, seg, total)
				perNode, _, perNet := groups(nodes, placed)
				if n, at := most(perNet); n > cap {
					t.Fatalf("%d+%d salt %d segment %d: network %s holds %d shards, cap %d", code[0], code[1], salt, seg, at, n, cap)
				}
				if n, _ := most(perNode); n > 1 {
					t.Fatalf("%d+%d: a node holds %d shards with %d nodes", code[0], code[1], n, len(nodes))
				}
				_, _, a := groups(nodes, Assign(len(nodes), salt*7919, seg, total))
				worstAssign = max(worstAssign, a["ip4:203.0.113.0/24"])
			}
		}
	}
	t.Logf("the sybil /24 holds at most 4 of 30 shards; Assign gave it up to %d", worstAssign)
}

// TestDiverseBoundsOneOwner: a verified owner with 25 nodes, each in a
// network of its own, among 35 other nodes holds at most 4 of 30 shards,
// each shard on a node of its own. (A node whose owner is not verified
// has Owner "": the backend drops claims it cannot check.)
func TestDiverseBoundsOneOwner(t *testing.T) {
	var nodes []Node
	for i := range 60 {
		n := Node{Net: fmt.Sprintf("ip6:2001:db8:%x::/48", i)}
		if i%12 < 5 {
			n.Owner = "owner-a"
		}
		nodes = append(nodes, n)
	}
	for salt := range uint64(100) {
		placed := Diverse(nodes, 4, salt, 0, 30)
		perNode, perOwner, _ := groups(nodes, placed)
		if perOwner["owner-a"] > 4 {
			t.Fatalf("salt %d: the owner holds %d of 30 shards", salt, perOwner["owner-a"])
		}
		if n, _ := most(perNode); n > 1 {
			t.Fatalf("salt %d: a node holds %d shards", salt, n)
		}
	}
}

// TestDiverseSmallNetworks: when the caps cannot all hold, placement
// falls back in order: no node above the cap while another can take a
// shard within it, then the owner and network caps as far as they go,
// and what must overflow a network goes to its nodes one each.
func TestDiverseSmallNetworks(t *testing.T) {
	// 5 honest nodes and 30 sybils on one /24: the honest nodes take the
	// cap each (20 shards), the sybil /24 the other 10, one per node. With
	// the sybils withholding, the 20 left still rebuild the segment.
	nodes := sybilNet(5, 30)
	for salt := range uint64(50) {
		perNode, _, perNet := groups(nodes, Diverse(nodes, 4, salt, 0, 30))
		if perNet["ip4:203.0.113.0/24"] != 10 {
			t.Fatalf("salt %d: the sybil /24 holds %d, want 10", salt, perNet["ip4:203.0.113.0/24"])
		}
		for j, c := range perNode {
			var i int
			fmt.Sscan(j, &i)
			if c > 4 || nodes[i].Net == "ip4:203.0.113.0/24" && c > 1 {
				t.Fatalf("salt %d: node %d in %s holds %d", salt, i, nodes[i].Net, c)
			}
		}
	}
	// One node alone in its /24 beside 29 in one /24: it holds the cap,
	// not half of the segment; the others one each.
	nodes = make([]Node, 30)
	for i := range nodes {
		nodes[i].Net = "lan"
	}
	nodes[17].Net = "elsewhere"
	for salt := range uint64(50) {
		perNode, _, perNet := groups(nodes, Diverse(nodes, 4, salt, 0, 30))
		if perNet["elsewhere"] != 4 {
			t.Fatalf("salt %d: the lone node holds %d, want 4", salt, perNet["elsewhere"])
		}
		for j, c := range perNode {
			if j != "17" && c > 1 {
				t.Fatalf("salt %d: node %s holds %d", salt, j, c)
			}
		}
	}
	// A verified owner with 25 nodes and 20 other nodes: the owner keeps
	// its cap and the others take two shards where needed (26 on 20), as
	// a node may hold up to the cap before an owner goes past it.
	nodes = nil
	for i := range 45 {
		n := Node{Net: fmt.Sprint("net", i)}
		if i%9 < 5 {
			n.Owner = "owner-a"
		}
		nodes = append(nodes, n)
	}
	for salt := range uint64(50) {
		perNode, perOwner, _ := groups(nodes, Diverse(nodes, 4, salt, 0, 30))
		if perOwner["owner-a"] != 4 {
			t.Fatalf("salt %d: the owner holds %d, want 4", salt, perOwner["owner-a"])
		}
		if n, _ := most(perNode); n > 2 {
			t.Fatalf("salt %d: a node holds %d", salt, n)
		}
	}
	// Three networks of 4 nodes: 30 shards cannot keep any cap; each
	// network takes 10, no node more than 3.
	nodes = nil
	for i := range 12 {
		nodes = append(nodes, Node{Net: fmt.Sprint("net", i%3)})
	}
	perNode, _, perNet := groups(nodes, Diverse(nodes, 4, 3, 1, 30))
	for n, c := range perNet {
		if c != 10 {
			t.Fatalf("network %s holds %d, want 10", n, c)
		}
	}
	if n, _ := most(perNode); n > 3 {
		t.Fatalf("a node holds %d", n)
	}
}

// TestPlanRetriesStayDiverse: a put that fails is taken back and the node
// excluded; the next pick keeps the caps. With every node excluded there is
// no pick.
func TestPlanRetriesStayDiverse(t *testing.T) {
	nodes := sybilNet(40, 100)
	p := NewPlan(nodes, 4, 9, 0, 30)
	var placed []int
	for range 30 {
		j, _ := p.Next()
		placed = append(placed, j)
	}
	// Every honest node fails once: each shard moves, within the caps.
	for i, j := range placed {
		if nodes[j].Net == "ip4:203.0.113.0/24" {
			continue
		}
		p.Remove(j)
		p.Exclude(j)
		nj, ok := p.Next()
		if !ok {
			t.Fatal("no node left")
		}
		placed[i] = nj
	}
	_, _, perNet := groups(nodes, placed)
	if perNet["ip4:203.0.113.0/24"] > 4 {
		t.Fatalf("after retries the sybil /24 holds %d", perNet["ip4:203.0.113.0/24"])
	}
	q := NewPlan(nodes[:2], 4, 0, 0, 3)
	q.Exclude(0)
	q.Exclude(1)
	if _, ok := q.Next(); ok {
		t.Fatal("a pick with every node excluded")
	}
}

// TestPlanLargeNetworks: 100,000 providers (1,000 times a test network),
// a fifth of them in one /24 and a tenth of one verified owner: 200
// segments of 30 shards keep the caps, each on 30 nodes, and take well
// under the test's bound of 10 s (about 0.2 s on a busy 2-core machine):
// a pick stops at the first node in the rotation that overflows nothing.
func TestPlanLargeNetworks(t *testing.T) {
	nodes := make([]Node, 100_000)
	for i := range nodes {
		switch {
		case i%5 == 0:
			nodes[i].Net = "ip4:203.0.113.0/24"
		case i%10 == 1:
			nodes[i] = Node{Owner: "big", Net: fmt.Sprintf("ip6:2001:db8:%x::/48", i)}
		default:
			nodes[i].Net = fmt.Sprintf("ip4:10.%d.%d.0/24", i>>16, (i>>8)&0xff)
		}
	}
	start := time.Now()
	for seg := range uint64(200) {
		placed := Diverse(nodes, 4, 12345, seg, 30)
		perNode, perOwner, perNet := groups(nodes, placed)
		if n, at := most(perNet); n > 4 {
			t.Fatalf("segment %d: network %s holds %d", seg, at, n)
		}
		if perOwner["big"] > 4 || len(perNode) != 30 {
			t.Fatalf("segment %d: owner holds %d, %d nodes used", seg, perOwner["big"], len(perNode))
		}
	}
	took := time.Since(start)
	t.Logf("200 segments over 100,000 providers placed in %v", took)
	if took > 10*time.Second {
		t.Fatalf("placing 200 segments took %v", took)
	}
}

// TestLimitRelayed: with enough dialable nodes a segment keeps at most
// the limit on relayed ones, whatever the rotation's start; without the
// limit some starts put more there; with too few dialable nodes each
// takes no more than the node cap and the rest overflows to relayed ones.
func TestLimitRelayed(t *testing.T) {
	nodes := func(public, relayed int) []Node {
		var out []Node
		for i := range public + relayed {
			out = append(out, Node{Net: fmt.Sprintf("net%d", i), Relayed: i >= public})
		}
		return out
	}
	count := func(ns []Node, limit int, salt uint64, total int) (relayed int, perNode map[int]int) {
		p := NewPlan(ns, 1, salt, 0, total)
		p.LimitRelayed(limit)
		perNode = map[int]int{}
		for range total {
			j, ok := p.Next()
			if !ok {
				t.Fatal("no node")
			}
			perNode[j]++
			if ns[j].Relayed {
				relayed++
			}
		}
		return relayed, perNode
	}
	more := false
	for salt := range uint64(10) {
		if r, _ := count(nodes(4, 6), 3, salt, 6); r > 3 {
			t.Fatalf("salt %d: %d of 6 shards on relayed nodes, limit 3", salt, r)
		}
		if r, _ := count(nodes(4, 6), 0, salt, 6); r > 3 {
			more = true
		}
		r, per := count(nodes(2, 6), 3, salt, 6)
		for j, c := range per {
			if c > 1 {
				t.Fatalf("salt %d: node %d holds %d shards, node cap 1", salt, j, c)
			}
		}
		if r != 4 {
			t.Fatalf("salt %d: two dialable nodes, %d shards on relayed nodes, want 4", salt, r)
		}
	}
	if !more {
		t.Fatal("without the limit no start put more than 3 shards on relayed nodes: the test shows nothing")
	}
}
