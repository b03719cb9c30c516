package karma

import (
	"math/rand/v2"
	"time"
)

// ProbesPerEpoch is how many times each witness probes its subject in an
// epoch: with Witnesses witnesses, 84 probes a day.
const ProbesPerEpoch = 12

// ProbeTimes returns n probe times in epoch e: one uniformly at random in
// each of n equal slots, in order. r must be the witness's private source:
// the subject can then neither know the times in advance nor be away
// between them only.
func ProbeTimes(e Epoch, n int, r *rand.Rand) []time.Time {
	if n <= 0 {
		return nil
	}
	slot := EpochLength / time.Duration(n)
	out := make([]time.Time, n)
	start := e.Start()
	for i := range out {
		out[i] = start.Add(time.Duration(i)*slot + time.Duration(r.Int64N(int64(slot))))
	}
	return out
}
