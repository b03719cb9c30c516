package timeproto

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"
)

// maxFuzzPeers is the most answers FuzzAnswers reads.
const maxFuzzPeers = 64

// FuzzAnswers reads the input as the answers of up to maxFuzzPeers peers
// (answerSize bytes each; a shorter tail is a peer that did not answer)
// and checks what the clock makes of them: every answer re-encodes to its
// bytes, the median offset lies between the smallest and the largest, and
// a Corrected clock applies it only within [MinCorrection, MaxCorrection]
// and reports it disbelieved exactly when it is beyond MaxCorrection.
func FuzzAnswers(f *testing.F) {
	local := time.Unix(1_800_000_000, 0)
	var seed []byte
	for _, d := range []time.Duration{time.Second, 2 * time.Minute, -3 * 24 * time.Hour, 40 * 24 * time.Hour, 0} {
		seed = append(seed, encodeAnswer(local.Add(d))...)
	}
	f.Add(seed)
	f.Add(seed[:answerSize*2])
	f.Add(seed[:answerSize*3-1])
	f.Add(seed[:answerSize-1])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxFuzzPeers*answerSize+answerSize-1 {
			// Bytes past the peers' answers would be ignored; skipping
			// them keeps the corpus (and its minimization) small.
			return
		}
		var samples []Sample
		for len(b) >= answerSize {
			var a [answerSize]byte
			copy(a[:], b)
			b = b[answerSize:]
			theirs := decodeAnswer(a)
			if again := encodeAnswer(theirs); !bytes.Equal(again, a[:]) {
				t.Fatalf("answer %x encodes back as %x", a, again)
			}
			samples = append(samples, Sample{Theirs: theirs, Mid: local, RTT: time.Millisecond})
		}
		m := Median(samples)
		if len(samples) == 0 {
			if m != 0 {
				t.Fatalf("median of no samples %v", m)
			}
			return
		}
		offs := make([]time.Duration, len(samples))
		for i, s := range samples {
			offs[i] = s.Offset()
		}
		if lo, hi := slices.Min(offs), slices.Max(offs); m < lo || m > hi {
			t.Fatalf("median %v outside [%v, %v] of %v", m, lo, hi, offs)
		}

		c := NewCorrected(func() time.Time { return local })
		u, err := c.Estimate(context.Background(), func(context.Context, func() time.Time) (time.Duration, []Sample, error) {
			return m, samples, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		small := m > -MinCorrection && m < MinCorrection
		beyond := m > MaxCorrection || m < -MaxCorrection
		switch off := c.Offset(); {
		case u.Disbelieved != beyond:
			t.Fatalf("offset %v reported disbelieved=%v", m, u.Disbelieved)
		case (small || beyond) && off != 0:
			t.Fatalf("offset %v applied as %v", m, off)
		case !small && !beyond && off != m:
			t.Fatalf("offset %v applied as %v", m, off)
		}
	})
}
