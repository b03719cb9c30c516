package jellyfish

import (
	"context"
	"time"

	"github.com/rclone/rclone/fs"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/timeproto"
)

// skewRetryFor is how long a process keeps asking when too few peers were
// connected to estimate its clock's offset at once.
const skewRetryFor = 30 * time.Second

// skewClock is Jellyfish's clock corrected by the network's
// (timeproto.Corrected), with the process's logging.
type skewClock struct {
	*timeproto.Corrected
}

type offsetAsker = func(context.Context, func() time.Time) (time.Duration, []timeproto.Sample, error)

// estimate asks the network's clocks once and applies the result. It
// reports whether enough peers answered.
func (c skewClock) estimate(ctx context.Context, ask offsetAsker) bool {
	u, err := c.Estimate(ctx, ask)
	if err != nil {
		return false
	}
	abs := u.Measured
	if abs < 0 {
		abs = -abs
	}
	switch {
	case u.Disbelieved:
		fs.Errorf(nil, "jellyfish: %d peers' clocks are %v from this machine's; not believed (more than %v): check this machine's clock", u.Peers, u.Measured.Round(time.Second), timeproto.MaxCorrection)
	case u.Changed && c.Offset() != 0:
		fs.Logf(nil, "jellyfish: this machine's clock is %v %s the network's (median of %d peers): using the network's time", abs.Round(time.Second), map[bool]string{true: "behind", false: "ahead of"}[u.Measured > 0], u.Peers)
	}
	return true
}

// start estimates at once (within first) and, when too few peers were
// connected yet, keeps trying in the background (within ctx) for
// skewRetryFor.
func (c skewClock) start(first, ctx context.Context, ask offsetAsker) {
	// The routing table fills within moments of joining: a few quick
	// tries before falling back to the background.
	for try := 0; ; try++ {
		if c.estimate(first, ask) {
			return
		}
		if try == 4 {
			break
		}
		select {
		case <-first.Done():
		case <-time.After(200 * time.Millisecond):
			continue
		}
		break
	}
	go func() {
		deadline := time.Now().Add(skewRetryFor)
		for time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			if c.estimate(ctx, ask) {
				return
			}
		}
		fs.Debugf(nil, "jellyfish: clock not checked against the network: %v", c.Status()["error"])
	}()
}
