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
		if len(b) < 2 || b[1] != TagRefV2 {
			return Content{}, bad("indirect reference is not a version 2 reference")
		}
		r, err := Unmarshal(b[1:])
		return Content{Kind: KindIndirect, Ref: r}, err
	}
	return Content{}, fmt.Errorf("%w: unknown content tag %d", ErrFormat, b[0])
}

// Indirect encodes a content field pointing at the object (holder) whose
// bytes are the real reference.
func Indirect(holder *ObjRef) ([]byte, error) {
	b, err := holder.Marshal()
	if err != nil {
		return nil, err
	}
	return append([]byte{TagIndirect}, b...), nil
}
