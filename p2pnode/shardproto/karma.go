package shardproto

import (
	"errors"
	"fmt"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/karma"
)

// KarmaEvidence checks karma DeletedPart reports made of this protocol's
// signed statements: the receipt is a renew inclusion (JFRI: the holder's
// renew receipt and the shard's place among the IDs it renewed), the
// answer a not-found (JFNF) or a proof answer whose proofs do not verify
// (JFPA). It implements karma.EvidenceChecker.
type KarmaEvidence struct{}

var _ karma.EvidenceChecker = KarmaEvidence{}

// errNotEvidence is wrapped by KarmaEvidence's refusals.
var errNotEvidence = errors.New("shardproto: not evidence")

// CheckDeletedPart implements karma.EvidenceChecker. Both statements must
// be signed by the report's holder and be about its shard and one owner;
// the answer must show the holder failed the audit; and, by the holder's
// own clock, it must have answered after the receipt and before the lease
// the receipt granted ended — a holder may delete a shard whose lease ran
// out. It returns the answer's time.
func (KarmaEvidence) CheckDeletedPart(r karma.DeletedPart) (time.Time, error) {
	ri, err := UnmarshalRenewInclusion(r.Receipt)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: the receipt: %w", errNotEvidence, err)
	}
	if err := VerifyRenewInclusion(ri); err != nil {
		return time.Time{}, fmt.Errorf("%w: the receipt: %w", errNotEvidence, err)
	}
	v, err := VerifyAuditAnswer(r.Answer)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: the answer: %w", errNotEvidence, err)
	}
	rc := ri.Receipt
	switch {
	case string(rc.Holder) != r.Holder || v.Holder != rc.Holder:
		return time.Time{}, fmt.Errorf("%w: the receipt and the answer are not both by holder %x", errNotEvidence, r.Holder)
	case ri.Shard != codec.ShardID(r.Shard) || v.Shard != ri.Shard:
		return time.Time{}, fmt.Errorf("%w: the receipt and the answer are not both about shard %x", errNotEvidence, r.Shard[:8])
	case v.Owner != rc.Owner:
		return time.Time{}, fmt.Errorf("%w: the audit was asked for another owner than the receipt's", errNotEvidence)
	case !v.Failed:
		return time.Time{}, fmt.Errorf("%w: the answer shows the holder keeps the shard", errNotEvidence)
	case !v.Issued.After(rc.Issued):
		return time.Time{}, fmt.Errorf("%w: the holder answered before its receipt", errNotEvidence)
	case !v.Issued.Before(rc.Until):
		return time.Time{}, fmt.Errorf("%w: the holder answered after the lease it granted ended", errNotEvidence)
	}
	return v.Issued, nil
}
