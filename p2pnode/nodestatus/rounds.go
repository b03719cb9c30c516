package nodestatus

import (
	"maps"
	"sync"
	"time"
)

// Round records the outcomes of one kind of background round (the
// caretaker's, maintenance) for the status page. Create it with
// Status.Round; it is safe for concurrent use.
type Round struct {
	name  string
	every time.Duration

	mu     sync.Mutex
	runs   int
	failed int
	last   roundRun
}

type roundRun struct {
	start   time.Time
	took    time.Duration
	figures map[string]any
	err     error
}

// Done records a round that began at start and ended now, with the
// figures it reported (numbers, strings or small maps, as its log line
// has them) and its error, nil if it had none. A nil Round records
// nothing.
func (r *Round) Done(start time.Time, figures map[string]any, err error) {
	if r == nil {
		return
	}
	took := time.Since(start)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs++
	if err != nil {
		r.failed++
	}
	r.last = roundRun{start: start, took: took, figures: maps.Clone(figures), err: err}
}

func (r *Round) snapshot() RoundStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return roundStatus(r.name, r.every, r.runs, r.failed, r.last)
}

func roundStatus(name string, every time.Duration, runs, failed int, last roundRun) RoundStatus {
	rs := RoundStatus{Name: name, IntervalSeconds: every.Seconds(), Runs: runs, Failed: failed}
	if runs > 0 {
		start := last.start.UTC()
		rs.LastStart = &start
		rs.LastTookSeconds = last.took.Seconds()
		rs.LastFigures = last.figures
		if last.err != nil {
			rs.LastError = last.err.Error()
		}
	}
	return rs
}
