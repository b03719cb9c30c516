package karma

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
)

// observe runs o's probing of subject from start for days days in steps of
// step, the subject answering when up says so and passing every audit.
func observe(o *Observer, r *rand.Rand, up timeline, start time.Time, days int, step time.Duration) time.Time {
	now := start
	end := start.Add(time.Duration(days) * EpochLength)
	for ; now.Before(end); now = now.Add(step) {
		subs, audits := o.Due(now, r)
		for i, s := range subs {
			ok := up(now)
			o.Probed(s, now, ok)
			if ok && audits[i] {
				o.Audited(s, now, true)
			}
		}
	}
	return now
}

// One observer alone estimates a node offline a third of each day within
// ±0.05 of 2/3 after 30 days, for each of 200 seeds; and it is vetted.
func TestObserverUptime(t *testing.T) {
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 7))
		o := NewObserver("obs", 0)
		o.Watch("n", t0)
		up := dailyOutage(r, 8*time.Hour, EpochOf(t0), 31)
		now := observe(o, r, up, t0, 30, 5*time.Minute)
		st := o.Standing("n", now)
		if !st.UptimeKnown() || math.Abs(st.Uptime-2.0/3) > 0.05 {
			t.Fatalf("seed %d: uptime %.3f over %d epochs, want 0.667 ± 0.05", seed, st.Uptime, st.KnownEpochs)
		}
		if st.KnownEpochs != 30 || st.State != Good {
			t.Fatalf("seed %d: %d known epochs, state %v (audits %d/%d)", seed, st.KnownEpochs, st.State, st.AuditsPassed, st.AuditsFailed)
		}
	}
}

// Vetting takes VettingEpochs complete epochs: a node always up is vetting
// for its first six, good after the seventh, and unknown before three.
func TestObserverVetting(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	o := NewObserver("obs", 0)
	o.Watch("n", t0)
	always := func(time.Time) bool { return true }
	now := t0
	for day := 1; day <= VettingEpochs; day++ {
		now = observe(o, r, always, now, 1, 10*time.Minute)
		st := o.Standing("n", now)
		want := Vetting
		switch {
		case day < MinKnownEpochs:
			want = Unknown
		case day >= VettingEpochs:
			want = Good
		}
		if st.State != want || st.KnownEpochs != day {
			t.Fatalf("after %d days: %v with %d known epochs and %d audits, want %v", day, st.State, st.KnownEpochs, st.AuditsPassed, want)
		}
		if st.Uptime != 1 {
			t.Fatalf("uptime %v of a node always up", st.Uptime)
		}
	}
	if st := o.Standing("n", now); st.AuditsPassed != 2*VettingEpochs {
		t.Fatalf("%d audits passed in %d days, want %d", st.AuditsPassed, VettingEpochs, 2*VettingEpochs)
	}
	// A node that fails its audits is never vetted.
	o.Watch("bad", now)
	start := now
	for now = start; now.Before(start.Add(10 * EpochLength)); now = now.Add(10 * time.Minute) {
		subs, audits := o.Due(now, r)
		for i, s := range subs {
			o.Probed(s, now, true)
			if audits[i] {
				o.Audited(s, now, s != "bad")
			}
		}
	}
	if st := o.Standing("bad", now); st.State != Vetting || st.AuditsFailed == 0 {
		t.Fatalf("a node failing every audit is %v (%d failed)", st.State, st.AuditsFailed)
	}
}

// Three deleted shards in three epochs make a node malicious until the
// oldest leaves the window; the same shard reported again adds nothing.
func TestObserverStrikes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	o := NewObserver("obs", 0)
	o.Watch("n", t0)
	always := func(time.Time) bool { return true }
	now := observe(o, r, always, t0, 8, 15*time.Minute)
	first := now
	for i := range 3 {
		o.Deleted("n", now, ShardRef{1}) // the same shard each day: one strike
		if i > 0 {
			o.Deleted("n", now, ShardRef{byte(i + 1)})
		}
		now = observe(o, r, always, now, 1, 15*time.Minute)
	}
	st := o.Standing("n", now)
	if st.State != Malicious || len(st.Strikes) != 3 {
		t.Fatalf("after three deleted shards: %v with %d strikes", st.State, len(st.Strikes))
	}
	wantUntil := EpochOf(first).End().Add(Window)
	if !st.Until.Equal(wantUntil) {
		t.Fatalf("malicious until %v, want %v", st.Until, wantUntil)
	}
	if st := o.Standing("n", wantUntil.Add(-time.Nanosecond)); st.State != Malicious {
		t.Fatalf("a nanosecond before the end: %v", st.State)
	}
	// Keep probing to the end: the node recovers once the strike leaves.
	o.Watch("n", wantUntil)
	now = observe(o, r, always, now, int(wantUntil.Sub(now)/EpochLength)+1, 15*time.Minute)
	if st := o.Standing("n", now); st.State != Good {
		t.Fatalf("after the window: %v with %d strikes", st.State, len(st.Strikes))
	}
}

// Each subject is probed ProbesPerEpoch times an epoch, once per slot at
// most, and slots passed before it was watched are skipped.
func TestObserverDue(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	o := NewObserver("obs", 0)
	mid := t0.Add(12 * time.Hour)
	o.Watch("a", t0)
	o.Watch("b", mid)
	count := map[string]int{}
	audits := map[string]int{}
	for now := t0; now.Before(t0.Add(EpochLength)); now = now.Add(time.Minute) {
		if now.Equal(mid) {
			o.Watch("b", mid)
		}
		subs, au := o.Due(now, r)
		for i, s := range subs {
			count[s]++
			if au[i] {
				audits[s]++
			}
		}
	}
	if count["a"] != ProbesPerEpoch || audits["a"] != len(AuditProbes) {
		t.Fatalf("a: %d probes, %d audits in a day, want %d and %d", count["a"], audits["a"], ProbesPerEpoch, len(AuditProbes))
	}
	if count["b"] < ProbesPerEpoch/2-1 || count["b"] > ProbesPerEpoch/2 {
		t.Fatalf("b, watched at noon: %d probes", count["b"])
	}
	// A round late by a whole day makes one probe per subject, not a burst.
	subs, _ := o.Due(t0.Add(3*EpochLength+23*time.Hour), r)
	if len(subs) > 2 {
		t.Fatalf("%d probes due after a day's gap", len(subs))
	}
}

// The observer is bounded: past its size, the subject needed least
// recently goes; Prune drops epochs out of the window and subjects not
// needed for a window.
func TestObserverBounds(t *testing.T) {
	o := NewObserver("obs", 16)
	for i := range 16000 {
		o.Watch(fmt.Sprintf("n%05d", i), t0.Add(time.Duration(i)*time.Second))
	}
	if n := len(o.Subjects()); n != 16 {
		t.Fatalf("%d subjects, want 16", n)
	}
	if !o.Watching("n15999") || o.Watching("n15983") {
		t.Fatal("the wrong subjects were dropped")
	}
	o.Watch("obs", t0)
	if o.Watching("obs") {
		t.Fatal("an observer watches itself")
	}
	for d := range 40 {
		o.Probed("n15999", t0.Add(time.Duration(d)*EpochLength), true)
	}
	o.Prune(t0.Add(40 * EpochLength))
	if o.Watching("n15999") {
		t.Fatal("a subject not needed for 40 days is kept")
	}
	o.Watch("x", t0.Add(39*EpochLength))
	for d := range 40 {
		o.Probed("x", t0.Add(time.Duration(d)*EpochLength), true)
	}
	o.Prune(t0.Add(40 * EpochLength))
	if n := len(o.subs["x"].Epochs); n != WindowEpochs {
		t.Fatalf("%d epochs kept, want the window's %d", n, WindowEpochs)
	}
}

// The saved state loads back into the same standings; a state of another
// node, another version or out of bounds is refused or cleaned.
func TestObserverState(t *testing.T) {
	// IDs are bytes that are not UTF-8, as peer IDs are.
	const self, n, m = "obs\xff\x00", "n\x12\x20\xfe", "m\xc3"
	r := rand.New(rand.NewPCG(9, 9))
	o := NewObserver(self, 0)
	o.Watch(n, t0)
	o.Watch(m, t0)
	now := observe(o, r, dailyOutage(r, 6*time.Hour, EpochOf(t0), 12), t0, 10, 10*time.Minute)
	o.Deleted(m, now.Add(-EpochLength), ShardRef{7})
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	o2 := NewObserver(self, 0)
	if err := json.Unmarshal(b, o2); err != nil {
		t.Fatal(err)
	}
	if !o2.Watching(n) || !o2.Watching(m) || len(o2.Subjects()) != 2 {
		t.Fatalf("after a save the observer watches %q", o2.Subjects())
	}
	for _, id := range []string{n, m} {
		a, b := o.Standing(id, now), o2.Standing(id, now)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("%s: %+v before saving, %+v after", id, a, b)
		}
	}
	if err := json.Unmarshal(b, NewObserver("other", 0)); err == nil || !strings.Contains(err.Error(), "another node") {
		t.Fatalf("state of another node loaded: %v", err)
	}
	bad := strings.Replace(string(b), `"Version":3`, `"Version":1`, 1)
	if err := json.Unmarshal([]byte(bad), NewObserver(self, 0)); err == nil {
		t.Fatal("a state of another version loaded")
	}
	// A tally out of bounds is dropped, not trusted: the first tally's
	// answers become 99 more than its probes.
	forged := regexp.MustCompile(`"(\d+) (\d+) (\d+) `).ReplaceAllString(string(b), `"$1 $2 99$3 `)
	if forged == string(b) {
		t.Fatal("no tally to forge")
	}
	o3 := NewObserver(self, 0)
	if err := json.Unmarshal([]byte(forged), o3); err != nil {
		t.Fatal(err)
	}
	for _, s := range o3.subs {
		for _, tl := range s.Epochs {
			if tl.Answered > tl.Probes {
				t.Fatal("a tally with more answers than probes was kept")
			}
		}
	}
	// A tally that does not parse fails the state.
	if err := json.Unmarshal([]byte(strings.Replace(string(b), `"`+fmt.Sprint(EpochOf(t0))+` `, `"x `, 1)), NewObserver(self, 0)); err == nil {
		t.Fatal("a tally that does not parse was loaded")
	}

	// Version 2 wrote tallies as JSON objects: such a state still loads,
	// into the same standings (the deleted shard included).
	type v2Observed struct {
		Since, Needed time.Time
		Epochs        map[Epoch]*Tally
	}
	v2 := struct {
		Version  int
		Self     string
		Subjects map[string]*v2Observed
	}{Version: 2, Self: encodeID(self), Subjects: map[string]*v2Observed{}}
	for id, sub := range o.subs {
		v2.Subjects[encodeID(id)] = &v2Observed{Since: sub.Since, Needed: sub.Needed, Epochs: sub.Epochs}
	}
	old, err := json.Marshal(v2)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(old), `"Probes":`) {
		t.Fatalf("not version 2's form: %.200s", old)
	}
	o4 := NewObserver(self, 0)
	if err := json.Unmarshal(old, o4); err != nil {
		t.Fatalf("a version 2 state: %v", err)
	}
	for _, id := range []string{n, m} {
		a, b := o.Standing(id, now), o4.Standing(id, now)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("%s: %+v before, %+v from version 2", id, a, b)
		}
	}
	if len(b) >= len(old) {
		t.Fatalf("version 3's state is %d bytes, version 2's %d", len(b), len(old))
	}
}

// TestObserverStandingCache: the standing kept between changes is the one
// computed afresh, at every time asked, through probes, audits, deleted
// shards and pruning over 40 days, strikes included.
func TestObserverStandingCache(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	o := NewObserver("obs", 0)
	ids := []string{"a", "b", "c"}
	now := t0
	for _, id := range ids {
		o.Watch(id, now)
	}
	var shard byte
	for range 40 * 48 { // half-hour steps
		now = now.Add(30 * time.Minute)
		for _, id := range ids {
			switch x := r.IntN(10); {
			case x < 5:
				o.Probed(id, now.Add(-time.Duration(r.IntN(3))*EpochLength/2), r.IntN(4) > 0)
			case x < 7:
				o.Audited(id, now, r.IntN(5) > 0)
			case x == 7 && id == "c" && r.IntN(8) == 0:
				shard++
				o.Deleted(id, now, ShardRef{shard})
			}
			o.Watch(id, now) // still needed
			for range 2 {
				at := now.Add(time.Duration(r.Int64N(int64(time.Hour))))
				got := o.Standing(id, at)
				o.subs[id].cached = false
				want := o.Standing(id, at)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("%s at %v: kept %+v, computed %+v", id, at, got, want)
				}
			}
		}
		if r.IntN(48) == 0 {
			o.Prune(now)
		}
	}
	if st := o.Standing("c", now); len(st.Strikes) == 0 {
		t.Fatal("no strikes: the case the cache must keep right was not met")
	}
}

// TestObserverProbeSlack: a plan drawn late keeps a slot that passed
// probeSlack ago, to the nanosecond, and skips one that passed a
// nanosecond before that.
func TestObserverProbeSlack(t *testing.T) {
	e := EpochOf(t0) + 3
	slots := ProbeTimes(e, ProbesPerEpoch, rand.New(rand.NewPCG(7, 7)))
	due := func(now time.Time) int {
		o := NewObserver("obs", 0)
		o.Watch("n", e.Start())
		r := rand.New(rand.NewPCG(7, 7))
		n := 0
		for {
			s, _ := o.Due(now, r)
			if len(s) == 0 {
				return n
			}
			n++
		}
	}
	at := slots[0].Add(probeSlack)
	kept, late := due(at), due(at.Add(time.Nanosecond))
	if kept < 1 || late != kept-1 {
		t.Fatalf("plan drawn %v after the first slot: %d probes due; a nanosecond later %d", probeSlack, kept, late)
	}
}
