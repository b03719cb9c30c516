package karma

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// timeline says whether the subject answers at a time.
type timeline func(time.Time) bool

// dailyOutage is offline for span each day, starting at a random time
// within the day (so never across midnight).
func dailyOutage(r *rand.Rand, span time.Duration, from Epoch, days int) timeline {
	starts := map[Epoch]time.Duration{}
	for e := from; e < from+Epoch(days); e++ {
		starts[e] = time.Duration(r.Int64N(int64(EpochLength - span)))
	}
	return func(t time.Time) bool {
		e := EpochOf(t)
		off := t.Sub(e.Start()) - starts[e]
		return off < 0 || off >= span
	}
}

// witnessRun simulates days epochs of probing ending before now: each
// epoch's witnesses probe at their own random times, and liar(i, e), if
// set, replaces witness i's summary of epoch e.
func witnessRun(r *rand.Rand, subject string, up timeline, now time.Time, days int, liar func(i int, s *Summary)) []EpochReport {
	last := EpochOf(now) - 1
	var reps []EpochReport
	for e := last - Epoch(days) + 1; e <= last; e++ {
		rep := EpochReport{Epoch: e}
		for i := range Witnesses {
			w := fmt.Sprintf("w%d-%d", e, i)
			rep.Witnesses = append(rep.Witnesses, w)
			s := Summary{Subject: subject, Witness: w, Epoch: e, Audits: 1, AuditsPassed: 1}
			for _, at := range ProbeTimes(e, ProbesPerEpoch, r) {
				s.Probes++
				if up(at) {
					s.Answered++
				}
			}
			if liar != nil {
				liar(i, &s)
			}
			rep.Summaries = append(rep.Summaries, s)
		}
		reps = append(reps, rep)
	}
	return reps
}

// A node offline a third of each day ends within ±0.05 of 2/3 after 30
// days, whatever the seed, and still does with one lying witness per
// epoch.
func TestUptimeOfANodeOfflineAThird(t *testing.T) {
	now := t0
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 3))
		up := dailyOutage(r, 8*time.Hour, EpochOf(now)-WindowEpochs, WindowEpochs)
		st := Assess("subject", now, witnessRun(r, "subject", up, now, WindowEpochs, nil))
		if st.KnownEpochs != WindowEpochs || math.Abs(st.Uptime-2.0/3) > 0.05 {
			t.Fatalf("seed %d: uptime %.3f over %d epochs", seed, st.Uptime, st.KnownEpochs)
		}
		liar := func(i int, s *Summary) {
			if i == 0 {
				s.Answered = 0
				s.Deleted = []ShardRef{{1}, {2}, {3}}
			}
		}
		lied := Assess("subject", now, witnessRun(r, "subject", up, now, WindowEpochs, liar))
		if math.Abs(lied.Uptime-2.0/3) > 0.05 || len(lied.Strikes) != 0 || lied.State == Malicious {
			t.Fatalf("seed %d: one liar per epoch gives uptime %.3f, %d strikes, %s",
				seed, lied.Uptime, len(lied.Strikes), lied.State)
		}
	}
}

// A node whose availability comes and goes at random is estimated close
// to the share of the time it really answered.
func TestUptimeFollowsRandomOutages(t *testing.T) {
	now := t0
	worst := 0.0
	for seed := range uint64(100) {
		r := rand.New(rand.NewPCG(seed, 4))
		// Alternating spans, on ~ exp(mean 6 h), off ~ exp(mean 3 h).
		type span struct {
			from time.Time
			on   bool
		}
		start := (EpochOf(now) - WindowEpochs).Start()
		var spans []span
		on := true
		for at := start; at.Before(now); {
			spans = append(spans, span{at, on})
			mean := 6 * time.Hour
			if !on {
				mean = 3 * time.Hour
			}
			at = at.Add(time.Duration(r.ExpFloat64() * float64(mean)))
			on = !on
		}
		up := func(t time.Time) bool {
			i := len(spans) - 1
			for i > 0 && spans[i].from.After(t) {
				i--
			}
			return spans[i].on
		}
		var real time.Duration
		for i, s := range spans {
			end := now
			if i+1 < len(spans) {
				end = spans[i+1].from
			}
			if s.on {
				real += end.Sub(s.from)
			}
		}
		truth := float64(real) / float64(now.Sub(start))
		st := Assess("subject", now, witnessRun(r, "subject", up, now, WindowEpochs, nil))
		worst = max(worst, math.Abs(st.Uptime-truth))
	}
	if worst > 0.05 {
		t.Fatalf("estimate off the real share by up to %.3f", worst)
	}
}

func TestQuorum(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	always := func(time.Time) bool { return true }
	reps := witnessRun(r, "s", always, t0, WindowEpochs, nil)
	// Keep only three of seven summaries in every epoch: nothing is known,
	// and the node is not counted as down.
	for i := range reps {
		reps[i].Summaries = reps[i].Summaries[:Majority(Witnesses)-1]
	}
	st := Assess("s", t0, reps)
	if st.KnownEpochs != 0 || st.State != Unknown || st.UptimeKnown() {
		t.Fatalf("a minority of summaries gave %+v", st)
	}
	// Reporters outside the witness set, however many, count for nothing.
	reps = witnessRun(r, "s", always, t0, WindowEpochs, nil)
	for i := range reps {
		for j := range 20 {
			reps[i].Summaries = append([]Summary{{
				Subject: "s", Witness: fmt.Sprintf("sybil-%d", j), Epoch: reps[i].Epoch,
				Probes: 12, Deleted: []ShardRef{{1}, {2}, {3}},
			}}, reps[i].Summaries...)
		}
	}
	st = Assess("s", t0, reps)
	if st.Uptime != 1 || len(st.Strikes) != 0 {
		t.Fatalf("outside reporters moved the standing: uptime %.2f, %d strikes", st.Uptime, len(st.Strikes))
	}
	// A witness's second summary of an epoch, another subject's and
	// another epoch's summaries are ignored.
	reps = witnessRun(r, "s", always, t0, 1, nil)
	w := reps[0].Witnesses[0]
	reps[0].Summaries = append([]Summary{{Subject: "s", Witness: w, Epoch: reps[0].Epoch, Probes: 12}}, reps[0].Summaries...)
	if st := Assess("s", t0, reps); st.Uptime != 1 {
		t.Fatalf("a witness counted twice: uptime %.2f", st.Uptime)
	}
	if st := Assess("other", t0, reps); st.KnownEpochs != 0 {
		t.Fatal("summaries of another subject counted")
	}
}

// strikeRun gives the subject full uptime and good audits over the window,
// with shards reported deleted by `by` witnesses in the given epochs.
func strikeRun(now time.Time, by int, strikes map[Epoch][]ShardRef) []EpochReport {
	r := rand.New(rand.NewPCG(6, 6))
	return witnessRun(r, "s", func(time.Time) bool { return true }, now, WindowEpochs, func(i int, s *Summary) {
		s.Audits, s.AuditsPassed = 2, 2
		if i < by {
			s.Deleted = append([]ShardRef(nil), strikes[s.Epoch]...)
			s.Normalize()
		}
	})
}

func TestStrikes(t *testing.T) {
	now := t0
	last := EpochOf(now) - 1
	strikes := map[Epoch][]ShardRef{last - 20: {{1}}, last - 10: {{2}}, last - 2: {{3}}}
	st := Assess("s", now, strikeRun(now, Majority(Witnesses), strikes))
	if st.State != Malicious || len(st.Strikes) != 3 {
		t.Fatalf("three strikes gave %s with %d strikes", st.State, len(st.Strikes))
	}
	// It lasts until the oldest of the three leaves the window: one
	// nanosecond before, still malicious; at it, not.
	until := (last - 20).End().Add(Window)
	if !st.Until.Equal(until) {
		t.Fatalf("malicious until %s, want %s", st.Until, until)
	}
	for _, c := range []struct {
		at   time.Time
		want bool
	}{{until.Add(-time.Nanosecond), true}, {until, false}} {
		reps := strikeRun(c.at, Majority(Witnesses), strikes)
		if got := Assess("s", c.at, reps).State == Malicious; got != c.want {
			t.Fatalf("at %s: malicious %v, want %v", c.at, got, c.want)
		}
	}
	// Reported by a minority of witnesses: nothing.
	if st := Assess("s", now, strikeRun(now, Majority(Witnesses)-1, strikes)); len(st.Strikes) != 0 || st.State != Good {
		t.Fatalf("a minority's strikes counted: %d, %s", len(st.Strikes), st.State)
	}
	// One epoch, however many shards its witnesses report, adds one strike.
	many := map[Epoch][]ShardRef{last - 4: {{9}, {8}, {7}, {6}, {5}}}
	st = Assess("s", now, strikeRun(now, Witnesses, many))
	if len(st.Strikes) != 1 || st.Strikes[0].Shard != (ShardRef{5}) || st.State == Malicious {
		t.Fatalf("five shards in one epoch: %+v, %s", st.Strikes, st.State)
	}
	// Reported again in later epochs, the others become strikes there.
	many[last-3] = many[last-4]
	many[last-1] = many[last-4]
	st = Assess("s", now, strikeRun(now, Witnesses, many))
	if len(st.Strikes) != 3 || st.State != Malicious || st.Strikes[0].Epoch != last-1 {
		t.Fatalf("the same five shards in three epochs: %+v, %s", st.Strikes, st.State)
	}
	// The same shard reported in three epochs is one strike, dated from
	// its first report, so reporting it again cannot prolong it.
	same := map[Epoch][]ShardRef{last - 20: {{1}}, last - 10: {{1}}, last - 2: {{1}}}
	st = Assess("s", now, strikeRun(now, Majority(Witnesses), same))
	if len(st.Strikes) != 1 || st.Strikes[0].Epoch != last-20 || st.State == Malicious {
		t.Fatalf("one shard reported thrice: %+v, %s", st.Strikes, st.State)
	}
}

func TestVetting(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	always := func(time.Time) bool { return true }
	audits := func(passed, failed uint16) func(int, *Summary) {
		return func(_ int, s *Summary) { s.Audits, s.AuditsPassed = passed+failed, passed }
	}
	cases := []struct {
		name   string
		days   int
		audit  func(int, *Summary)
		want   State
		uptime bool
	}{
		{"two days", MinKnownEpochs - 1, audits(5, 0), Unknown, false},
		{"three days", MinKnownEpochs, audits(5, 0), Vetting, true},
		{"six days, many audits", VettingEpochs - 1, audits(5, 0), Vetting, true},
		{"seven days", VettingEpochs, audits(2, 0), Good, true},
		{"seven days, too few audits", VettingEpochs, audits(1, 0), Vetting, true},
		{"a month, failing audits", WindowEpochs, audits(2, 1), Vetting, true},
		{"a month, no audits", WindowEpochs, audits(0, 0), Vetting, true},
	}
	for _, c := range cases {
		st := Assess("s", t0, witnessRun(r, "s", always, t0, c.days, c.audit))
		if st.State != c.want || st.UptimeKnown() != c.uptime {
			t.Errorf("%s: %s (uptime known %v), want %s", c.name, st.State, st.UptimeKnown(), c.want)
		}
	}
}
