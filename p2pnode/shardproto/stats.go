package shardproto

import (
	"fmt"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/network"
)

// String is the status's name as status pages and metrics label it.
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusContinue:
		return "continue"
	case StatusNotFound:
		return "not_found"
	case StatusQuotaExceeded:
		return "quota_exceeded"
	case StatusIntegrity:
		return "integrity"
	case StatusInvalid:
		return "invalid"
	case StatusUnauthorized:
		return "unauthorized"
	case StatusBusy:
		return "busy"
	case StatusTooLarge:
		return "too_large"
	case StatusNoSpace:
		return "no_space"
	case StatusInternal:
		return "internal"
	case StatusTooSoon:
		return "too_soon"
	case StatusOverAllowance:
		return "over_allowance"
	}
	return fmt.Sprintf("status_%d", byte(s))
}

// Request names, as ServiceStats reports them, indexed by message type.
var requestNames = [...]string{
	msgPut:       "put",
	msgGet:       "get",
	msgStat:      "stat",
	msgDelete:    "delete",
	msgRenew:     "renew",
	msgChallenge: "challenge",
	msgProof:     "proof",
	msgUsage:     "usage",
	msgStanding:  "standing",
	msgReport:    "report",
	msgHoldings:  "holdings",
}

// unknownRequest names the streams reset before their request decoded.
const unknownRequest = "undecoded"

const (
	numTypes    = len(requestNames)
	numStatuses = int(StatusOverAllowance) + 1
)

// counters count what the service did with each request, without a lock:
// handlers of every stream update them.
type counters struct {
	answers [numTypes][numStatuses]atomic.Int64
	resets  [numTypes]atomic.Int64 // index 0: no request decoded
}

func (c *counters) answered(typ byte, s Status) {
	if int(typ) < numTypes && typ != 0 && int(s) < numStatuses {
		c.answers[typ][s].Add(1)
	}
}

func (c *counters) reset(typ byte) {
	if int(typ) >= numTypes {
		typ = 0
	}
	c.resets[typ].Add(1)
}

// Answers counts the requests of one type answered with one status.
type Answers struct {
	Request string // "put", "get", "stat", "delete", "renew", "challenge" or "proof"
	Status  Status
	N       int64
}

// ServiceStats is what a Service has done since NewService.
type ServiceStats struct {
	// Answers counts the requests answered, by request type and status,
	// in that order; pairs never seen are left out. A request refused by
	// the owner-signature check is answered (StatusUnauthorized).
	Answers []Answers
	// Resets counts the streams reset after their request decoded, by
	// request type, and under "undecoded" those reset before (a bad or
	// missing header): transport failures, bodies cut short, deadlines.
	Resets map[string]int64
	// Evicted counts the streams waiting for their header that were reset
	// to make room for newer ones (or by Drain); Refused the streams
	// refused a serving slot (at a cap, or while draining). Both are
	// reset with the code clients retry on.
	Evicted, Refused int64
	// RefusalsHeld counts the evictions and refusals held before their
	// reset because their peer was over its refusal budget (see
	// DefaultRefusalHold); Held is how many are held now.
	RefusalsHeld int64
	Held         int
	// Pending and Serving are the streams waiting for their header and
	// being served now.
	Pending, Serving int
}

// Answered returns how many requests of type request were answered with
// status s.
func (st ServiceStats) Answered(request string, s Status) int64 {
	for _, a := range st.Answers {
		if a.Request == request && a.Status == s {
			return a.N
		}
	}
	return 0
}

// Stats returns the service's counts. Counts of different requests may be
// read a moment apart; each is exact.
func (s *Service) Stats() ServiceStats {
	g := s.gate.stats()
	st := ServiceStats{Resets: map[string]int64{}, Evicted: g.Evicted, Refused: g.Refused, Pending: g.Pending, Serving: g.Serving}
	st.RefusalsHeld, st.Held = s.refusals.counts()
	for typ := 1; typ < numTypes; typ++ {
		for status := range numStatuses {
			if n := s.counts.answers[typ][status].Load(); n > 0 {
				st.Answers = append(st.Answers, Answers{Request: requestNames[typ], Status: Status(status), N: n})
			}
		}
		if n := s.counts.resets[typ].Load(); n > 0 {
			st.Resets[requestNames[typ]] = n
		}
	}
	if n := s.counts.resets[0].Load(); n > 0 {
		st.Resets[unknownRequest] = n
	}
	return st
}

// answering is a served stream that remembers the status of the response
// header written on it (by respond), so the handler counts the request
// by its outcome.
type answering struct {
	network.Stream
	status   Status
	answered bool
	// hold, when set, says whether a Busy answer is to be held (its peer
	// is over its refusal budget); respond then keeps it in held instead
	// of writing it, and the handler has it written later (answerLate).
	hold    func() bool
	held    *response
	heldTyp byte
}
