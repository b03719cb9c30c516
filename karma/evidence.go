package karma

import (
	"errors"
	"fmt"
	"time"
)

// DeletedPart is an owner's report that a holder deleted a shard it had
// kept for it. It is evidence, not an accusation: both parts are the
// holder's own signed statements, so anyone can check them and nobody but
// the holder can make them.
type DeletedPart struct {
	Holder string
	Shard  ShardRef
	// Receipt is the holder's signed statement that it kept the shard: a
	// put receipt, or a renew receipt with the shard's inclusion proof.
	Receipt []byte
	// Answer is the holder's later signed answer to an audit of the shard:
	// a not-found, or leaf proofs that do not verify against the shard ID.
	// A salted-hash answer is not evidence: only its owner can check it.
	Answer []byte
}

// MaxEvidence bounds each part of a DeletedPart (a leaf-proof answer with
// its proofs is about 48 KiB).
const MaxEvidence = 128 << 10

// EvidenceChecker checks the holder's signatures and statements in a
// DeletedPart: both parts signed by the holder's key, both about the
// shard, the receipt saying the holder kept it, the answer — made after
// the receipt by the holder's own clock — saying it did not. It returns the
// answer's time as the holder signed it. The shard protocol implements it;
// this package stays free of its formats.
type EvidenceChecker interface {
	CheckDeletedPart(DeletedPart) (answered time.Time, err error)
}

// ErrNoEvidence is wrapped by every refusal of a DeletedPart.
var ErrNoEvidence = errors.New("karma: not evidence of a deleted part")

// CheckDeletedPart bounds-checks r, has c check its evidence, and accepts
// it only if the holder's answer falls within the window at now (and not
// after now by more than a day of clock error): an old answer replayed
// later proves nothing new.
func CheckDeletedPart(r DeletedPart, c EvidenceChecker, now time.Time) (time.Time, error) {
	switch {
	case r.Holder == "" || len(r.Holder) > MaxIDLen:
		return time.Time{}, fmt.Errorf("%w: holder ID of %d bytes", ErrNoEvidence, len(r.Holder))
	case len(r.Receipt) == 0 || len(r.Answer) == 0:
		return time.Time{}, fmt.Errorf("%w: the holder's receipt and its answer are both needed", ErrNoEvidence)
	case len(r.Receipt) > MaxEvidence || len(r.Answer) > MaxEvidence:
		return time.Time{}, fmt.Errorf("%w: evidence over %d bytes", ErrNoEvidence, MaxEvidence)
	}
	at, err := c.CheckDeletedPart(r)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %w", ErrNoEvidence, err)
	}
	if at.Before(now.Add(-Window)) || at.After(now.Add(EpochLength)) {
		return time.Time{}, fmt.Errorf("%w: the holder answered at %s, outside the %s window at %s",
			ErrNoEvidence, at.UTC().Format(time.RFC3339), Window, now.UTC().Format(time.RFC3339))
	}
	return at, nil
}

// Containment: a timed-out audit proves nothing (the network may have
// failed), but a rational cheater would go quiet on exactly the shards it
// dropped. So a shard whose audit timed out is re-asked by the witnesses,
// and a holder that stays silent on it ContainmentTries times over at least
// ContainmentSpan while answering the same witness's other probes is
// treated as having deleted it.
const (
	ContainmentTries = 3
	ContainmentSpan  = 24 * time.Hour
	// containmentGap is the least time between two tries that count, so
	// that a burst of tries while the holder is briefly busy counts once.
	containmentGap = ContainmentSpan / (ContainmentTries - 1) / 2
)

// TryOutcome is what one re-challenge of a contained shard gave.
type TryOutcome int

const (
	// ShardAnswered: the holder answered about the shard (a valid proof
	// ends containment; a wrong one or a not-found is evidence instead).
	ShardAnswered TryOutcome = iota
	// ShardSilent: no answer about the shard, while the holder answered
	// the witness's other probes around it.
	ShardSilent
	// HolderAway: the holder answered nothing at all; that is downtime,
	// which probes already count, not a try.
	HolderAway
)

// ContainmentVerdict is where a contained shard stands.
type ContainmentVerdict int

const (
	Contained ContainmentVerdict = iota // still being asked
	Released                            // the holder answered: nothing to report
	Silenced                            // counts as deleted
)

// Containment is one witness's record of one contained shard.
type Containment struct {
	Shard ShardRef
	Since time.Time // when it was contained
	// Tries that counted: silent on the shard while answering otherwise.
	Tries       int
	First, Last time.Time
	verdict     ContainmentVerdict
}

// Record adds the outcome of a try at time at and returns the verdict.
// After Released or Silenced the record is final.
func (c *Containment) Record(at time.Time, o TryOutcome) ContainmentVerdict {
	if c.verdict != Contained {
		return c.verdict
	}
	switch o {
	case ShardAnswered:
		c.verdict = Released
	case ShardSilent:
		// A try counts only containmentGap after the last that counted;
		// the silence itself lasts until this one.
		if c.Tries == 0 || at.Sub(c.Last) >= containmentGap {
			if c.Tries == 0 {
				c.First = at
			}
			c.Tries++
			c.Last = at
		}
		if c.Tries >= ContainmentTries && at.Sub(c.First) >= ContainmentSpan {
			c.verdict = Silenced
		}
	}
	return c.verdict
}

// Verdict returns the current verdict.
func (c *Containment) Verdict() ContainmentVerdict { return c.verdict }
