package karma

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// An Observer is one node's own record of the nodes it watches: the
// probes it made of each and their answers, its audits of its own test
// shards there, and the deleted shards it saw, per epoch, over the window.
// A provider keeps one for the nodes linked to the accounts that store on
// it, and decides what those accounts may store from its own measurements
// alone (docs/design.md §6.10): its decision binds only its own disk, so it
// needs nobody's agreement and trusts nobody's history.
//
// It is pure: no network, time passed in. It is not safe for concurrent
// use.
type Observer struct {
	self string
	max  int
	subs map[string]*observed
}

// DefaultMaxObserved bounds the nodes one observer watches. A provider
// watches the linked nodes of the accounts storing on it, and placement
// spreads an account over most providers, so in a network of n nodes
// each provider would watch about n: past the bound it drops the node
// needed least recently, with its tallies, and that node's account is
// back to vetting there. 16,384 nodes cost about 11 MiB of saved state
// (saved in 0.34 s; BenchmarkObserverScale) and 2.3 probes a second.
const DefaultMaxObserved = 16384

// AuditProbes are the probe slots of an epoch (indices into the
// ProbesPerEpoch slots) at which an answered probe is followed by an audit
// of the observer's test shard: two a day, so VettingAudits are passed
// within VettingEpochs.
var AuditProbes = []int{2, 8}

// Observed is what an observer keeps of one subject. Exported for the
// observer's saved state only.
type Observed struct {
	// Since is when the subject was first watched, Needed when it was last
	// named by something that needs its standing.
	Since, Needed time.Time
	// Epochs holds the tallies of the window's epochs and the current one.
	Epochs Tallies
}

// Tallies are a subject's tallies by epoch. Saved, each is one string,
// "epoch probes answered audits passed" and the deleted shards in hex:
// a third of the size of JSON objects, and as fast to read back as to
// write (state version 3; version 2's objects are still read).
type Tallies map[Epoch]*Tally

// MarshalJSON writes the tallies as a list of strings, by epoch.
func (t Tallies) MarshalJSON() ([]byte, error) {
	es := slices.Sorted(maps.Keys(t))
	b := make([]byte, 0, 2+len(es)*24)
	b = append(b, '[')
	for _, e := range es {
		tl := t[e]
		if tl == nil {
			continue
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, '"')
		for i, v := range []uint64{uint64(e), uint64(tl.Probes), uint64(tl.Answered), uint64(tl.Audits), uint64(tl.AuditsPassed)} {
			if i > 0 {
				b = append(b, ' ')
			}
			b = strconv.AppendUint(b, v, 10)
		}
		for _, d := range tl.Deleted {
			b = append(b, ' ')
			b = hex.AppendEncode(b, d[:])
		}
		b = append(b, '"')
	}
	return append(b, ']'), nil
}

// UnmarshalJSON reads what MarshalJSON wrote, or version 2's object of
// tallies by epoch. A string that does not parse is an error.
func (t *Tallies) UnmarshalJSON(b []byte) error {
	if trimmed := bytes.TrimSpace(b); len(trimmed) > 0 && trimmed[0] == '{' {
		m := map[Epoch]*Tally{}
		if err := json.Unmarshal(trimmed, &m); err != nil {
			return err
		}
		*t = m
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return err
	}
	m := make(Tallies, len(list))
	for _, s := range list {
		f := strings.Fields(s)
		if len(f) < 5 {
			return fmt.Errorf("karma: tally %q: want epoch, probes, answered, audits, passed", s)
		}
		var n [5]uint64
		for i := range n {
			bits := 16
			if i == 0 {
				bits = 32
			}
			v, err := strconv.ParseUint(f[i], 10, bits)
			if err != nil {
				return fmt.Errorf("karma: tally %q: %v", s, err)
			}
			n[i] = v
		}
		tl := &Tally{Probes: uint16(n[1]), Answered: uint16(n[2]), Audits: uint16(n[3]), AuditsPassed: uint16(n[4])}
		for _, h := range f[5:] {
			var d ShardRef
			if len(h) != 2*len(d) {
				return fmt.Errorf("karma: tally %q: deleted shard %q", s, h)
			}
			if _, err := hex.Decode(d[:], []byte(h)); err != nil {
				return fmt.Errorf("karma: tally %q: %v", s, err)
			}
			tl.Deleted = append(tl.Deleted, d)
		}
		m[Epoch(n[0])] = tl
	}
	*t = m
	return nil
}

// Tally is an observer's count of one subject for one epoch.
type Tally struct {
	Probes, Answered     uint16
	Audits, AuditsPassed uint16
	Deleted              []ShardRef `json:",omitempty"`
}

type observed struct {
	Observed
	plan      []time.Time // this epoch's probe times not yet made
	planEpoch Epoch
	planned   bool
	// standing is the last Standing, for any time in cacheEpoch: Assess
	// reads only complete epochs, so it changes only with the epoch or
	// with the tallies (every change of which clears cached).
	standing   Standing
	cacheEpoch Epoch
	cached     bool
}

// NewObserver returns an observer named self (its node ID) that watches
// at most max subjects (DefaultMaxObserved when max ≤ 0).
func NewObserver(self string, max int) *Observer {
	if max <= 0 {
		max = DefaultMaxObserved
	}
	return &Observer{self: self, max: max, subs: map[string]*observed{}}
}

// Watch starts watching subject, or notes that it is still needed. When
// the observer is full, the subject needed least recently is dropped (with
// its tallies). Watching oneself is refused.
func (o *Observer) Watch(subject string, now time.Time) {
	if subject == "" || subject == o.self || len(subject) > MaxIDLen {
		return
	}
	if s := o.subs[subject]; s != nil {
		if now.After(s.Needed) {
			s.Needed = now
		}
		return
	}
	for len(o.subs) >= o.max {
		var oldest string
		var at time.Time
		for id, s := range o.subs {
			if oldest == "" || s.Needed.Before(at) || (s.Needed.Equal(at) && id < oldest) {
				oldest, at = id, s.Needed
			}
		}
		delete(o.subs, oldest)
	}
	o.subs[subject] = &observed{Observed: Observed{Since: now, Needed: now, Epochs: map[Epoch]*Tally{}}}
}

// Watching reports whether subject is watched.
func (o *Observer) Watching(subject string) bool { return o.subs[subject] != nil }

// Subjects returns the watched subjects, sorted.
func (o *Observer) Subjects() []string { return slices.Sorted(maps.Keys(o.subs)) }

// tally returns subject's tally of t's epoch, or nil when it is not
// watched.
func (o *Observer) tally(subject string, t time.Time) *Tally {
	s := o.subs[subject]
	if s == nil {
		return nil
	}
	s.cached = false
	e := EpochOf(t)
	tl := s.Epochs[e]
	if tl == nil {
		tl = &Tally{}
		s.Epochs[e] = tl
	}
	return tl
}

// Probed records a probe of subject at t and whether it was answered.
// Probes past MaxProbes in one epoch are not counted.
func (o *Observer) Probed(subject string, t time.Time, answered bool) {
	tl := o.tally(subject, t)
	if tl == nil || tl.Probes >= MaxProbes {
		return
	}
	tl.Probes++
	if answered {
		tl.Answered++
	}
}

// Audited records an audit of the observer's test shard on subject at t.
// An audit that got no answer is not an audit: call Probed instead.
func (o *Observer) Audited(subject string, t time.Time, passed bool) {
	tl := o.tally(subject, t)
	if tl == nil || tl.Audits >= MaxAudits {
		return
	}
	tl.Audits++
	if passed {
		tl.AuditsPassed++
	}
}

// Deleted records that subject was shown at t to have deleted shard: the
// caller checked the evidence (its own failed audit's signed answer, or a
// DeletedPart report CheckDeletedPart accepted). A shard counts once per
// epoch; at most MaxShardsReported per epoch.
func (o *Observer) Deleted(subject string, t time.Time, shard ShardRef) {
	tl := o.tally(subject, t)
	if tl == nil || len(tl.Deleted) >= MaxShardsReported {
		return
	}
	i, found := slices.BinarySearchFunc(tl.Deleted, shard, func(a, b ShardRef) int { return bytes.Compare(a[:], b[:]) })
	if !found {
		tl.Deleted = slices.Insert(tl.Deleted, i, shard)
	}
}

// Standing returns subject's standing at now from the observer's own
// tallies: Assess with the observer as the only witness of every epoch it
// probed in. An unwatched subject is Unknown.
func (o *Observer) Standing(subject string, now time.Time) Standing {
	s := o.subs[subject]
	if s == nil {
		return Standing{At: now}
	}
	if s.cached && s.cacheEpoch == EpochOf(now) {
		st := s.standing
		st.At, st.Strikes = now, slices.Clone(st.Strikes)
		return st
	}
	reports := make([]EpochReport, 0, len(s.Epochs))
	for _, e := range slices.Sorted(maps.Keys(s.Epochs)) { // sorted: the same sums, to the last bit
		tl := s.Epochs[e]
		sum := Summary{Subject: subject, Witness: o.self, Epoch: e,
			Probes: tl.Probes, Answered: tl.Answered, Audits: tl.Audits, AuditsPassed: tl.AuditsPassed,
			Deleted: tl.Deleted}
		reports = append(reports, EpochReport{Epoch: e, Witnesses: []string{o.self}, Summaries: []Summary{sum}})
	}
	st := Assess(subject, now, reports)
	s.standing, s.cacheEpoch, s.cached = st, EpochOf(now), true
	s.standing.Strikes = slices.Clone(st.Strikes)
	return st
}

// Due returns the subjects with a probe due at now, each once, and for
// each whether the probe is one followed by an audit (AuditProbes). Each
// subject's probe times in an epoch are ProbeTimes drawn from r, the
// observer's private source, when the epoch is first seen; times that
// passed before (the observer was down, or the subject was watched later)
// are skipped, not made up.
func (o *Observer) Due(now time.Time, r *rand.Rand) (subjects []string, audit []bool) {
	e := EpochOf(now)
	for _, id := range o.Subjects() {
		s := o.subs[id]
		if !s.planned || s.planEpoch != e {
			s.plan, s.planEpoch, s.planned = ProbeTimes(e, ProbesPerEpoch, r), e, true
			for i := range s.plan {
				if s.plan[i].Before(s.Since) {
					s.plan[i] = time.Time{}
				}
			}
			// A fresh plan skips the slots already past.
			for i := range s.plan {
				if !s.plan[i].IsZero() && s.plan[i].Before(now.Add(-probeSlack)) {
					s.plan[i] = time.Time{}
				}
			}
		}
		for i, t := range s.plan {
			if t.IsZero() || t.After(now) {
				continue
			}
			s.plan[i] = time.Time{}
			subjects = append(subjects, id)
			audit = append(audit, slices.Contains(AuditProbes, i))
			break // one probe per subject per call
		}
	}
	return subjects, audit
}

// probeSlack is how late a planned probe may still be made when its plan
// is drawn: a plan drawn at an epoch's start by a round a little late
// keeps its first slot.
const probeSlack = 10 * time.Minute

// Prune drops tallies of epochs before the window and subjects not needed
// for a whole window.
func (o *Observer) Prune(now time.Time) {
	first, _, ok := WindowAt(now)
	for id, s := range o.subs {
		if now.Sub(s.Needed) > Window {
			delete(o.subs, id)
			continue
		}
		if !ok {
			continue
		}
		for e := range s.Epochs {
			if e < first {
				delete(s.Epochs, e)
				s.cached = false
			}
		}
	}
}

// observerState is the saved form of an observer. IDs are written in
// base64: they are any bytes (peer IDs are binary), and JSON strings carry
// only UTF-8 (version 1 wrote them raw, so that no state it saved with a
// binary ID read back).
type observerState struct {
	Version  int
	Self     string
	Subjects map[string]*Observed
}

// observerStateVersion is the version written; version 2 (tallies as
// JSON objects) is read too.
const observerStateVersion = 3

func encodeID(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

// MarshalJSON returns the observer's tallies (not its probe plans, which
// are drawn again after a restart).
func (o *Observer) MarshalJSON() ([]byte, error) {
	st := observerState{Version: observerStateVersion, Self: encodeID(o.self), Subjects: map[string]*Observed{}}
	for id, s := range o.subs {
		st.Subjects[encodeID(id)] = &s.Observed
	}
	return json.Marshal(st)
}

// ErrObserverState is wrapped by the errors of a saved state that cannot
// be used.
var ErrObserverState = errors.New("karma: observer state")

// UnmarshalJSON loads tallies saved by MarshalJSON into o, which must have
// been made by NewObserver for the same node; past o's bound, the subjects
// needed least recently are dropped.
func (o *Observer) UnmarshalJSON(b []byte) error {
	var st observerState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%w: %v", ErrObserverState, err)
	}
	switch {
	case st.Version != observerStateVersion && st.Version != 2:
		return fmt.Errorf("%w: version %d (this build reads %d)", ErrObserverState, st.Version, observerStateVersion)
	case st.Self != encodeID(o.self):
		return fmt.Errorf("%w: kept by another node", ErrObserverState)
	}
	subjects := make(map[string]*Observed, len(st.Subjects))
	for k, s := range st.Subjects {
		if id, err := base64.RawURLEncoding.DecodeString(k); err == nil {
			subjects[string(id)] = s
		}
	}
	st.Subjects = subjects
	ids := slices.Collect(maps.Keys(st.Subjects))
	sort.Slice(ids, func(i, j int) bool { return st.Subjects[ids[i]].Needed.After(st.Subjects[ids[j]].Needed) })
	for _, id := range ids {
		s := st.Subjects[id]
		if s == nil || id == "" || id == o.self || len(id) > MaxIDLen || len(o.subs) >= o.max {
			continue
		}
		if s.Epochs == nil {
			s.Epochs = map[Epoch]*Tally{}
		}
		for e, tl := range s.Epochs {
			if tl == nil || tl.Probes > MaxProbes || tl.Answered > tl.Probes || tl.Audits > MaxAudits ||
				tl.AuditsPassed > tl.Audits || len(tl.Deleted) > MaxShardsReported {
				delete(s.Epochs, e)
				continue
			}
			slices.SortFunc(tl.Deleted, func(a, b ShardRef) int { return bytes.Compare(a[:], b[:]) })
			tl.Deleted = slices.Compact(tl.Deleted)
		}
		o.subs[id] = &observed{Observed: *s}
	}
	return nil
}
