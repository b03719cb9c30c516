// Package placement is the backend's shard placement as pure index
// arithmetic: which of a list of provider nodes receives each shard of a
// segment. Assign rotates over the nodes; Plan (and Diverse) does the same
// while keeping each node, each verified owner and each network below a
// share of the segment (GroupCap). The backend maps the indexes onto its
// node list; the simulator (jellyfish sim) calls Assign, which is what
// Plan does for nodes that name no groups, so its model places shards as
// uploads do on a network of independent nodes.
package placement

// Assign returns, for each of the total shards of segment seg, the index
// of its node among nodeCount nodes. Shard i goes to node
// (salt + seg·total + i) mod nodeCount: the shards of one segment land on
// distinct nodes when nodeCount ≥ total, and are spread evenly (each node
// holding ⌊total/nodeCount⌋ or ⌈total/nodeCount⌉) otherwise. The rotation
// by seg spreads consecutive segments over different nodes; the salt (random
// per object) keeps different objects from all starting on the same nodes.
// nodeCount must be positive.
func Assign(nodeCount int, salt, seg uint64, total int) []int {
	out := make([]int, total)
	start := int((salt%uint64(nodeCount) + (seg*uint64(total))%uint64(nodeCount)) % uint64(nodeCount))
	for i := range out {
		out[i] = (start + i) % nodeCount
	}
	return out
}

// Counts returns how many of segment seg's total shards each of the
// nodeCount nodes holds under Assign.
func Counts(nodeCount int, salt, seg uint64, total int) []int {
	c := make([]int, nodeCount)
	for _, n := range Assign(nodeCount, salt, seg, total) {
		c[n]++
	}
	return c
}

// Node is a provider as placement sees it: the failure domains it is in
// besides itself. Nodes of one owner may leave together, or be run by one
// hostile party; nodes of one network share a router, a provider, a
// building, and cost an attacker one address block.
type Node struct {
	// Owner is the node's verified owner: an account whose record lists
	// the node and whom the node's own record names. "" means the node
	// is its own owner (an owner it merely claims counts for nothing).
	Owner string
	// Net is the network the node was reached at (an IPv4 /24, an IPv6
	// /48), "" when unknown. Every node of unknown network counts in one
	// network, so that nothing unseen escapes the cap.
	Net string
	// Relayed marks a node behind a NAT that this client reached by a
	// hole punch: clients behind symmetric NATs cannot reach it, so a
	// segment should keep enough shards on other nodes for them
	// (Plan.LimitRelayed).
	Relayed bool
}

// groupShare: one node, one owner or one network should hold at most
// ⌈total/groupShare⌉ of a segment's shards (GroupCap).
const groupShare = 8

// GroupCap returns the most shards of a segment of k data and m parity
// shards that one node, the nodes of one owner or the nodes of one network
// should hold: ⌈(k+m)/8⌉, at most m (a group holding more than m could
// make the segment unreadable alone) and at least 1. For the default
// 10+20 it is 4, for metadata's 2+6 it is 1. docs/availability.md gives
// the figures behind the choice.
func GroupCap(k, m int) int {
	return max(1, min((k+m+groupShare-1)/groupShare, m))
}

// Plan places the shards of one segment over nodes, one at a time. Each
// shard goes to the node that keeps every group within the cap in this
// order of importance: the node itself, the nodes behind NATs
// (LimitRelayed), its owner, its network; among
// nodes equally placed, to the one holding fewest shards of the segment,
// then to the first in the rotation Assign uses (from (salt + seg·total)
// mod len(nodes)). When every group is within the cap, and in particular
// when no node names an owner or a network, shards therefore land exactly
// where Assign puts them. When the caps cannot all be kept (fewer than
// ⌈total/cap⌉ owners or networks, fewer nodes than total), each overflow
// is kept as small as the more important caps allow: a node never holds
// more than cap shards while some node could take one within it, and the
// shards that must go to a full network go to its nodes one each. A Plan
// is not safe for concurrent use.
type Plan struct {
	nodes  []Node
	cap    int
	start  int
	count  []int
	owners map[string]int
	nets   map[string]int
	out    []bool
	// relayedCap bounds the shards on Relayed nodes (0: no bound), before
	// every other cap; relayed counts them.
	relayedCap, relayed int
}

// NewPlan returns a plan for segment seg of total shards over nodes, with
// at most cap shards per group where that can be kept. nodes must not be
// empty and cap must be positive.
func NewPlan(nodes []Node, cap int, salt, seg uint64, total int) *Plan {
	n := uint64(len(nodes))
	return &Plan{
		nodes: nodes, cap: cap,
		start: int((salt%n + (seg*uint64(total))%n) % n),
		count: make([]int, len(nodes)), owners: map[string]int{}, nets: map[string]int{},
		out: make([]bool, len(nodes)),
	}
}

// Add counts a shard of the segment on node j (one placed, or one a node
// holds already when a repair places the missing ones).
func (p *Plan) Add(j int) { p.move(j, 1) }

// Remove takes back a shard counted on node j (its put failed).
func (p *Plan) Remove(j int) { p.move(j, -1) }

// LimitRelayed keeps at most n of the segment's shards on Relayed nodes
// where the other nodes can take the rest, a bound second only to the
// node cap (a few dialable nodes are not loaded past it to spare relayed
// ones): with n = m, any client, even one that no hole punch reaches
// from, finds k shards on nodes it can dial. Call it before Add and Next.
func (p *Plan) LimitRelayed(n int) { p.relayedCap = n }

func (p *Plan) move(j, d int) {
	p.count[j] += d
	if p.nodes[j].Relayed {
		p.relayed += d
	}
	if o := p.nodes[j].Owner; o != "" {
		p.owners[o] += d
	}
	p.nets[p.nodes[j].Net] += d
}

// Exclude keeps node j from being picked again (it failed a put).
func (p *Plan) Exclude(j int) { p.out[j] = true }

// Next picks the node for one more shard, counts the shard on it and
// returns its index; false when every node is excluded.
func (p *Plan) Next() (int, bool) {
	best, bestKey := -1, [6]int{}
	for d := range len(p.nodes) {
		j := (p.start + d) % len(p.nodes)
		if p.out[j] {
			continue
		}
		owner := p.count[j]
		if o := p.nodes[j].Owner; o != "" {
			owner = p.owners[o]
		}
		relayed := 0
		if p.nodes[j].Relayed && p.relayedCap > 0 {
			relayed = max(0, p.relayed+1-p.relayedCap)
		}
		k := [6]int{p.over(p.count[j]), relayed, p.over(owner), p.over(p.nets[p.nodes[j].Net]), p.count[j], d}
		if best < 0 || less(k, bestKey) {
			best, bestKey = j, k
		}
		if k == [6]int{0, 0, 0, 0, 0, d} {
			// Nothing later in the rotation can beat a node that holds
			// nothing of the segment and overflows no group: the scan of
			// a large network ends at the first such node.
			break
		}
	}
	if best < 0 {
		return -1, false
	}
	p.Add(best)
	return best, true
}

// over is by how much one more shard takes a group holding load past the
// cap.
func (p *Plan) over(load int) int { return max(0, load+1-p.cap) }

func less(a, b [6]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// Diverse returns, for each of the total shards of segment seg, the index
// of its node among nodes, as a fresh Plan places them.
func Diverse(nodes []Node, cap int, salt, seg uint64, total int) []int {
	p := NewPlan(nodes, cap, salt, seg, total)
	out := make([]int, total)
	for i := range out {
		out[i], _ = p.Next()
	}
	return out
}
