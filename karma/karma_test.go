package karma

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)

func TestEpochs(t *testing.T) {
	e := EpochOf(t0)
	if !e.Start().Equal(t0) || !e.End().Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("epoch %d runs %s to %s", e, e.Start(), e.End())
	}
	if EpochOf(t0.Add(-time.Nanosecond)) != e-1 || EpochOf(e.End().Add(-time.Nanosecond)) != e {
		t.Fatal("epoch boundaries")
	}
	if EpochOf(time.Unix(-5, 0)) != 0 {
		t.Fatal("a time before 1970 is not in epoch 0")
	}
	if _, _, ok := WindowAt(time.Unix(100, 0)); ok {
		t.Fatal("a window before any epoch ended")
	}
	// A report of epoch e counts from e.End() until e.End()+Window, and
	// not a nanosecond after.
	in := func(at time.Time) bool {
		first, last, ok := WindowAt(at)
		return ok && first <= e && e <= last
	}
	if in(e.End().Add(-time.Nanosecond)) || !in(e.End()) ||
		!in(e.End().Add(Window-time.Nanosecond)) || in(e.End().Add(Window)) {
		t.Fatal("a report's window is not [end, end+Window)")
	}
	if first, last, _ := WindowAt(t0); last-first+1 != WindowEpochs {
		t.Fatalf("window of %d epochs", last-first+1)
	}
	if first, last, _ := WindowAt(Epoch(3).Start()); first != 0 || last != 2 {
		t.Fatalf("early window %d..%d", first, last)
	}
}

func TestNonceChain(t *testing.T) {
	start := EpochOf(t0)
	c := NewChain([32]byte{1, 2, 3}, start)
	a := c.Anchor()
	for _, e := range []Epoch{start, start + 1, start + 700, start + ChainLength - 1} {
		n, err := c.Nonce(e)
		if err != nil || !a.Verify(e, n) {
			t.Fatalf("epoch %d: %v, verified %v", e, err, a.Verify(e, n))
		}
		if a.Verify(e+1, n) || (e > start && a.Verify(e-1, n)) {
			t.Fatalf("epoch %d's nonce verifies for another epoch", e)
		}
	}
	for _, e := range []Epoch{start - 1, start + ChainLength} {
		if _, err := c.Nonce(e); !errors.Is(err, ErrChainRange) {
			t.Fatalf("epoch %d outside the chain: %v", e, err)
		}
		if a.Verify(e, [32]byte{}) {
			t.Fatalf("epoch %d outside the chain verifies", e)
		}
	}
	n, _ := c.Nonce(start + 5)
	n[0] ^= 1
	if a.Verify(start+5, n) {
		t.Fatal("a changed nonce verifies")
	}
	other := NewChain([32]byte{9}, start)
	n2, _ := other.Nonce(start + 5)
	if a.Verify(start+5, n2) {
		t.Fatal("another chain's nonce verifies")
	}
}

func candidates(r *rand.Rand, n, owners int, vetted Epoch) []Candidate {
	cs := make([]Candidate, n)
	for i := range cs {
		cs[i] = Candidate{
			ID:          fmt.Sprintf("node-%d-%d", i, r.Uint64()),
			Owner:       fmt.Sprintf("owner-%d", r.IntN(owners)),
			VettedSince: vetted,
		}
	}
	return cs
}

func TestSelectWitnesses(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	e := EpochOf(t0)
	cs := candidates(r, 200, 60, e-VettedLead)
	subject := cs[0]
	seed := Seed(subject.ID, e, GenesisSeed(subject.ID), nil)
	ws := SelectWitnesses(subject.ID, subject.Owner, e, seed, cs, Witnesses)
	if len(ws) != Witnesses {
		t.Fatalf("%d witnesses", len(ws))
	}
	// They are the nearest eligible candidates, one per owner: check
	// against a brute-force walk.
	key := WitnessKey(subject.ID, e, seed)
	owners := map[string]bool{}
	for _, w := range ws {
		if w.ID == subject.ID || w.Owner == subject.Owner || owners[w.Owner] {
			t.Fatalf("witness %+v not eligible", w)
		}
		owners[w.Owner] = true
	}
	last := Distance(key, ws[len(ws)-1].ID)
	for _, c := range cs {
		if c.ID == subject.ID || c.Owner == subject.Owner || owners[c.Owner] {
			continue
		}
		d := Distance(key, c.ID)
		if string(d[:]) < string(last[:]) {
			t.Fatalf("eligible candidate %s is nearer than the last witness", c.ID)
		}
	}
	// Same inputs, same witnesses; a new seed, others.
	if again := SelectWitnesses(subject.ID, subject.Owner, e, seed, cs, Witnesses); !reflect.DeepEqual(ws, again) {
		t.Fatal("selection is not deterministic")
	}
	next := Seed(subject.ID, e+1, seed, [][32]byte{{7}})
	if reflect.DeepEqual(ws, SelectWitnesses(subject.ID, subject.Owner, e+1, next, cs, Witnesses)) {
		t.Fatal("the next epoch has the same witnesses")
	}
	// Vetted too late: a node vetted after e−VettedLead is not chosen,
	// however near it is.
	late := slicesWith(cs, func(c *Candidate) { c.VettedSince = e - VettedLead + 1 })
	if got := SelectWitnesses(subject.ID, subject.Owner, e, seed, late, Witnesses); len(got) != 0 {
		t.Fatalf("%d witnesses vetted too late", len(got))
	}
	unvetted := slicesWith(cs, func(c *Candidate) { c.VettedSince = 0 })
	if got := SelectWitnesses(subject.ID, subject.Owner, e, seed, unvetted, Witnesses); len(got) != 0 {
		t.Fatalf("%d unvetted witnesses", len(got))
	}
	// Nodes naming no owner are each their own group.
	loose := slicesWith(cs, func(c *Candidate) { c.Owner = "" })
	if got := SelectWitnesses(subject.ID, "", e, seed, loose, Witnesses); len(got) != Witnesses {
		t.Fatalf("%d witnesses among owner-less nodes", len(got))
	}
}

func slicesWith(cs []Candidate, f func(*Candidate)) []Candidate {
	out := append([]Candidate(nil), cs...)
	for i := range out {
		f(&out[i])
	}
	return out
}

func TestSeed(t *testing.T) {
	e := EpochOf(t0)
	prev := GenesisSeed("s")
	a, b := [32]byte{1}, [32]byte{2}
	if Seed("s", e, prev, [][32]byte{a, b}) != Seed("s", e, prev, [][32]byte{b, a, a}) {
		t.Fatal("the seed depends on the order or repetition of nonces")
	}
	if Seed("s", e, prev, [][32]byte{a, b}) == Seed("s", e, prev, [][32]byte{a}) {
		t.Fatal("withholding a nonce leaves the seed unchanged")
	}
	if Seed("s", e, prev, nil) == Seed("s", e+1, prev, nil) || Seed("s", e, prev, nil) == Seed("t", e, prev, nil) {
		t.Fatal("the seed ignores the epoch or the subject")
	}
}

func validSummary() Summary {
	s := Summary{
		Subject: "subject", Witness: "witness", Epoch: EpochOf(t0),
		Anchor: ChainAnchor{Start: 20000, Tip: [32]byte{5}}, Nonce: [32]byte{6},
		Probes: 12, Answered: 9, Audits: 2, AuditsPassed: 2,
		Deleted: []ShardRef{{3}, {1}, {2}, {1}},
		Silent:  []ShardRef{{9}},
	}
	s.Normalize()
	return s
}

func TestSummaryEncoding(t *testing.T) {
	s := validSummary()
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalSummary(b)
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, got, s)
	}
	// Every shorter prefix and any trailing byte is refused.
	for i := range b {
		if _, err := UnmarshalSummary(b[:i]); !errors.Is(err, ErrBadSummary) {
			t.Fatalf("prefix of %d bytes: %v", i, err)
		}
	}
	if _, err := UnmarshalSummary(append(b, 0)); !errors.Is(err, ErrBadSummary) {
		t.Fatalf("trailing byte: %v", err)
	}
	// The largest summary fits MaxSummarySize and a 4 KiB record.
	big := s
	big.Subject, big.Witness = string(make([]byte, MaxIDLen)), "w"+string(make([]byte, MaxIDLen-1))
	big.Deleted, big.Silent = nil, nil
	for i := range MaxShardsReported {
		big.Deleted = append(big.Deleted, ShardRef{byte(i)})
		big.Silent = append(big.Silent, ShardRef{byte(i)})
	}
	bb, err := big.Marshal()
	if err != nil || len(bb) != MaxSummarySize || MaxSummarySize > 2048 {
		t.Fatalf("largest summary: %v, %d bytes of %d", err, len(bb), MaxSummarySize)
	}
	bad := map[string]func(*Summary){
		"no subject":         func(s *Summary) { s.Subject = "" },
		"long witness":       func(s *Summary) { s.Witness = string(make([]byte, MaxIDLen+1)) },
		"self":               func(s *Summary) { s.Witness = s.Subject },
		"answered > probes":  func(s *Summary) { s.Answered = s.Probes + 1 },
		"too many probes":    func(s *Summary) { s.Probes, s.Answered = MaxProbes+1, 0 },
		"passed > audits":    func(s *Summary) { s.AuditsPassed = s.Audits + 1 },
		"unsorted":           func(s *Summary) { s.Deleted = []ShardRef{{2}, {1}} },
		"duplicate":          func(s *Summary) { s.Silent = []ShardRef{{1}, {1}} },
		"too many reported":  func(s *Summary) { s.Silent = make([]ShardRef, MaxShardsReported+1) },
		"too many audits":    func(s *Summary) { s.Audits, s.AuditsPassed = MaxAudits+1, 0 },
		"long subject":       func(s *Summary) { s.Subject = string(make([]byte, 300)) },
		"answered, no probe": func(s *Summary) { s.Probes, s.Answered = 0, 1 },
	}
	for name, f := range bad {
		s := validSummary()
		f(&s)
		if _, err := s.Marshal(); !errors.Is(err, ErrBadSummary) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A hand-made encoding of an invalid summary is refused on decoding.
	b2 := append([]byte(nil), b...)
	b2[len(summaryMagic)+1+len(s.Subject)+1+len(s.Witness)+4+4+32+32+2+1] = 200 // answered 200 of 12
	if _, err := UnmarshalSummary(b2); !errors.Is(err, ErrBadSummary) {
		t.Fatalf("answered > probes decoded: %v", err)
	}
	if _, err := UnmarshalSummary([]byte("JFKS\x02")); !errors.Is(err, ErrBadSummary) {
		t.Fatalf("version 2: %v", err)
	}
}

func FuzzUnmarshalSummary(f *testing.F) {
	s := validSummary()
	b, _ := s.Marshal()
	f.Add(b)
	f.Add([]byte(summaryMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := UnmarshalSummary(b)
		if err != nil {
			return
		}
		again, err := s.Marshal()
		if err != nil || string(again) != string(b) {
			t.Fatalf("a decoded summary does not encode back: %v", err)
		}
	})
}
