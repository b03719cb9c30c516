package shardproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/libp2p/go-libp2p/core/network"
)

// Hard limits of the wire format. A peer that sends more is reset.
const (
	// MaxHeaderSize caps a header frame (request or response).
	MaxHeaderSize = 64 << 10
	// MaxRange caps the bytes of one range get.
	MaxRange = 1 << 20
	// MaxProofLeaves caps the leaves asked for in one proof request.
	MaxProofLeaves = 16
	// MaxRenewIDs caps the shards renewed by one request.
	MaxRenewIDs = 1024
	// maxMessage caps the text of an error status.
	maxMessage = 512
	// maxKey caps a marshalled public key or signature on the wire.
	maxKey = 1024
)

// maxProofBytes bounds the proof of a range of n bytes: the covered leaves
// (at most one partial leaf more on each side), the sibling hashes on their
// paths and the length prefix.
func maxProofBytes(n int64) int64 {
	return n + 2*codec.LeafSize + 64*(2*(n/codec.LeafSize+2)+2*64) + 8
}

// Message types: the first byte of every request header frame.
const (
	msgPut       byte = 1
	msgGet       byte = 2
	msgStat      byte = 3
	msgDelete    byte = 4
	msgRenew     byte = 5
	msgChallenge byte = 6
	msgProof     byte = 7
	msgUsage     byte = 8
	// msgRepair is a put of a shard that repair rebuilt: the put's layout,
	// signature (under its own domain) and answer. The holder's admission
	// may let it past the owner's cap by a margin (WithAdmission); inside
	// the service it is a put with request.repair set.
	msgRepair byte = 9
	// msgStanding asks what the holder makes of the requesting account
	// (AccountStanding).
	msgStanding byte = 10
	// msgReport hands the holder evidence that another node deleted a
	// shard it kept (karma.DeletedPart).
	msgReport byte = 11
	// msgHoldings states what holders keep for the requesting account
	// (Holding).
	msgHoldings byte = 12
)

// Status is the first byte of every response header frame.
type Status byte

// Status codes.
const (
	StatusOK            Status = 0
	StatusContinue      Status = 1 // retired (1.0.0's "send the body now"); never sent
	StatusNotFound      Status = 2
	StatusQuotaExceeded Status = 3
	StatusIntegrity     Status = 4
	StatusInvalid       Status = 5
	StatusUnauthorized  Status = 6
	StatusBusy          Status = 7
	StatusTooLarge      Status = 8
	StatusNoSpace       Status = 9
	StatusInternal      Status = 10
	StatusTooSoon       Status = 11
	// StatusOverAllowance refuses a put that would take its owner (or all
	// owners of its kind) past what the holder's admission policy lets
	// them store there; the message says so in plain words. Holders before
	// it answered such puts from nobody; clients before it see an unknown
	// status, ErrRemote.
	StatusOverAllowance Status = 12
)

var errFrame = errors.New("shardproto: malformed frame")

// writeFrame writes one length-prefixed frame: a 4-byte big-endian length
// and the payload.
func writeFrame(w io.Writer, payload []byte) error {
	if len(payload) > MaxHeaderSize {
		return fmt.Errorf("%w: %d-byte frame exceeds %d", errFrame, len(payload), MaxHeaderSize)
	}
	buf := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint32(buf, uint32(len(payload)))
	copy(buf[4:], payload)
	_, err := w.Write(buf)
	return err
}

// readFrame reads one frame of at most max bytes. The length is checked
// before anything is allocated, and the frame's memory is reserved in the
// stream's resource scope (when given) for as long as the caller holds it:
// the returned release function gives it back.
func readFrame(r io.Reader, max int, scope network.ResourceScope) ([]byte, func(), error) {
	var lenBuf [4]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return nil, nil, err
	}
	n := binary.BigEndian.Uint32(lenBuf[:])
	if n == 0 || int64(n) > int64(max) {
		return nil, nil, fmt.Errorf("%w: length %d outside (0, %d]", errFrame, n, max)
	}
	release := func() {}
	if scope != nil {
		if err := scope.ReserveMemory(int(n), network.ReservationPriorityAlways); err != nil {
			return nil, nil, fmt.Errorf("shardproto: reserve %d bytes: %w", n, err)
		}
		release = func() { scope.ReleaseMemory(int(n)) }
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		release()
		return nil, nil, err
	}
	return buf, release, nil
}

// enc appends fixed-width big-endian fields.
type enc struct{ b []byte }

func (e *enc) u8(v byte)    { e.b = append(e.b, v) }
func (e *enc) u16(v int)    { e.b = binary.BigEndian.AppendUint16(e.b, uint16(v)) }
func (e *enc) u32(v int64)  { e.b = binary.BigEndian.AppendUint32(e.b, uint32(v)) }
func (e *enc) u64(v int64)  { e.b = binary.BigEndian.AppendUint64(e.b, uint64(v)) }
func (e *enc) raw(v []byte) { e.b = append(e.b, v...) }
func (e *enc) time(t time.Time) {
	e.u64(t.UnixNano())
}

// bytes16 appends a field with a 2-byte length prefix.
func (e *enc) bytes16(v []byte) {
	e.u16(len(v))
	e.raw(v)
}

// dec reads fields back; the first failure sticks and every later read
// returns zero values, so callers check err once at the end.
type dec struct {
	b   []byte
	err error
}

func (d *dec) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b) < n {
		d.err = fmt.Errorf("%w: need %d bytes, have %d", errFrame, n, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) u8() byte {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *dec) u16() int {
	if v := d.take(2); v != nil {
		return int(binary.BigEndian.Uint16(v))
	}
	return 0
}

func (d *dec) u32() int64 {
	if v := d.take(4); v != nil {
		return int64(binary.BigEndian.Uint32(v))
	}
	return 0
}

func (d *dec) u64() int64 {
	if v := d.take(8); v != nil {
		return int64(binary.BigEndian.Uint64(v))
	}
	return 0
}

func (d *dec) time() time.Time { return time.Unix(0, d.u64()) }

func (d *dec) id() (id codec.ShardID) {
	copy(id[:], d.take(len(id)))
	return id
}

func (d *dec) b32() (v [32]byte) {
	copy(v[:], d.take(32))
	return v
}

// bytes16 reads a 2-byte length-prefixed field of at most max bytes.
func (d *dec) bytes16(max int) []byte {
	n := d.u16()
	if d.err == nil && n > max {
		d.err = fmt.Errorf("%w: %d-byte field exceeds %d", errFrame, n, max)
		return nil
	}
	return d.take(n)
}

// done fails if bytes are left over.
func (d *dec) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errFrame, len(d.b))
	}
	return d.err
}
