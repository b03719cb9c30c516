package karma

import (
	"fmt"
	"math/bits"
	"time"
)

// GiB is 2^30 bytes.
const GiB int64 = 1 << 30

// MaxTier is the largest storage tier: 2^20 GiB (1 PiB).
const MaxTier = 20

// DefaultStarter is the allowance of an account with no node that counts
// (a setting; 1 GiB by default): enough to try Jellyfish, not to live on.
const DefaultStarter = 1 * GiB

// TierBytes returns the size of tier t, 2^t GiB (t clamped to 0..MaxTier).
func TierBytes(t int) int64 { return GiB << min(max(t, 0), MaxTier) }

// TierOf returns the largest tier not above b, or −1 when b is under 1 GiB.
func TierOf(b int64) int {
	if b < GiB {
		return -1
	}
	return min(bits.Len64(uint64(b/GiB))-1, MaxTier)
}

// Credited space follows what a node has been shown to hold: at most
// ShownGrowth times the shard bytes it holds for accounts with earned
// allowances, plus ShownFloor (shown by test shards it accepted while
// being vetted), and no more than it shares. A node that refused a put for
// lack of room below what it declared is credited what it holds and no
// more, until it accepts again. Growth × uptime must exceed 1 for a
// network to grow from nothing (docs/design.md §6.8).
const (
	ShownGrowth = 2.0
	ShownFloor  = 2 * GiB
)

// Shown returns the space credited to a node sharing declared bytes that
// holds held shard bytes of other accounts (see ShownGrowth); full says it
// refused a put for lack of room since it last accepted one.
func Shown(held, declared int64, full bool) int64 {
	return ShownWith(held, declared, full, ShownGrowth, ShownFloor)
}

// ShownWith is Shown with another growth and floor (for models).
func ShownWith(held, declared int64, full bool, growth float64, floor int64) int64 {
	held = max(held, 0)
	if full {
		return min(held, declared)
	}
	if f := growth*float64(held) + float64(floor); f < float64(declared) {
		return int64(f)
	}
	return declared
}

// Node is what counts of one node toward its account's allowance.
type Node struct {
	ID string
	// Shared is the space the node offers (its tier's size).
	Shared int64
	// Shown bounds Shared by what the node has been shown to hold or
	// accept (see docs/design.md, "Credit only what is real"); a negative
	// value means no bound is known and nothing is credited.
	Shown    int64
	Standing Standing
}

// Credit returns the allowance node n earns: min(shared, shown) × uptime,
// in whole MiB; zero until the node is vetted. Tiers are the steps of
// what a node shares; the credit is not rounded to one, or every uptime
// under 1 would count as a half.
func Credit(n Node) int64 {
	if !n.Standing.Vetted() || n.Shown < 0 {
		return 0
	}
	space := min(n.Shared, n.Shown)
	if space <= 0 {
		return 0
	}
	up := min(max(n.Standing.Uptime, 0), 1)
	return int64(float64(space)*up) &^ (1<<20 - 1)
}

// Allowance is an account's allowance at one time, with its reasons.
type Allowance struct {
	Bytes int64
	// Starter is set when the allowance is the starter allowance: the
	// account has no node that earns more.
	Starter bool
	// Zeroed names the node whose strikes zero the allowance, and Until
	// says when that ends if nothing new is reported.
	Zeroed string
	Until  time.Time
	// Credits per node, in the order given.
	Credits []int64
}

// Reason says in words why the allowance is what it is.
func (a Allowance) Reason() string {
	switch {
	case a.Zeroed != "":
		return fmt.Sprintf("zero: node %s has %d deleted parts in %d days, until %s",
			a.Zeroed, StrikesToZero, WindowEpochs, a.Until.UTC().Format(time.DateOnly))
	case a.Starter:
		return "starter allowance: no node of the account counts yet"
	}
	return "the account's nodes: shared space × uptime"
}

// AccountAllowance returns the allowance of an account from its nodes —
// only nodes whose record names the account and which the account's
// record names (see LinkedNodes) — and the starter allowance. A node with
// StrikesToZero strikes zeroes the allowance; otherwise it is the sum of
// the nodes' credits, and never less than starter.
func AccountAllowance(nodes []Node, starter int64) Allowance {
	var a Allowance
	for _, n := range nodes {
		if n.Standing.State == Malicious {
			if a.Zeroed == "" || n.Standing.Until.After(a.Until) {
				a.Zeroed, a.Until = n.ID, n.Standing.Until
			}
		}
		c := Credit(n)
		a.Credits = append(a.Credits, c)
		a.Bytes += c
	}
	switch {
	case a.Zeroed != "":
		a.Bytes = 0
	case a.Bytes < starter:
		a.Bytes, a.Starter = starter, true
	}
	return a
}

// LinkedNodes returns the IDs of nodes that count for account: those it
// names whose node record names it as owner (nodeOwner maps node IDs to
// the owner their records name). A node record names one owner, so a
// node counts for one account at most.
func LinkedNodes(account string, named []string, nodeOwner map[string]string) []string {
	var out []string
	seen := map[string]bool{}
	for _, id := range named {
		if !seen[id] && nodeOwner[id] == account {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// ShardBytes returns what storing size bytes costs in shard bytes under k
// data and m code shards per segment of at most segment bytes, before
// compression, with per-shard overhead bytes: usage is counted the way
// providers see it, so 10+20 costs three times the data and 10+10 two.
func ShardBytes(size int64, k, m int, segment int64, overhead int64) int64 {
	if size <= 0 || k <= 0 || m < 0 || segment <= 0 {
		return 0
	}
	var total int64
	for size > 0 {
		seg := min(size, segment)
		shard := (seg + int64(k) - 1) / int64(k)
		total += int64(k+m) * (shard + overhead)
		size -= seg
	}
	return total
}
