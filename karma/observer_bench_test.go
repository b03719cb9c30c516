package karma

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkObserverScale measures what an observer watching n nodes
// costs: saving its state (size and time), loading it, drawing one due
// round, and the standings of every subject, each subject with a full
// window of tallies.
func BenchmarkObserverScale(b *testing.B) {
	for _, n := range []int{1024, 16384} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			start := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
			o := NewObserver("self", n)
			r := rand.New(rand.NewPCG(1, 2))
			ids := make([]string, n)
			for i := range ids {
				ids[i] = fmt.Sprintf("12D3KooW%044d", i)
				o.Watch(ids[i], start)
			}
			for e := range WindowEpochs {
				at := start.Add(time.Duration(e) * EpochLength)
				for _, id := range ids {
					for p := range ProbesPerEpoch {
						o.Probed(id, at.Add(time.Duration(p)*time.Hour), true)
					}
					o.Audited(id, at, true)
					o.Audited(id, at.Add(time.Hour), true)
				}
			}
			now := start.Add(WindowEpochs * EpochLength)
			var saved []byte
			b.Run("save", func(b *testing.B) {
				for b.Loop() {
					var err error
					if saved, err = json.Marshal(o); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(saved))/float64(n), "bytes/subject")
			})
			b.Run("load", func(b *testing.B) {
				for b.Loop() {
					if err := json.Unmarshal(saved, NewObserver("self", n)); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("due", func(b *testing.B) {
				for b.Loop() {
					o.Due(now, r)
				}
			})
			b.Run("standings", func(b *testing.B) {
				for b.Loop() {
					for _, id := range ids {
						o.Standing(id, now)
					}
				}
			})
		})
	}
}
