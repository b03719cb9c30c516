package karma

import (
	"bytes"
	"maps"
	"slices"
	"time"
)

const (
	// MinKnownEpochs is how many epochs with a quorum of summaries an
	// uptime estimate needs; below it the uptime is unknown, never zero.
	MinKnownEpochs = 3
	// VettingEpochs and VettingAudits are what a node needs in the window
	// before its shared space counts: that many known epochs and that many
	// passed audits, with at most one failed audit in MaxFailedShare.
	VettingEpochs  = 7
	VettingAudits  = 10
	MaxFailedShare = 20
	// StrikesToZero DeletedPart strikes in the window bring the owner's
	// allowance to zero until the oldest of them leaves the window.
	StrikesToZero = 3
)

// EpochReport is what a reader found about a subject for one epoch: the
// epoch's witnesses (SelectWitnesses) and the summaries it read. Summaries
// by anyone else, of another subject or epoch, or invalid, are ignored.
type EpochReport struct {
	Epoch     Epoch
	Witnesses []string
	Summaries []Summary
}

// State is a node's standing in words.
type State int

const (
	Unknown   State = iota // too few epochs with a quorum of witnesses
	Vetting                // known, but not yet vetted: its space does not count
	Good                   // vetted: its space counts, times its uptime
	Malicious              // StrikesToZero strikes in the window
)

func (s State) String() string {
	switch s {
	case Vetting:
		return "vetting"
	case Good:
		return "good"
	case Malicious:
		return "malicious"
	}
	return "unknown"
}

// Strike is a shard a majority of one epoch's witnesses reported deleted
// (or silenced); an epoch adds at most one.
type Strike struct {
	Shard ShardRef
	Epoch Epoch // the epoch it counted in: the first that reported it and had no other new strike
}

// Standing is a subject's standing at one time, from its witnesses'
// summaries over the window.
type Standing struct {
	At time.Time
	// KnownEpochs counts the window's epochs with summaries from a
	// majority of their witnesses.
	KnownEpochs int
	// Uptime is the mean over known epochs of the median share of probes
	// answered; meaningful only when KnownEpochs ≥ MinKnownEpochs.
	Uptime float64
	// Audits passed and failed: per known epoch the medians, summed.
	AuditsPassed, AuditsFailed int
	Strikes                    []Strike
	State                      State
	// Until is when the state changes if nothing new is reported: for
	// Malicious, when the oldest strike that keeps it there leaves the
	// window; zero otherwise.
	Until time.Time
}

// UptimeKnown reports whether Uptime is an estimate.
func (s Standing) UptimeKnown() bool { return s.KnownEpochs >= MinKnownEpochs }

// Vetted reports whether the node's shared space counts.
func (s Standing) Vetted() bool { return s.State == Good }

// Assess computes subject's standing at now from the reports of the
// epochs in the window (others are ignored). A summary counts only in its
// own epoch's report, about subject, once per witness; an epoch counts only
// when summaries of a majority of its witnesses were read, so withholding or
// losing summaries makes an epoch unknown, never bad. Medians make one
// lying witness (of three or more) move nothing; a shard counts as deleted
// only when a majority of its epoch's witnesses report it, and each epoch
// adds at most one strike.
func Assess(subject string, now time.Time, reports []EpochReport) Standing {
	st := Standing{At: now}
	first, last, ok := WindowAt(now)
	if !ok {
		return st
	}
	seen := map[Epoch]bool{}
	var uptimeSum float64
	firstStrike := map[ShardRef]Epoch{}
	majority := map[Epoch][]ShardRef{} // shards a majority reported, by epoch
	for _, r := range reports {
		if r.Epoch < first || r.Epoch > last || seen[r.Epoch] || len(r.Witnesses) == 0 {
			continue
		}
		sums, witnesses := epochSummaries(subject, r)
		var up, passed, failed []float64
		for _, s := range sums {
			if s.Probes > 0 {
				up = append(up, float64(s.Answered)/float64(s.Probes))
			}
			passed = append(passed, float64(s.AuditsPassed))
			failed = append(failed, float64(s.Audits-s.AuditsPassed))
		}
		// An epoch counts only if a majority of its witnesses reported,
		// and probed: fewer says nothing, which is not the same as bad.
		if len(up) < Majority(witnesses) {
			continue
		}
		seen[r.Epoch] = true
		st.KnownEpochs++
		uptimeSum += median(up)
		st.AuditsPassed += int(median(passed))
		st.AuditsFailed += int(median(failed))
		for shard, n := range reportedShards(sums) {
			if n >= Majority(witnesses) {
				majority[r.Epoch] = append(majority[r.Epoch], shard)
			}
		}
	}
	// At most one new strike per epoch, oldest epoch first: the witnesses
	// of one epoch, even all lying, add one strike, so zeroing an account
	// takes a majority in StrikesToZero different epochs.
	for _, e := range slices.Sorted(maps.Keys(majority)) {
		shards := majority[e]
		slices.SortFunc(shards, func(a, b ShardRef) int { return bytes.Compare(a[:], b[:]) })
		for _, shard := range shards {
			if _, ok := firstStrike[shard]; !ok {
				firstStrike[shard] = e
				break
			}
		}
	}
	if st.KnownEpochs > 0 {
		st.Uptime = uptimeSum / float64(st.KnownEpochs)
	}
	for shard, e := range firstStrike {
		st.Strikes = append(st.Strikes, Strike{Shard: shard, Epoch: e})
	}
	// Newest first; ties by shard so the order is deterministic.
	slices.SortFunc(st.Strikes, func(a, b Strike) int {
		if a.Epoch != b.Epoch {
			return int(b.Epoch) - int(a.Epoch)
		}
		return bytes.Compare(a.Shard[:], b.Shard[:])
	})
	switch {
	case len(st.Strikes) >= StrikesToZero:
		st.State = Malicious
		st.Until = st.Strikes[StrikesToZero-1].Epoch.End().Add(Window)
	case !st.UptimeKnown():
		st.State = Unknown
	case st.KnownEpochs >= VettingEpochs && st.AuditsPassed >= VettingAudits &&
		st.AuditsFailed*MaxFailedShare <= st.AuditsPassed:
		st.State = Good
	default:
		st.State = Vetting
	}
	return st
}

// epochSummaries keeps the valid summaries of subject by r's witnesses
// for r's epoch, the first of each witness, and the number of distinct
// witnesses.
func epochSummaries(subject string, r EpochReport) ([]Summary, int) {
	var out []Summary
	witness := map[string]bool{}
	for _, w := range r.Witnesses {
		witness[w] = true
	}
	n := len(witness)
	for _, s := range r.Summaries {
		if s.Subject != subject || s.Epoch != r.Epoch || !witness[s.Witness] || s.Validate() != nil {
			continue
		}
		witness[s.Witness] = false // one summary each
		out = append(out, s)
	}
	return out, n
}

// reportedShards counts, per shard, the witnesses that report it deleted
// or silenced (a witness counts once per shard).
func reportedShards(sums []Summary) map[ShardRef]int {
	n := map[ShardRef]int{}
	for _, s := range sums {
		mine := map[ShardRef]bool{}
		for _, l := range [][]ShardRef{s.Deleted, s.Silent} {
			for _, r := range l {
				mine[r] = true
			}
		}
		for r := range mine {
			n[r]++
		}
	}
	return n
}

// median returns the median of xs (the mean of the middle two for an even
// count); xs must not be empty. It sorts xs.
func median(xs []float64) float64 {
	slices.Sort(xs)
	m := len(xs) / 2
	if len(xs)%2 == 1 {
		return xs[m]
	}
	return (xs[m-1] + xs[m]) / 2
}
