package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/jellyfish-p2p/jellyfish/karma"
)

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-12 {
		t.Errorf("%s = %.15g, want %.15g", what, got, want)
	}
}

func TestExactHandCases(t *testing.T) {
	for _, c := range []struct {
		name   string
		counts []int
		k      int
		up     float64
		want   float64
	}{
		// One data and one parity shard on two nodes: either one will do.
		{"k=1 m=1", []int{1, 1}, 1, 0.5, 0.75},
		{"k=1 m=1 p=0.9", []int{1, 1}, 1, 0.9, 1 - 0.1*0.1},
		// Two of three: (C(3,2)+C(3,3))/8.
		{"k=2 m=1", []int{1, 1, 1}, 2, 0.5, 0.5},
		// k=2 m=1 on two nodes, one holding two shards: readable exactly
		// when that node is up.
		{"k=2 m=1 on 2 nodes", []int{2, 1}, 2, 0.6, 0.6},
		// k=2 m=2 on three nodes {2,1,1}: the double node up, or it down
		// and both others up.
		{"k=2 m=2 on 3 nodes", []int{2, 1, 1}, 2, 0.5, 0.5 + 0.5*0.25},
		{"k=3 m=1 on 2 nodes", []int{2, 2}, 3, 0.7, 0.49},
	} {
		r, f := RecoverExact(c.counts, c.k, c.up)
		near(t, c.name, r, c.want)
		near(t, c.name+" complement", f, 1-c.want)
	}
}

func TestExactUsesBackendPlacement(t *testing.T) {
	// 3 shards on 2 nodes: the backend puts two on one node, as above.
	s := Setup{K: 2, M: 1, Uptime: 0.6, Nodes: 2, Policy: Backend}
	if r, _ := s.Exact(); math.Abs(r-0.6) > 1e-12 {
		t.Errorf("k=2 m=1 on 2 nodes: %v, want 0.6", r)
	}
	// Enough nodes: every shard alone, a plain binomial tail whatever the
	// number of spare nodes.
	a, _ := Setup{K: 10, M: 20, Uptime: 0.66, Nodes: 30, Policy: Backend}.Exact()
	b, _ := Setup{K: 10, M: 20, Uptime: 0.66, Nodes: 100, Policy: Backend}.Exact()
	var direct float64
	for j := 10; j <= 30; j++ {
		direct += math.Exp(logChoose(30, j)) * math.Pow(0.66, float64(j)) * math.Pow(0.34, float64(30-j))
	}
	near(t, "10+20 on 30 nodes", a, direct)
	near(t, "10+20 on 100 nodes", b, direct)
	// One node holds everything: it is up or not.
	one, _ := Setup{K: 10, M: 20, Uptime: 0.66, Nodes: 1, Policy: Backend}.Exact()
	near(t, "10+20 on 1 node", one, 0.66)
}

func TestRandomPolicyExact(t *testing.T) {
	// Two shards, two nodes, k=1: placements AA, AB, BA, BB equally likely,
	// giving 1/2, 3/4, 3/4, 1/2.
	r, f := Setup{K: 1, M: 1, Uptime: 0.5, Nodes: 2, Policy: Random}.Exact()
	near(t, "random 1+1 on 2 nodes", r, 0.625)
	near(t, "complement", f, 0.375)
}

func TestRecoverGivenDown(t *testing.T) {
	r, _ := RecoverGivenDown([]int{1, 1, 1}, 2, 1)
	near(t, "2 of 3, one down", r, 1)
	r, _ = RecoverGivenDown([]int{1, 1, 1}, 2, 2)
	near(t, "2 of 3, two down", r, 0)
	// Nodes {2,1,0}, k=2, one down: fails only when the double node is.
	r, _ = RecoverGivenDown([]int{2, 1, 0}, 2, 1)
	near(t, "{2,1,0} one down", r, 2.0/3)
	// The paper's 10+20 on 60 nodes with 20 down: hypergeometric, the
	// segment is lost only if more than 20 of its 30 nodes are down —
	// impossible with 20 down — so it is always readable.
	counts := make([]int, 60)
	for i := range 30 {
		counts[i] = 1
	}
	r, f := RecoverGivenDown(counts, 10, 20)
	near(t, "10+20 on 60, 20 down", r, 1)
	near(t, "complement", f, 0)
	// 20+10 on 60 nodes, 20 down: readable iff at most 10 holders down.
	var want float64
	for x := 0; x <= 10; x++ {
		want += math.Exp(logChoose(30, x) + logChoose(30, 20-x) - logChoose(60, 20))
	}
	r, _ = RecoverGivenDown(counts, 20, 20)
	if math.Abs(r-want) > 1e-12 {
		t.Errorf("20+10 on 60, 20 down: %v, want %v", r, want)
	}
}

// within checks a Monte-Carlo estimate against the exact value, with the
// standard error of the exact probability (which is not zero when the
// estimate happens to be 0 or 1).
func within(t *testing.T, what string, e Estimate, exact float64) {
	t.Helper()
	se := math.Sqrt(exact * (1 - exact) / float64(e.Trials))
	if math.Abs(e.P-exact) > 4*se {
		t.Errorf("%s: Monte-Carlo %.5f ± %.5f, exact %.5f (more than 4 SE apart)", what, e.P, se, exact)
	}
	if se < 1e-4 {
		t.Errorf("%s: exact %v leaves nothing to test", what, exact)
	}
}

func TestMonteCarloAgreesWithExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range []Setup{
		{K: 10, M: 20, Uptime: 0.66, Nodes: 4, Policy: Backend},   // DP, 7-8 shards per node
		{K: 10, M: 20, Uptime: 0.66, Nodes: 13, Policy: Backend},  // DP, 2-3 per node
		{K: 10, M: 5, Uptime: 0.66, Nodes: 100, Policy: Backend},  // binomial
		{K: 10, M: 20, Uptime: 0.50, Nodes: 100, Policy: Backend}, // binomial
		{K: 10, M: 20, Uptime: 0.66, Nodes: 10, Policy: Random},
		{K: 4, M: 4, Uptime: 0.66, Nodes: 20, Policy: Random},
	} {
		exact, _ := s.Exact()
		within(t, fmt.Sprintf("%s %d+%d on %d", s.Policy, s.K, s.M, s.Nodes), s.MonteCarlo(20000, rng), exact)
	}
}

func TestDurabilityHandCases(t *testing.T) {
	// No repair: each shard's node stays the year with (1-c)^12, and the
	// segment lives iff at least k of them do.
	d := Durability{K: 2, M: 2, Uptime: 0.66, MonthlyChurn: 0.1, HorizonDays: DaysPerYear}
	s := math.Pow(0.9, 12)
	var want float64
	for j := 2; j <= 4; j++ {
		want += math.Exp(logChoose(4, j)) * math.Pow(s, float64(j)) * math.Pow(1-s, float64(4-j))
	}
	r := d.Markov()
	near(t, "no repair", r.Survive, want)
	near(t, "no repair, lost", r.Lost, 1-want)
	// k=1 m=1, always online, monthly audits repairing at one answer: a
	// month is fatal only when both nodes leave in it (c²).
	d = Durability{K: 1, M: 1, Uptime: 1, MonthlyChurn: 0.5, AuditDays: DaysPerMonth, Threshold: 1, HorizonDays: DaysPerYear}
	r = d.Markov()
	near(t, "k=1 m=1 monthly repair", r.Survive, math.Pow(0.75, 12))
	// A repair happens in every surviving month where exactly one left.
	var repairs float64
	for i := range 12 {
		repairs += math.Pow(0.75, float64(i)) * 0.5
	}
	near(t, "k=1 m=1 repairs", r.Repairs, repairs)
}

func TestDurabilityMonteCarloAgreesWithMarkov(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, d := range []Durability{
		{K: 4, M: 4, Uptime: 0.8, MonthlyChurn: 0.3, AuditDays: 30, Threshold: 5, HorizonDays: DaysPerYear},
		{K: 10, M: 20, Uptime: 0.66, MonthlyChurn: 0.1, HorizonDays: DaysPerYear},
		{K: 10, M: 20, Uptime: 0.66, MonthlyChurn: 0.5, AuditDays: 7, Threshold: 15, HorizonDays: DaysPerYear},
	} {
		exact := d.Markov()
		mc, rep := d.MonteCarlo(4000, rng)
		within(t, "durability", mc, exact.Survive)
		if d.AuditDays > 0 && math.Abs(rep-exact.Repairs) > 0.05*exact.Repairs+0.05 {
			t.Errorf("%+v: %.3f repairs simulated, %.3f expected", d, rep, exact.Repairs)
		}
	}
}

func TestValidate(t *testing.T) {
	if (Setup{K: 0, M: 1, Uptime: 0.5, Nodes: 3, Policy: Backend}).Validate() == nil {
		t.Error("k=0 accepted")
	}
	if (Setup{K: 1, M: 1, Uptime: 1.5, Nodes: 3, Policy: Backend}).Validate() == nil {
		t.Error("uptime 1.5 accepted")
	}
	if (Setup{K: 1, M: 1, Uptime: 0.5, Nodes: 3, Policy: "nearest"}).Validate() == nil {
		t.Error("unknown policy accepted")
	}
	if (Durability{K: 10, M: 20, Uptime: 0.5, AuditDays: 1, Threshold: 9, HorizonDays: 365}).Validate() == nil {
		t.Error("threshold below k accepted")
	}
}

func TestParseLists(t *testing.T) {
	got, err := ParseInts("1-4,10-30:10,7")
	if err != nil || fmt.Sprint(got) != "[1 2 3 4 10 20 30 7]" {
		t.Errorf("ParseInts: %v, %v", got, err)
	}
	fl, err := ParseFloats("0-0.3:0.1")
	if err != nil || fmt.Sprint(fl) != "[0 0.1 0.2 0.3]" {
		t.Errorf("ParseFloats: %v, %v", fl, err)
	}
	for _, bad := range []string{"", "5-1", "1-5:0", "x", "1.5"} {
		if _, err := ParseInts(bad); err == nil {
			t.Errorf("ParseInts(%q) accepted", bad)
		}
	}
	cs, err := ParseConfigs("3-of-10, 29-of-80")
	if err != nil || len(cs) != 2 || cs[1] != (Config{29, 80}) {
		t.Errorf("ParseConfigs: %v, %v", cs, err)
	}
	if _, err := ParseConfigs("10-of-3"); err == nil {
		t.Error("10-of-3 accepted")
	}
}

func allowanceModel() AllowanceModel {
	return AllowanceModel{Nodes: 200, JoinDays: 40, Days: 240, TierMin: 0, TierMax: 7, UptimeMin: 0.5, UptimeMax: 0.8,
		Liars: 0.3, LiarFactor: 16, Starters: 200, Starter: karma.DefaultStarter, StarterShare: 0.125,
		Growth: karma.ShownGrowth, Floor: karma.ShownFloor, Demand: 0.2, Seed: 3}
}

// A network starts from nothing: before any node is vetted only starter
// allowances exist; then the allowance earned grows until the network is
// in use, and it never exceeds the real capacity, with or without nodes
// that declare sixteen times their disk.
func TestAllowanceModel(t *testing.T) {
	for _, liars := range []float64{0, 0.3, 0.6} {
		m := allowanceModel()
		m.Liars = liars
		days, err := m.Run()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range days {
			if d.Day < karma.VettingEpochs && d.Earned != 0 {
				t.Fatalf("liars %.1f: day %d: %d bytes earned before any node was vetted", liars, d.Day, d.Earned)
			}
			if d.Earned > d.Capacity || d.Used > d.Capacity {
				t.Fatalf("liars %.1f: day %d: earned %d, used %d, real capacity %d", liars, d.Day, d.Earned, d.Used, d.Capacity)
			}
		}
		s := Summarize(days)
		if s.HalfFullDay < 0 || s.HalfFullDay > 150 || s.Last.Earned < s.Last.Capacity/3 {
			t.Fatalf("liars %.1f: the network did not fill: half-full day %d, earned %d of %d",
				liars, s.HalfFullDay, s.Last.Earned, s.Last.Capacity)
		}
		t.Logf("liars %.1f: earned/capacity max %.3f, half full on day %d", liars, s.MaxEarned, s.HalfFullDay)
	}
}

// Without a bound on credited space, nodes that are never filled keep
// what they declare: the model shows the bound matters.
func TestAllowanceModelNeedsTheBound(t *testing.T) {
	m := allowanceModel()
	m.Liars, m.LiarFactor, m.Demand, m.Starters, m.Starter = 1, 64, 0.001, 0, 0
	bounded, err := m.Run()
	if err != nil {
		t.Fatal(err)
	}
	m.Growth = 1e9
	open, err := m.Run()
	if err != nil {
		t.Fatal(err)
	}
	if b, o := Summarize(bounded).MaxEarned, Summarize(open).MaxEarned; b > 1 || o <= 1 {
		t.Fatalf("earned/capacity: %.2f with the bound, %.2f without", b, o)
	}
}

func TestAllowanceModelRejects(t *testing.T) {
	for name, f := range map[string]func(*AllowanceModel){
		"no nodes":      func(m *AllowanceModel) { m.Nodes = 0 },
		"tiers":         func(m *AllowanceModel) { m.TierMax = karma.MaxTier + 1 },
		"uptime":        func(m *AllowanceModel) { m.UptimeMin = 0 },
		"liar factor":   func(m *AllowanceModel) { m.LiarFactor = 0.5 },
		"demand":        func(m *AllowanceModel) { m.Demand = 0 },
		"starter share": func(m *AllowanceModel) { m.StarterShare = 2 },
	} {
		m := allowanceModel()
		f(&m)
		if _, err := m.Run(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func karmaModel() KarmaModel {
	return KarmaModel{Nodes: 200, JoinDays: 60, Days: 365, TierMin: 0, TierMax: 4,
		Shares: [numClasses]float64{0.5, 0.2, 0.15, 0.15, 0}, Floor: karma.ShownFloor,
		Growth: karma.ShownGrowth, Demand: 0.2, StatementDays: 7, OwnerReports: 1, Seed: 1}
}

// The providers' rules over a year from an empty network: honest nodes'
// share of the allowance is at least 0.8 of their share of what was
// contributed, free riders and cheaters that delete test shards earn
// nothing once caught, no day grants more than the capacity, and the
// allowance granted over the last 30 days is within 0.5–1.0 of the
// capacity on small disks (tiers 0–1) and large ones (0–8) alike: credit
// follows what owners state nodes hold. Without that (growth 0: the 2 GiB
// floor alone) large disks are starved. Cheaters that keep the observers'
// test shards are caught by owners' reports, and not by observers alone.
func TestKarmaModel(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*KarmaModel)
		// granted/capacity over the last 30 days
		minimum float64
		maximum float64
	}{
		{"tiers 0-4", func(*KarmaModel) {}, 0.5, 1},
		{"tiers 0-1", func(m *KarmaModel) { m.TierMax = 1 }, 0.5, 1},
		{"tiers 0-8", func(m *KarmaModel) { m.TierMax = 8 }, 0.5, 1},
		{"floor alone", func(m *KarmaModel) { m.Growth = 0 }, 0, 0.4},
		{"smart cheaters", func(m *KarmaModel) { m.Shares[ClassCheating], m.Shares[ClassCheatingSmart] = 0.05, 0.1 }, 0.5, 1},
		{"smart cheaters, observers alone", func(m *KarmaModel) {
			m.Shares[ClassCheating], m.Shares[ClassCheatingSmart], m.OwnerReports = 0.05, 0.1, 0
		}, 0.5, 1.1},
		// The ring of docs/design.md §6.8, which statements do not stop.
		{"colluding", func(m *KarmaModel) { m.Shares[ClassHonest], m.Shares[ClassColluding] = 0.45, 0.05 }, 0.5, 1.1},
	} {
		m := karmaModel()
		tc.mod(&m)
		days, err := m.Run()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range days {
			if d.Granted > d.Capacity+d.Unbacked {
				t.Fatalf("%s: day %d grants %.0f of capacity %.0f", tc.name, d.Day, d.Granted, d.Capacity)
			}
			if d.Day < karma.VettingEpochs-1 && d.Granted != 0 { // day d ends epoch d: d+1 complete epochs
				t.Fatalf("%s: day %d: allowance granted before any node could be vetted", tc.name, d.Day)
			}
		}
		s := SummarizeKarma(days, karma.WindowEpochs)
		t.Logf("%s: shares %v of contribution, %v of allowance; granted/capacity %.3f", tc.name, s.ContributionShare, s.AllowanceShare, s.Ratio)
		if h := s.AllowanceShare[ClassHonest]; h < 0.8*s.ContributionShare[ClassHonest] {
			t.Errorf("%s: honest nodes' allowance share %.3f under 0.8 × their contribution share %.3f", tc.name, h, s.ContributionShare[ClassHonest])
		}
		last := days[len(days)-1]
		if last.Allowance[ClassFreeRiding] != 0 || last.Allowance[ClassCheating] != 0 {
			t.Errorf("%s: free riders hold %.0f, cheaters %.0f", tc.name, last.Allowance[ClassFreeRiding], last.Allowance[ClassCheating])
		}
		if s.Ratio < tc.minimum || s.Ratio > tc.maximum {
			t.Errorf("%s: granted/capacity %.3f, want %.1f..%.1f", tc.name, s.Ratio, tc.minimum, tc.maximum)
		}
		// Smart cheaters earn only where owners' reports do not reach the
		// observers; a ring earns by its statements.
		if smart := s.AllowanceShare[ClassCheatingSmart]; (m.Shares[ClassCheatingSmart] > 0 && m.OwnerReports == 0) != (smart > 0) {
			t.Errorf("%s: smart cheaters' allowance share %.3f", tc.name, smart)
		}
		if ring := s.AllowanceShare[ClassColluding]; (m.Shares[ClassColluding] > 0) != (ring > 0) {
			t.Errorf("%s: colluding nodes' allowance share %.3f", tc.name, ring)
		}
	}
}
