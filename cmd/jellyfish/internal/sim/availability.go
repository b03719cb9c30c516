package sim

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/placement"
)

// Policy is how shards are put on nodes in the model.
type Policy string

const (
	// Backend places shards with the backend's placement.Assign: distinct
	// nodes when there are at least k+m, evenly spread otherwise.
	Backend Policy = "backend"
	// Random puts every shard on a node drawn uniformly and independently
	// (with replacement): a placement without any coordination.
	Random Policy = "random"
)

// ParsePolicy checks a policy name.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case Backend, Random:
		return p, nil
	}
	return "", fmt.Errorf("unknown placement policy %q (want %q or %q)", s, Backend, Random)
}

// Setup is one point of an availability figure: a segment of K data and M
// parity shards on Nodes nodes, each online with probability Uptime,
// independently of the others.
type Setup struct {
	K, M   int
	Uptime float64
	Nodes  int
	Policy Policy
}

// Validate rejects setups the model does not cover.
func (s Setup) Validate() error {
	switch {
	case s.K < 1 || s.M < 0 || s.K+s.M > 255:
		return fmt.Errorf("k=%d m=%d: want k ≥ 1, m ≥ 0, k+m ≤ 255", s.K, s.M)
	case s.Nodes < 1:
		return fmt.Errorf("%d nodes: want at least 1", s.Nodes)
	case !(s.Uptime >= 0 && s.Uptime <= 1):
		return fmt.Errorf("uptime %v: want a probability", s.Uptime)
	}
	_, err := ParsePolicy(string(s.Policy))
	return err
}

// Counts returns how many shards of a segment each node holds under the
// backend's placement, leaving out nodes that hold none. The multiset is
// the same for every segment index (the rotation only changes which nodes),
// so segment 0 stands for all.
func (s Setup) Counts() []int {
	var out []int
	for _, c := range placement.Counts(s.Nodes, 0, 0, s.K+s.M) {
		if c > 0 {
			out = append(out, c)
		}
	}
	return out
}

// Exact returns the probability that the segment can be read, and its
// complement computed separately (so that many nines stay accurate).
func (s Setup) Exact() (recover, fail float64) {
	switch s.Policy {
	case Random:
		return randomExact(s.Nodes, s.K+s.M, s.K, s.Uptime)
	default:
		return RecoverExact(s.Counts(), s.K, s.Uptime)
	}
}

// RecoverExact returns the probability that nodes holding counts[j] shards
// each, every node up independently with probability up, together hold at
// least k shards; and the probability that they do not. With one shard per
// node it is a binomial tail; otherwise a dynamic program over the nodes
// builds the distribution of shards online.
func RecoverExact(counts []int, k int, up float64) (recover, fail float64) {
	distinct := true
	for _, c := range counts {
		distinct = distinct && c == 1
	}
	var dist []float64
	if distinct {
		dist = BinomialPMF(len(counts), up)
	} else {
		dist = ShardsOnlinePMF(counts, up)
	}
	return tails(dist, k)
}

// tails splits a distribution of shards online at k.
func tails(dist []float64, k int) (atLeast, below float64) {
	for j, p := range dist {
		if j >= k {
			atLeast += p
		} else {
			below += p
		}
	}
	return atLeast, below
}

// BinomialPMF returns P(X = j) for j = 0..n, X ~ Binomial(n, p), from
// log-space terms so that large n do not overflow.
func BinomialPMF(n int, p float64) []float64 {
	out := make([]float64, n+1)
	switch p {
	case 0:
		out[0] = 1
		return out
	case 1:
		out[n] = 1
		return out
	}
	lp, lq := math.Log(p), math.Log1p(-p)
	for j := range out {
		out[j] = math.Exp(logChoose(n, j) + float64(j)*lp + float64(n-j)*lq)
	}
	return out
}

// logChoose returns ln C(n, j).
func logChoose(n, j int) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(j + 1))
	c, _ := math.Lgamma(float64(n - j + 1))
	return a - b - c
}

// ShardsOnlinePMF returns the distribution of the number of shards online
// when node j holds counts[j] shards and is up with probability up,
// independently: a dynamic program adding one node at a time.
func ShardsOnlinePMF(counts []int, up float64) []float64 {
	total := 0
	for _, c := range counts {
		total += c
	}
	dist := make([]float64, total+1)
	dist[0] = 1
	seen := 0
	for _, c := range counts {
		next := make([]float64, total+1)
		for j := 0; j <= seen; j++ {
			next[j] += dist[j] * (1 - up)
			next[j+c] += dist[j] * up
		}
		dist, seen = next, seen+c
	}
	return dist
}

// RecoverGivenDown returns the probability that a segment can be read when
// exactly down of the nodes are offline, every such set equally likely
// (hypergeometric rather than binomial); counts[j] is what node j holds
// and len(counts) is the number of nodes, including those holding none.
// It returns the complement too.
func RecoverGivenDown(counts []int, k, down int) (recover, fail float64) {
	n := len(counts)
	if down < 0 || down > n {
		return 0, 1
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	// ways[d][s]: number of ways (as a float) to choose d offline nodes
	// among those seen so far leaving s shards online.
	ways := make([][]float64, down+1)
	for d := range ways {
		ways[d] = make([]float64, total+1)
	}
	ways[0][0] = 1
	seen := 0
	for _, c := range counts {
		for d := down; d >= 0; d-- {
			for s := seen; s >= 0; s-- {
				w := ways[d][s]
				if w == 0 {
					continue
				}
				// This node online: its shards count. Offline: d+1.
				ways[d][s] = 0
				ways[d][s+c] += w
				if d+1 <= down {
					ways[d+1][s] += w
				}
			}
		}
		seen += c
	}
	all := math.Exp(logChoose(n, down))
	for s, w := range ways[down] {
		if s >= k {
			recover += w / all
		} else {
			fail += w / all
		}
	}
	return recover, fail
}

// randomExact is the exact value for the Random policy: given U nodes up
// (binomial), each of the n shards independently lies on an up node with
// probability U/nodes.
func randomExact(nodes, n, k int, up float64) (recover, fail float64) {
	for u, pu := range BinomialPMF(nodes, up) {
		r, f := tails(BinomialPMF(n, float64(u)/float64(nodes)), k)
		recover += pu * r
		fail += pu * f
	}
	return recover, fail
}

// Estimate is a Monte-Carlo estimate of a probability and its standard
// error, sqrt(p̂(1-p̂)/trials).
type Estimate struct {
	P, StdErr float64
	Trials    int
}

// newEstimate makes an Estimate from a count of successes.
func newEstimate(hits, trials int) Estimate {
	p := float64(hits) / float64(trials)
	return Estimate{P: p, StdErr: math.Sqrt(p * (1 - p) / float64(trials)), Trials: trials}
}

// MonteCarlo estimates the probability that the segment can be read by
// drawing, trials times, which nodes are up (and for the Random policy
// where each shard lies) and counting the shards online.
func (s Setup) MonteCarlo(trials int, rng *rand.Rand) Estimate {
	hits := 0
	switch s.Policy {
	case Random:
		up := make([]bool, s.Nodes)
		for range trials {
			for i := range up {
				up[i] = rng.Float64() < s.Uptime
			}
			online := 0
			for range s.K + s.M {
				if up[rng.IntN(s.Nodes)] {
					online++
				}
			}
			if online >= s.K {
				hits++
			}
		}
	default:
		counts := s.Counts()
		for range trials {
			online := 0
			for _, c := range counts {
				if rng.Float64() < s.Uptime {
					online += c
				}
			}
			if online >= s.K {
				hits++
			}
		}
	}
	return newEstimate(hits, trials)
}

// Nines returns -log10(fail): 0.999 is three nines. It is +Inf when fail
// underflows to zero.
func Nines(fail float64) float64 {
	return -math.Log10(fail)
}
