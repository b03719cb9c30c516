package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// DaysPerYear and DaysPerMonth fix the calendar of the durability model.
const (
	DaysPerYear  = 365.0
	DaysPerMonth = DaysPerYear / 12
)

// Durability is the durability model of one segment (a file of one
// segment) over a horizon:
//
//   - its K+M shards start on K+M distinct nodes;
//   - every node holding a shard leaves the network for good after an
//     exponential time, so that a fraction MonthlyChurn of nodes is gone
//     after a month (hazard -ln(1-MonthlyChurn) per month);
//   - every AuditDays days the owner audits: each shard whose node has not
//     left answers if its node is online, independently with probability
//     Uptime. If between K and Threshold shards answer, the owner rebuilds
//     the segment from K of them and puts every shard that did not answer
//     on a fresh node, so all K+M shards are again on nodes that have not
//     left. With AuditDays = 0 there is no repair;
//   - the segment is lost as soon as fewer than K of its shards are on
//     nodes that have not left (offline nodes come back; departed ones do
//     not). Departures only lower that count between audits, so checking
//     it at every audit and at the horizon is exact.
type Durability struct {
	K, M         int
	Uptime       float64
	MonthlyChurn float64
	AuditDays    float64 // 0: no repair
	Threshold    int     // repair when answering shards ≤ Threshold
	HorizonDays  float64
}

// Validate rejects parameters outside the model.
func (d Durability) Validate() error {
	switch {
	case d.K < 1 || d.M < 0 || d.K+d.M > 255:
		return fmt.Errorf("k=%d m=%d: want k ≥ 1, m ≥ 0, k+m ≤ 255", d.K, d.M)
	case !(d.Uptime >= 0 && d.Uptime <= 1):
		return fmt.Errorf("uptime %v: want a probability", d.Uptime)
	case !(d.MonthlyChurn >= 0 && d.MonthlyChurn < 1):
		return fmt.Errorf("monthly churn %v: want 0 ≤ churn < 1", d.MonthlyChurn)
	case !(d.AuditDays >= 0) || !(d.HorizonDays > 0):
		return fmt.Errorf("audit every %v days over %v days: want audit ≥ 0 and horizon > 0", d.AuditDays, d.HorizonDays)
	case d.AuditDays > 0 && (d.Threshold < d.K || d.Threshold >= d.K+d.M):
		return fmt.Errorf("repair threshold %d: want k ≤ threshold < k+m", d.Threshold)
	}
	return nil
}

// hazard is the per-day departure rate of a node.
func (d Durability) hazard() float64 {
	return -math.Log1p(-d.MonthlyChurn) / DaysPerMonth
}

// intervals returns the lengths in days of the steps between audits up to
// the horizon: full audit intervals, then the remainder (no audit at its
// end unless it is a full interval).
func (d Durability) intervals() (full int, rest float64) {
	if d.AuditDays == 0 {
		return 0, d.HorizonDays
	}
	full = int(math.Floor(d.HorizonDays/d.AuditDays + 1e-9))
	rest = d.HorizonDays - float64(full)*d.AuditDays
	if rest < 1e-9 {
		rest = 0
	}
	return full, rest
}

// DurabilityResult is a survival probability with the expected number of
// repairs over the horizon.
type DurabilityResult struct {
	Survive, Lost float64
	Repairs       float64
}

// Markov returns the exact survival probability from a Markov chain on the
// number of shards whose nodes have not left (K..K+M, plus lost): over an
// audit interval each survives with probability exp(-hazard·interval);
// at an audit the number answering is binomial in the survivors and
// Uptime, and a repair resets the chain to K+M.
func (d Durability) Markov() DurabilityResult {
	n := d.K + d.M
	state := make([]float64, n+1) // state[j]: j shards on remaining nodes
	state[n] = 1
	lost, repairs := 0.0, 0.0
	step := func(days float64, audit bool) {
		keep := BinomialSurvival(n, math.Exp(-d.hazard()*days))
		next := make([]float64, n+1)
		for j := d.K; j <= n; j++ {
			if state[j] == 0 {
				continue
			}
			for j2, p := range keep[j] {
				mass := state[j] * p
				if j2 < d.K {
					lost += mass
					continue
				}
				if !audit {
					next[j2] += mass
					continue
				}
				pr := repairChance(j2, d.K, d.Threshold, d.Uptime)
				next[n] += mass * pr
				next[j2] += mass * (1 - pr)
				repairs += mass * pr
			}
		}
		state = next
	}
	full, rest := d.intervals()
	for range full {
		step(d.AuditDays, true)
	}
	if rest > 0 {
		step(rest, false)
	}
	survive := 0.0
	for _, p := range state {
		survive += p
	}
	return DurabilityResult{Survive: survive, Lost: lost, Repairs: repairs}
}

// BinomialSurvival returns, for j = 0..n, the distribution of how many of
// j items remain when each remains with probability s.
func BinomialSurvival(n int, s float64) [][]float64 {
	out := make([][]float64, n+1)
	for j := range out {
		out[j] = BinomialPMF(j, s)
	}
	return out
}

// repairChance is the probability that an audit of j shards on remaining
// nodes, each answering with probability up, sees between k and threshold
// answers and so repairs.
func repairChance(j, k, threshold int, up float64) float64 {
	p := 0.0
	for h, ph := range BinomialPMF(j, up) {
		if h >= k && h <= threshold {
			p += ph
		}
	}
	return p
}

// MonteCarlo simulates trials segments node by node: every shard's node
// gets an exponential departure time, every audit draws which remaining
// nodes answer, repairs put new shards on fresh nodes with fresh departure
// times. It returns the estimated survival probability and the mean number
// of repairs.
func (d Durability) MonteCarlo(trials int, rng *rand.Rand) (Estimate, float64) {
	n := d.K + d.M
	rate := d.hazard()
	leave := make([]float64, n) // departure day of each shard's node
	newNode := func(now float64) float64 {
		if rate == 0 {
			return math.Inf(1)
		}
		return now + rng.ExpFloat64()/rate
	}
	full, rest := d.intervals()
	survived, repairs := 0, 0
	for range trials {
		for i := range leave {
			leave[i] = newNode(0)
		}
		alive := true
		now := 0.0
		for a := 0; a <= full && alive; a++ {
			audit := a < full
			if audit {
				now += d.AuditDays
			} else {
				now += rest
			}
			remaining := 0
			for _, t := range leave {
				if t > now {
					remaining++
				}
			}
			if remaining < d.K {
				alive = false
				break
			}
			if !audit {
				break
			}
			answered := 0
			var silent []int
			for i, t := range leave {
				if t > now && rng.Float64() < d.Uptime {
					answered++
				} else {
					silent = append(silent, i)
				}
			}
			if answered >= d.K && answered <= d.Threshold {
				repairs++
				for _, i := range silent {
					leave[i] = newNode(now)
				}
			}
		}
		if alive {
			survived++
		}
	}
	return newEstimate(survived, trials), float64(repairs) / float64(trials)
}
