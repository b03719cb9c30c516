package sim

import (
	"fmt"
	"math/rand/v2"

	"github.com/jellyfish-p2p/jellyfish/karma"
)

// AllowanceModel models how much allowance a network grants against what
// it really holds, day by day, from an empty network:
//
//   - Nodes join uniformly over the first JoinDays days, each sharing a
//     tier drawn uniformly from TierMin..TierMax, online a share of the time
//     drawn uniformly from UptimeMin..UptimeMax (its witnesses' estimate is
//     taken to be exact), each owned by an account of its own;
//   - a share Liars of them have a real disk LiarFactor times smaller than
//     the tier they declare: they accept puts until that disk is full and
//     refuse the rest;
//   - Starters accounts have no node and get karma's starter allowance;
//     a node takes their bytes only while what it holds of them stays
//     within StarterShare of its free room (0: no such bound);
//   - a node counts after karma.VettingEpochs days; its credit is
//     karma.Credit with shown space karma.ShownWith(held, declared, full,
//     Growth, min(Floor, its real disk)), where held counts only the shard
//     bytes of accounts whose allowance is earned (a starter account's
//     bytes show nothing) and the floor is what test shards it accepted
//     while being vetted showed;
//   - each day every account uploads Demand of the room its allowance
//     leaves, as shard bytes spread over the nodes of other accounts in
//     proportion to the room they declare; what no node takes is refused.
//
// Everything is in shard bytes, as providers count them: granted ≤
// capacity is the same as file bytes ≤ capacity / expansion.
type AllowanceModel struct {
	Nodes, JoinDays, Days int
	TierMin, TierMax      int
	UptimeMin, UptimeMax  float64
	Liars, LiarFactor     float64
	Starters              int
	Starter               int64
	StarterShare          float64
	Growth                float64
	Floor                 int64
	Demand                float64
	Seed                  uint64
}

// Validate rejects parameters outside the model.
func (m AllowanceModel) Validate() error {
	switch {
	case m.Nodes < 1 || m.Days < 1 || m.JoinDays < 1:
		return fmt.Errorf("nodes %d over %d days of %d: want each ≥ 1", m.Nodes, m.JoinDays, m.Days)
	case m.TierMin < 0 || m.TierMax < m.TierMin || m.TierMax > karma.MaxTier:
		return fmt.Errorf("tiers %d..%d: want 0 ≤ min ≤ max ≤ %d", m.TierMin, m.TierMax, karma.MaxTier)
	case !(m.UptimeMin > 0 && m.UptimeMin <= m.UptimeMax && m.UptimeMax <= 1):
		return fmt.Errorf("uptime %v..%v: want 0 < min ≤ max ≤ 1", m.UptimeMin, m.UptimeMax)
	case !(m.Liars >= 0 && m.Liars <= 1) || (m.Liars > 0 && !(m.LiarFactor >= 1)):
		return fmt.Errorf("liars %v with factor %v: want a share and a factor ≥ 1", m.Liars, m.LiarFactor)
	case !(m.StarterShare >= 0 && m.StarterShare <= 1):
		return fmt.Errorf("starter share %v: want 0..1", m.StarterShare)
	case !(m.Demand > 0 && m.Demand <= 1) || !(m.Growth >= 0) || m.Floor < 0 || m.Starter < 0 || m.Starters < 0:
		return fmt.Errorf("demand %v, growth %v, floor %d, starter %d × %d: out of range", m.Demand, m.Growth, m.Floor, m.Starter, m.Starters)
	}
	return nil
}

// AllowanceDay is the network at the end of one day.
type AllowanceDay struct {
	Day, Nodes int
	Capacity   int64 // real disk of the nodes joined
	Declared   int64 // what they declare
	Granted    int64 // allowances of every account, starters included
	Earned     int64 // allowances earned by nodes
	Used       int64 // shard bytes stored
	StarterUse int64 // of which for starter allowances
	Refused    int64 // shard bytes no node took that day
}

type modelNode struct {
	declared, real, held, heldEarned, heldStarter int64
	uptime                                        float64
	joined                                        int
	full                                          bool
	account                                       int
}

type modelAccount struct {
	used, allowance int64
	earned          bool // the allowance comes from a vetted node, not the starter
	node            int  // -1: a starter account
}

// Run simulates m.Days days.
func (m AllowanceModel) Run() ([]AllowanceDay, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(m.Seed, 0x6a656c6c79))
	var nodes []*modelNode
	var accts []*modelAccount
	for range m.Starters {
		accts = append(accts, &modelAccount{node: -1})
	}
	joinAt := make([]int, m.Nodes)
	for i := range joinAt {
		joinAt[i] = i * m.JoinDays / m.Nodes
	}
	var days []AllowanceDay
	next := 0
	for day := range m.Days {
		for next < m.Nodes && joinAt[next] <= day {
			d := karma.TierBytes(m.TierMin + r.IntN(m.TierMax-m.TierMin+1))
			n := &modelNode{declared: d, real: d, joined: day, account: len(accts),
				uptime: m.UptimeMin + r.Float64()*(m.UptimeMax-m.UptimeMin)}
			if r.Float64() < m.Liars {
				n.real = int64(float64(d) / m.LiarFactor)
			}
			accts = append(accts, &modelAccount{node: len(nodes)})
			nodes = append(nodes, n)
			next++
		}
		// Allowances from today's standing.
		for _, a := range accts {
			if a.node < 0 {
				a.allowance = m.Starter
				continue
			}
			n := nodes[a.node]
			st := karma.Standing{State: karma.Vetting, Uptime: n.uptime, KnownEpochs: day - n.joined}
			if day-n.joined >= karma.VettingEpochs {
				st.State = karma.Good
			}
			// The floor is shown by test shards the node accepted while
			// being vetted: a node with less disk shows less.
			shown := karma.ShownWith(n.heldEarned, n.declared, n.full, m.Growth, min(m.Floor, n.real))
			al := karma.AccountAllowance([]karma.Node{{Shared: n.declared, Shown: shown, Standing: st}}, m.Starter)
			a.allowance, a.earned = al.Bytes, !al.Starter
		}
		// Uploads, in a random order of accounts each day.
		out := AllowanceDay{Day: day, Nodes: len(nodes)}
		for _, ai := range r.Perm(len(accts)) {
			a := accts[ai]
			want := int64(m.Demand * float64(a.allowance-a.used))
			if want <= 0 {
				continue
			}
			placed := m.place(nodes, a.node, want, a.earned)
			a.used += placed
			out.Refused += want - placed
		}
		for _, n := range nodes {
			out.Capacity += n.real
			out.Declared += n.declared
			out.Used += n.held
			out.StarterUse += n.heldStarter
		}
		for _, a := range accts {
			out.Granted += a.allowance
			if a.earned {
				out.Earned += a.allowance
			}
		}
		days = append(days, out)
	}
	return days, nil
}

// place spreads want bytes over the nodes other than own in proportion to
// the room they declare and returns what they took. A node whose real
// disk is full refuses, and is marked full.
func (m AllowanceModel) place(nodes []*modelNode, own int, want int64, earned bool) int64 {
	var placed int64
	for round := 0; round < 4 && placed < want; round++ {
		var room float64
		for i, n := range nodes {
			if i != own && !n.full {
				room += float64(n.declared - n.held)
			}
		}
		if room <= 0 {
			break
		}
		left := want - placed
		for i, n := range nodes {
			if i == own || n.full {
				continue
			}
			share := int64(float64(left) * float64(n.declared-n.held) / room)
			if !earned && m.StarterShare > 0 {
				share = min(share, int64(m.StarterShare*float64(n.declared-n.held))-n.heldStarter)
			}
			take := min(share, n.real-n.held)
			if take < share {
				n.full = true
			}
			if take <= 0 {
				continue
			}
			n.held += take
			if earned {
				n.heldEarned += take
			} else {
				n.heldStarter += take
			}
			placed += take
		}
	}
	return placed
}

// AllowanceSummary is what a run shows: the largest ratios of granted
// (starters included) and of earned allowance to real capacity on any day,
// the last day's figures, and the first day usage reached half the real
// capacity (−1: never).
type AllowanceSummary struct {
	MaxGranted, MaxEarned       float64
	MaxGrantedDay, MaxEarnedDay int
	Last                        AllowanceDay
	HalfFullDay                 int
}

// Summarize summarises a run.
func Summarize(days []AllowanceDay) AllowanceSummary {
	s := AllowanceSummary{HalfFullDay: -1}
	for _, d := range days {
		if d.Capacity > 0 {
			if r := float64(d.Granted) / float64(d.Capacity); r > s.MaxGranted {
				s.MaxGranted, s.MaxGrantedDay = r, d.Day
			}
			if r := float64(d.Earned) / float64(d.Capacity); r > s.MaxEarned {
				s.MaxEarned, s.MaxEarnedDay = r, d.Day
			}
		}
		if s.HalfFullDay < 0 && d.Capacity > 0 && 2*d.Used >= d.Capacity {
			s.HalfFullDay = d.Day
		}
		s.Last = d
	}
	return s
}
