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
	ClassColluding
	numClasses
)

// ClassNames name the classes in output.
var ClassNames = [numClasses]string{"honest", "lazy", "free-riding", "cheating", "cheating-smart", "colluding"}

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
//     reaches the observer (0: observers alone);
//   - colluding: online 90–100 %, keeps the observers' test shards,
//     refuses every other put, and its account states at each statement
//     that the other colluding nodes hold its whole allowance, shared
//     out among them (the ring of docs/design.md §6.8).
//
// Each day a node is down for one stretch of (1 − its uptime) × 24 h at a
// random time. One observer (karma.Observer, as every provider runs it)
// probes each node ProbesPerEpoch times a day at random times and, at the
// AuditProbes slots, audits its test shard when the node answers: honest,
// lazy and smart cheating nodes pass, cheating nodes fail (a deleted
// shard), free riders refused the shard and are not audited.
//
// Each day every account uploads Demand of the room its allowance leaves,
// as shard bytes spread over the other nodes that take puts (all but free
// riders and colluding nodes) in proportion to the room they declare. Every StatementDays
// days after its node joined, an account tells the observer how many
// bytes each node holds of it (shard request 12, holdings); the observer
// counts a statement only while the account's allowance is earned, and
// scales it down to that allowance. A node's credit is karma.Credit with
// its tier as shared space and karma.ShownWith(held, tier, false, Growth,
// Floor) as what it has been shown to hold, held being the bytes the
// latest statements of other accounts name it for; an account's allowance
// is karma.AccountAllowance of its node, without a starter allowance.
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
	// Growth is the space credited per byte held (karma.ShownGrowth);
	// Demand the share of its free allowance an account uploads a day;
	// StatementDays how often an account states its holdings.
	Growth        float64
	Demand        float64
	StatementDays int
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
	case !(m.Growth >= 0) || !(m.Demand >= 0 && m.Demand <= 1) || m.StatementDays < 1:
		return fmt.Errorf("growth %v, demand %v, statements every %d days: out of range", m.Growth, m.Demand, m.StatementDays)
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
	Used         float64 // shard bytes the accounts stored
	// Unbacked is what the smart cheaters and colluding nodes joined
	// declare: the most they can be credited past the capacity, while
	// nobody reports them.
	Unbacked float64
}

type karmaNode struct {
	id     string
	class  int
	join   int
	uptime float64
	shared int64
	// held is what the node holds (or, cheating, claims to) of each
	// account, by account index; stated is what the observer counts of
	// it, from each account's latest statement.
	held, stated []int64
	holding      int64 // the sum of held
	used         int64 // what its account stored on other nodes
	allowance    int64 // its account's allowance at the last day's end
	earned       bool
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
	for i := range nodes {
		nodes[i].held = make([]int64, m.Nodes)
		nodes[i].stated = make([]int64, m.Nodes)
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
				case ClassHonest, ClassLazy, ClassCheatingSmart, ClassColluding:
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
		// Uploads, by yesterday's allowances, in a random order of
		// accounts; then statements of holdings.
		for _, ai := range r.Perm(len(nodes)) {
			if a := &nodes[ai]; d >= a.join && a.allowance > a.used {
				a.used += m.place(nodes, ai, d, int64(m.Demand*float64(a.allowance-a.used)))
			}
		}
		for ai := range nodes {
			a := &nodes[ai]
			if d < a.join || (d-a.join)%m.StatementDays != 0 {
				continue
			}
			// The observer counts an account's statement only while its
			// allowance is earned, scaled down to it.
			scale := 0.0
			if a.earned && a.used > 0 {
				scale = min(1, float64(a.allowance)/float64(a.used))
			}
			for i := range nodes {
				nodes[i].stated[ai] = int64(scale * float64(nodes[i].held[ai]))
			}
			if a.class == ClassColluding && a.earned {
				var ring []int
				for i := range nodes {
					if i != ai && d >= nodes[i].join && nodes[i].class == ClassColluding {
						ring = append(ring, i)
					}
				}
				for _, i := range ring {
					nodes[i].stated[ai] = a.allowance / int64(len(ring))
				}
			}
		}
		end := e.End()
		for i := range nodes {
			n := &nodes[i]
			if d < n.join {
				continue
			}
			day.Nodes[n.class]++
			if n.class == ClassCheatingSmart || n.class == ClassColluding {
				day.Unbacked += float64(n.shared)
			}
			if n.class == ClassHonest || n.class == ClassLazy {
				day.Capacity += float64(n.shared)
				day.Contribution[n.class] += float64(n.shared) * n.uptime
			}
			var stated int64
			for ai, b := range n.stated {
				if ai != i {
					stated += b
				}
				day.Used += float64(n.held[ai])
			}
			kn := karma.Node{ID: n.id, Shared: n.shared, Shown: karma.ShownWith(stated, n.shared, false, m.Growth, m.Floor), Standing: obs.Standing(n.id, end)}
			a := karma.AccountAllowance([]karma.Node{kn}, 0)
			n.allowance, n.earned = a.Bytes, a.Bytes > 0
			day.Allowance[n.class] += float64(a.Bytes)
			day.Granted += float64(a.Bytes)
		}
		obs.Prune(end)
		days = append(days, day)
	}
	return days, nil
}

// place spreads want bytes of account own over the nodes joined by day
// d that take puts, other than its own, in proportion to the room they
// declare, and returns what they took.
func (m KarmaModel) place(nodes []karmaNode, own, d int, want int64) int64 {
	var total int64
	rooms := make([]int64, len(nodes))
	for i := range nodes {
		if n := &nodes[i]; i != own && d >= n.join && n.class != ClassFreeRiding && n.class != ClassColluding {
			rooms[i] = max(n.shared-n.holding, 0)
			total += rooms[i]
		}
	}
	if total == 0 {
		return 0
	}
	want = min(want, total)
	var placed int64
	for i, rm := range rooms {
		if take := int64(float64(want) * float64(rm) / float64(total)); take > 0 {
			nodes[i].held[own] += take
			nodes[i].holding += take
			placed += take
		}
	}
	return placed
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
	// HalfDay is the first day granted reached half the capacity (−1:
	// never).
	HalfDay int
}

// SummarizeKarma sums the last window days of a run (all of it if
// shorter).
func SummarizeKarma(days []KarmaDay, window int) KarmaSummary {
	s := KarmaSummary{Window: min(window, len(days)), MinRatio: -1, HalfDay: -1}
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
		if s.HalfDay < 0 && x >= 0.5 {
			s.HalfDay = d.Day
		}
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
