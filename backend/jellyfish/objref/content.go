package objref

import (
	"encoding/binary"
	"fmt"
)

// PackID names a pack: a shared object holding the bytes of several small
// files. It is random, chosen by the device that creates the pack.
type PackID [16]byte

// Member is a packed file's bytes: a range of its pack's original layout.
type Member struct {
	Pack   PackID
	Off, N int64
}

// maxMemberOffset bounds member offsets and lengths, so sums cannot overflow.
const maxMemberOffset = 1 << 61

// Marshal encodes m: 2 | pack ID [16] | offset uvarint | length uvarint.
func (m Member) Marshal() []byte {
	b := make([]byte, 0, 1+len(m.Pack)+2*binary.MaxVarintLen64)
	b = append(b, TagMember)
	b = append(b, m.Pack[:]...)
	b = binary.AppendUvarint(b, uint64(m.Off))
	return binary.AppendUvarint(b, uint64(m.N))
}

func parseMember(b []byte) (Member, error) {
	var m Member
	if len(b) < len(m.Pack) {
		return m, bad("pack member truncated")
	}
	copy(m.Pack[:], b)
	b = b[len(m.Pack):]
	off, k := binary.Uvarint(b)
	if k <= 0 {
		return m, bad("pack member offset")
	}
	n, j := binary.Uvarint(b[k:])
	if j <= 0 || k+j != len(b) || off > maxMemberOffset || n > maxMemberOffset {
		return m, bad("pack member length")
	}
	m.Off, m.N = int64(off), int64(n)
	return m, nil
}

// Kind says what a content field is.
type Kind int

// Kinds of content.
const (
	KindNone     Kind = iota // no content: the bytes are inline (or the file is empty)
	KindRef                  // an object of its own
	KindMember               // a range of a pack
	KindIndirect             // an object of its own, whose reference is stored apart
)

// Content is a decoded content field.
type Content struct {
	Kind   Kind
	Ref    *ObjRef // KindRef: the object; KindIndirect: the object holding the reference
	Member Member  // KindMember
	// Stored is, for KindIndirect, the bytes the object's shards occupy.
	Stored int64
}

// Parse decodes a content field. An empty field is KindNone.
func Parse(b []byte) (Content, error) {
	if len(b) == 0 {
		return Content{Kind: KindNone}, nil
	}
	switch b[0] {
	case TagRefV1, TagRefV2:
		r, err := Unmarshal(b)
		return Content{Kind: KindRef, Ref: r}, err
	case TagMember:
		m, err := parseMember(b[1:])
		return Content{Kind: KindMember, Member: m}, err
	case TagIndirect:
		stored, n := binary.Uvarint(b[1:])
		if n <= 0 || stored > maxMemberOffset {
			return Content{}, bad("indirect reference's stored bytes")
		}
		b = b[1+n:]
		if len(b) < 1 || b[0] != TagRefV2 {
			return Content{}, bad("indirect reference is not a version 2 reference")
		}
		r, err := Unmarshal(b)
		return Content{Kind: KindIndirect, Ref: r, Stored: int64(stored)}, err
	}
	return Content{}, fmt.Errorf("%w: unknown content tag %d", ErrFormat, b[0])
}

// Indirect encodes a content field pointing at the object (holder) whose
// bytes are the real reference, of an object whose shards occupy stored
// bytes: 4 | stored uvarint | holder's ObjRef version 2.
func Indirect(holder *ObjRef, stored int64) ([]byte, error) {
	b, err := holder.Marshal()
	if err != nil {
		return nil, err
	}
	out := binary.AppendUvarint([]byte{TagIndirect}, uint64(stored))
	return append(out, b...), nil
}

// StoredBytes returns the bytes the objects a content field names occupy
// on providers, as far as the field itself says: a reference's held
// shards, an indirect reference's recorded figure and its holder object;
// 0 for a pack member (its pack is counted once, apart) or no content.
func StoredBytes(content []byte) int64 {
	c, err := Parse(content)
	if err != nil {
		return 0
	}
	switch c.Kind {
	case KindRef:
		return c.Ref.StoredBytes()
	case KindIndirect:
		return c.Stored + c.Ref.StoredBytes()
	}
	return 0
}
