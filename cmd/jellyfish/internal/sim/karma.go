package sim

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jellyfish-p2p/jellyfish/karma"
)

// Node classes of the karma model.
const (
	ClassHonest = iota
	ClassLazy
	ClassFreeRiding
	ClassCheating
	ClassCheatingSmart
	numClasses
)

// ClassNames name the classes in output.
var ClassNames = [numClasses]string{"honest", "lazy", "free-riding", "cheating", "cheating-smart"}

// KarmaModel runs the standing and allowance rules the providers apply
// (docs/design.md §6.12) on a modelled network that starts empty: Nodes
// join uniformly over the first JoinDays days, each owned by an account of
// its own, sharing a tier drawn from TierMin..TierMax. Its class is drawn
// with the shares given:
//
//   - honest: online 90–100 % of each day, keeps what it accepts;
//   - lazy: online 30–60 % of each day, keeps what it accepts;
//   - free-riding: declares its tier but refuses every put, observers'
//     test shards included;
//   - cheating: online 90–100 %, accepts puts and deletes them, observers'
//     test shards included;
//   - cheating-smart: as cheating, but keeps the observers' test shards
//     (recognisable by their owner key) and deletes only owners' shards,
//     which only owners' audits and reports show: each day, with
//     probability OwnerReports, an owner's report of a deleted shard
//     reaches the observer (0: observers alone).
//
// Each day a node is down for one stretch of (1 − its uptime) × 24 h at a
// random time. One observer (karma.Observer, as every provider runs it)
// probes each node ProbesPerEpoch times a day at random times and, at the
// AuditProbes slots, audits its test shard when the node answers: honest,
// lazy and smart cheating nodes pass, cheating nodes fail (a deleted
// shard), free riders refused the shard and are not audited. A node's
// credit is karma.Credit with its tier as shared space and Floor as what it
// has been shown to hold (the providers credit no more today); an account's
// allowance is karma.AccountAllowance of its node, without a starter
// allowance.
//
// Contribution is what a node really offers: its disk times the share of
// the day it is online, for honest and lazy nodes; nothing for the others.
// Capacity is the disk of the honest and lazy nodes that joined.
type KarmaModel struct {
	Nodes, JoinDays, Days int
	TierMin, TierMax      int
	// Shares of the classes, in ClassNames' order; they must sum to 1.
	Shares [numClasses]float64
	Floor  int64
	// OwnerReports is the chance each day that an owner's report of a
	// shard a cheating node deleted reaches the observer.
	OwnerReports float64
	Seed         uint64
}

// Validate rejects parameters outside the model.
func (m KarmaModel) Validate() error {
	sum := 0.0
	for _, s := range m.Shares {
		if !(s >= 0 && s <= 1) {
			return fmt.Errorf("class share %v: want 0..1", s)
		}
		sum += s
	}
	switch {
	case m.Nodes < 1 || m.Days < 1 || m.JoinDays < 1:
		return fmt.Errorf("nodes %d over %d days of %d: want each ≥ 1", m.Nodes, m.JoinDays, m.Days)
	case m.TierMin < 0 || m.TierMax < m.TierMin || m.TierMax > karma.MaxTier:
		return fmt.Errorf("tiers %d..%d: want 0 ≤ min ≤ max ≤ %d", m.TierMin, m.TierMax, karma.MaxTier)
	case sum < 0.999 || sum > 1.001:
		return fmt.Errorf("class shares sum to %v, want 1", sum)
	case m.Floor < 0:
		return fmt.Errorf("floor %d: want ≥ 0", m.Floor)
	case !(m.OwnerReports >= 0 && m.OwnerReports <= 1):
		return fmt.Errorf("owner reports %v: want 0..1", m.OwnerReports)
	}
	return nil
}

// KarmaDay is the network at the end of one day.
type KarmaDay struct {
	Day int
	// Per class: nodes joined, what they offered that day and the
	// allowance their accounts have at the day's end (bytes).
	Nodes        [numClasses]int
	Contribution [numClasses]float64
	Allowance    [numClasses]float64
	Capacity     float64 // disk of the honest and lazy nodes joined
	Granted      float64 // every account's allowance
}

type karmaNode struct {
	id     string
	class  int
	join   int
	uptime float64
	shared int64
}

// KarmaStart is the first instant the model's day 0 falls on.
var KarmaStart = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)

// Run runs the model and returns one KarmaDay per day.
func (m KarmaModel) Run() ([]KarmaDay, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(m.Seed, 0x6b61726d61))
	nodes := make([]karmaNode, m.Nodes)
	for i := range nodes {
		n := &nodes[i]
		n.id = fmt.Sprintf("node-%05d", i)
		n.join = r.IntN(m.JoinDays)
		n.shared = karma.TierBytes(m.TierMin + r.IntN(m.TierMax-m.TierMin+1))
		x, acc := r.Float64(), 0.0
		n.class = numClasses - 1
		for c, s := range m.Shares {
			if acc += s; x < acc {
				n.class = c
				break
			}
		}
		if n.class == ClassLazy {
			n.uptime = 0.3 + 0.3*r.Float64()
		} else {
			n.uptime = 0.9 + 0.1*r.Float64()
		}
	}
	obs := karma.NewObserver("observer", m.Nodes)
	days := make([]KarmaDay, 0, m.Days)
	var deleted uint64
	for d := range m.Days {
		e := karma.EpochOf(KarmaStart) + karma.Epoch(d)
		day := KarmaDay{Day: d}
		for i := range nodes {
			n := &nodes[i]
			if d < n.join {
				continue
			}
			obs.Watch(n.id, e.Start())
			down := time.Duration((1 - n.uptime) * float64(karma.EpochLength))
			from := e.Start().Add(time.Duration(r.Int64N(int64(karma.EpochLength-down) + 1)))
			up := func(t time.Time) bool { return t.Before(from) || !t.Before(from.Add(down)) }
			for slot, t := range karma.ProbeTimes(e, karma.ProbesPerEpoch, r) {
				ok := up(t)
				obs.Probed(n.id, t, ok)
				if !ok || !isAudit(slot) {
					continue
				}
				switch n.class {
				case ClassHonest, ClassLazy, ClassCheatingSmart:
					obs.Audited(n.id, t, true)
				case ClassCheating:
					obs.Audited(n.id, t, false)
					deleted++
					var ref karma.ShardRef
					for b := range 8 {
						ref[b] = byte(deleted >> (8 * b))
					}
					obs.Deleted(n.id, t, ref)
				}
			}
		}
		// Owners' reports: a cheating node drops owners' shards, and an
		// owner's maintenance that audits one hands the evidence on.
		for i := range nodes {
			n := &nodes[i]
			if d < n.join || (n.class != ClassCheating && n.class != ClassCheatingSmart) || r.Float64() >= m.OwnerReports {
				continue
			}
			deleted++
			var ref karma.ShardRef
			for b := range 8 {
				ref[b] = byte(deleted >> (8 * b))
			}
			ref[8] = 1 // not a test shard's
			obs.Deleted(n.id, e.Start().Add(time.Duration(r.Int64N(int64(karma.EpochLength)))), ref)
		}
		end := e.End()
		for i := range nodes {
			n := &nodes[i]
			if d < n.join {
				continue
			}
			day.Nodes[n.class]++
			if n.class == ClassHonest || n.class == ClassLazy {
				day.Capacity += float64(n.shared)
				day.Contribution[n.class] += float64(n.shared) * n.uptime
			}
			kn := karma.Node{ID: n.id, Shared: n.shared, Shown: karma.ShownWith(0, n.shared, false, 0, m.Floor), Standing: obs.Standing(n.id, end)}
			a := karma.AccountAllowance([]karma.Node{kn}, 0)
			day.Allowance[n.class] += float64(a.Bytes)
			day.Granted += float64(a.Bytes)
		}
		obs.Prune(end)
		days = append(days, day)
	}
	return days, nil
}

func isAudit(slot int) bool {
	for _, s := range karma.AuditProbes {
		if s == slot {
			return true
		}
	}
	return false
}

// KarmaSummary is what a run comes to over its last Window days.
type KarmaSummary struct {
	Window int
	Nodes  [numClasses]int
	// ContributionShare and AllowanceShare are each class's share of all
	// contribution and of all allowance, summed over the window.
	ContributionShare, AllowanceShare [numClasses]float64
	// Granted over capacity in the window: its mean, and its least and
	// greatest after the first VettingEpochs days of the run.
	Ratio, MinRatio, MaxRatio float64
}

// SummarizeKarma sums the last window days of a run (all of it if
// shorter).
func SummarizeKarma(days []KarmaDay, window int) KarmaSummary {
	s := KarmaSummary{Window: min(window, len(days)), MinRatio: -1}
	if len(days) == 0 {
		return s
	}
	var contrib, allow [numClasses]float64
	var tc, ta, gr, cp float64
	for _, d := range days[len(days)-s.Window:] {
		for c := range numClasses {
			contrib[c] += d.Contribution[c]
			allow[c] += d.Allowance[c]
			tc += d.Contribution[c]
			ta += d.Allowance[c]
		}
		gr += d.Granted
		cp += d.Capacity
	}
	s.Nodes = days[len(days)-1].Nodes
	for c := range numClasses {
		if tc > 0 {
			s.ContributionShare[c] = contrib[c] / tc
		}
		if ta > 0 {
			s.AllowanceShare[c] = allow[c] / ta
		}
	}
	if cp > 0 {
		s.Ratio = gr / cp
	}
	for _, d := range days {
		if d.Day < karma.VettingEpochs || d.Capacity == 0 {
			continue
		}
		x := d.Granted / d.Capacity
		if s.MinRatio < 0 || x < s.MinRatio {
			s.MinRatio = x
		}
		s.MaxRatio = max(s.MaxRatio, x)
	}
	return s
}

// KarmaFigure plots each class's share of the allowance granted and the
// allowance granted over capacity, day by day.
func KarmaFigure(days []KarmaDay) Figure {
	f := Figure{Title: "Allowance by class of node", XLabel: "day", YLabel: "share", YMin: 0, YMax: 1.6, LegendTop: true,
		LegendNote: "each class's share of the allowance granted"}
	x := make([]float64, len(days))
	for i, d := range days {
		x[i] = float64(d.Day)
	}
	for c := range numClasses {
		y := make([]float64, len(days))
		for i, d := range days {
			if d.Granted > 0 {
				y[i] = d.Allowance[c] / d.Granted
			}
		}
		f.Series = append(f.Series, Series{Name: ClassNames[c] + " allowance share", X: x, Exact: y})
	}
	y := make([]float64, len(days))
	for i, d := range days {
		if d.Capacity > 0 {
			y[i] = d.Granted / d.Capacity
		}
	}
	f.Series = append(f.Series, Series{Name: "granted / capacity", X: x, Exact: y})
	return f
}
