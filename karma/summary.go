package karma

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// ShardRef names a shard by its ID (the BLAKE3 Merkle root of its bytes).
type ShardRef [32]byte

// Summary is what one witness says of one subject for one epoch. It is
// the value of a signed record under a key naming the subject and the
// witness; the record's signature, not this package, says who wrote it.
type Summary struct {
	Subject string // the node the summary is about
	Witness string // the node that wrote it
	Epoch   Epoch
	// Anchor is the subject's nonce chain anchor as the witness saw it.
	Anchor ChainAnchor
	// Nonce is the witness's own chain nonce of Epoch, revealed when the
	// epoch has ended; it seeds the subject's next witnesses.
	Nonce [32]byte
	// Probes the witness made and how many the subject answered.
	Probes, Answered uint16
	// Audits of the witness's own test shards on the subject, and how
	// many it passed.
	Audits, AuditsPassed uint16
	// Deleted lists shards of the subject for which the witness checked a
	// DeletedPart report's evidence during the epoch.
	Deleted []ShardRef
	// Silent lists shards the subject left unanswered to this witness
	// through containment while answering its other probes.
	Silent []ShardRef
}

// Limits of a summary.
const (
	MaxIDLen          = 64 // bytes of a node ID
	MaxProbes         = 4 * ProbesPerEpoch
	MaxAudits         = 4 * ProbesPerEpoch
	MaxShardsReported = 16 // per list
)

const summaryMagic = "JFKS\x01"

// MaxSummarySize is the largest encoded summary.
const MaxSummarySize = len(summaryMagic) + 2*(1+MaxIDLen) + 4 + 4 + 32 + 32 + 4*2 + 2*(1+32*MaxShardsReported)

// ErrBadSummary is wrapped by every error about a summary's contents.
var ErrBadSummary = errors.New("karma: bad summary")

// Validate checks a summary's bounds and canonical form.
func (s *Summary) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadSummary, fmt.Sprintf(format, a...))
	}
	switch {
	case s.Subject == "" || len(s.Subject) > MaxIDLen:
		return bad("subject ID of %d bytes", len(s.Subject))
	case s.Witness == "" || len(s.Witness) > MaxIDLen:
		return bad("witness ID of %d bytes", len(s.Witness))
	case s.Subject == s.Witness:
		return bad("a node cannot witness itself")
	case s.Probes > MaxProbes || s.Answered > s.Probes:
		return bad("%d of %d probes answered (at most %d probes)", s.Answered, s.Probes, MaxProbes)
	case s.Audits > MaxAudits || s.AuditsPassed > s.Audits:
		return bad("%d of %d audits passed (at most %d audits)", s.AuditsPassed, s.Audits, MaxAudits)
	}
	for _, l := range []struct {
		name string
		refs []ShardRef
	}{{"deleted", s.Deleted}, {"silent", s.Silent}} {
		if len(l.refs) > MaxShardsReported {
			return bad("%d %s shards (at most %d)", len(l.refs), l.name, MaxShardsReported)
		}
		for i := 1; i < len(l.refs); i++ {
			if bytes.Compare(l.refs[i-1][:], l.refs[i][:]) >= 0 {
				return bad("%s shards not sorted and distinct", l.name)
			}
		}
	}
	return nil
}

// Normalize sorts the shard lists and drops duplicates, so that Validate
// accepts what a witness built in any order.
func (s *Summary) Normalize() {
	for _, l := range []*[]ShardRef{&s.Deleted, &s.Silent} {
		slices.SortFunc(*l, func(a, b ShardRef) int { return bytes.Compare(a[:], b[:]) })
		*l = slices.Compact(*l)
	}
}

// Marshal encodes a valid summary.
func (s *Summary) Marshal() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, MaxSummarySize)
	b = append(b, summaryMagic...)
	b = appendID(b, s.Subject)
	b = appendID(b, s.Witness)
	b = binary.BigEndian.AppendUint32(b, uint32(s.Epoch))
	b = binary.BigEndian.AppendUint32(b, uint32(s.Anchor.Start))
	b = append(b, s.Anchor.Tip[:]...)
	b = append(b, s.Nonce[:]...)
	for _, v := range []uint16{s.Probes, s.Answered, s.Audits, s.AuditsPassed} {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	for _, l := range [][]ShardRef{s.Deleted, s.Silent} {
		b = append(b, byte(len(l)))
		for _, r := range l {
			b = append(b, r[:]...)
		}
	}
	return b, nil
}

func appendID(b []byte, id string) []byte {
	return append(append(b, byte(len(id))), id...)
}

// UnmarshalSummary decodes and validates a summary; trailing bytes are an
// error.
func UnmarshalSummary(b []byte) (Summary, error) {
	var s Summary
	if len(b) > MaxSummarySize {
		return s, fmt.Errorf("%w: %d bytes (at most %d)", ErrBadSummary, len(b), MaxSummarySize)
	}
	if !bytes.HasPrefix(b, []byte(summaryMagic)) {
		return s, fmt.Errorf("%w: not a version 1 summary", ErrBadSummary)
	}
	r := reader{b: b[len(summaryMagic):]}
	s.Subject = r.id()
	s.Witness = r.id()
	s.Epoch = Epoch(r.u32())
	s.Anchor.Start = Epoch(r.u32())
	copy(s.Anchor.Tip[:], r.take(32))
	copy(s.Nonce[:], r.take(32))
	s.Probes, s.Answered, s.Audits, s.AuditsPassed = r.u16(), r.u16(), r.u16(), r.u16()
	s.Deleted = r.refs()
	s.Silent = r.refs()
	if r.err != nil {
		return Summary{}, fmt.Errorf("%w: %v", ErrBadSummary, r.err)
	}
	if len(r.b) != 0 {
		return Summary{}, fmt.Errorf("%w: %d trailing bytes", ErrBadSummary, len(r.b))
	}
	if err := s.Validate(); err != nil {
		return Summary{}, err
	}
	return s, nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || len(r.b) < n {
		if r.err == nil {
			r.err = errors.New("truncated")
		}
		return make([]byte, n)
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u16() uint16 { return binary.BigEndian.Uint16(r.take(2)) }
func (r *reader) u32() uint32 { return binary.BigEndian.Uint32(r.take(4)) }

func (r *reader) id() string {
	n := int(r.take(1)[0])
	if n > MaxIDLen && r.err == nil {
		r.err = fmt.Errorf("ID of %d bytes", n)
	}
	return string(r.take(n))
}

func (r *reader) refs() []ShardRef {
	n := int(r.take(1)[0])
	if n > MaxShardsReported && r.err == nil {
		r.err = fmt.Errorf("%d shards listed", n)
	}
	if r.err != nil {
		return nil
	}
	var out []ShardRef
	for range n {
		var s ShardRef
		copy(s[:], r.take(32))
		out = append(out, s)
	}
	return out
}
