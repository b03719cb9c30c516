// Package placement is the backend's shard placement as pure index
// arithmetic: which of a list of provider nodes receives each shard of a
// segment. The backend maps the indexes onto its node list; the simulator
// (jellyfish sim) calls the same function, so its model places shards
// exactly as uploads do.
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
