package ns

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Head is what a device's head record points at: the newest batch of its
// log. Version 1 heads (read only) also pointed at the device's checkpoint
// and said how far its log was collected; version 2 heads leave both to
// the batch, so a head has the same small size whatever the namespace.
// Version 3 adds when the device was last used (Seen), which decides when
// it is retired from the account record.
type Head struct {
	Version  int
	Device   DeviceID
	BatchSeq uint64 // seq of the batch at Tip
	HLC      uint64 // newest stamp the device's log holds
	Tip      []byte // reference of the newest batch, or nil
	// Seen is when the device last published its head, Unix seconds on
	// its clock (version 3; 0 in older versions).
	Seen int64

	// Version 1 only.
	Checkpoint []byte // reference of a flat checkpoint, or nil
	CPSeq      uint64 // the device's batch seq the checkpoint covers
	GCSeq      uint64 // the device's batches up to this seq were collected
}

// HeadVersion is the version of the heads this package writes.
const HeadVersion = 3

// HeadKeySize is the size of the key that seals head bodies.
const HeadKeySize = chacha20poly1305.KeySize

// maxHeadRef bounds a reference in a head: a one-segment object of up to
// 64 shards on holders with IDs of up to 64 bytes fits.
const maxHeadRef = 8 << 10

// SealHead encodes and encrypts h (as version 3, whatever h.Version says)
// for the head record at dhtKey, under key:
//
//	nonce [24] | XChaCha20-Poly1305(ad = dhtKey) of
//	version u8 (3) | device [16] | batch seq u64 | HLC u64 | seen u64 |
//	tip length u16 | tip
func SealHead(key []byte, dhtKey string, h *Head) ([]byte, error) {
	if len(h.Tip) > maxHeadRef {
		return nil, fmt.Errorf("%w: head reference of %d bytes", ErrFormat, len(h.Tip))
	}
	if h.Seen < 0 {
		return nil, fmt.Errorf("%w: head seen at %d", ErrFormat, h.Seen)
	}
	b := []byte{HeadVersion}
	b = append(b, h.Device[:]...)
	b = binary.BigEndian.AppendUint64(b, h.BatchSeq)
	b = binary.BigEndian.AppendUint64(b, h.HLC)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Seen))
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.Tip)))
	b = append(b, h.Tip...)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, b, []byte(dhtKey)), nil
}

// ErrHeadKey: a head body does not open with the account's key.
var ErrHeadKey = errors.New("ns: head record does not open with this account's key")

// OpenHead decrypts and decodes a head body of version 1, 2 or 3:
//
//	version 1: version u8 (1) | device [16] | batch seq u64 | HLC u64 |
//	checkpoint seq u64 | collected seq u64 | tip length u16 | tip |
//	checkpoint length u16 | checkpoint
//	version 2: version u8 (2) | device [16] | batch seq u64 | HLC u64 |
//	tip length u16 | tip
func OpenHead(key []byte, dhtKey string, body []byte) (*Head, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	if len(body) < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("%w: head body too short", ErrFormat)
	}
	b, err := aead.Open(nil, body[:chacha20poly1305.NonceSizeX], body[chacha20poly1305.NonceSizeX:], []byte(dhtKey))
	if err != nil {
		return nil, ErrHeadKey
	}
	rd := bytes.NewReader(b)
	h := &Head{}
	v, _ := rd.ReadByte()
	h.Version = int(v)
	if v < 1 || v > HeadVersion {
		return nil, fmt.Errorf("%w: head version %d not supported", ErrFormat, v)
	}
	if _, err := rd.Read(h.Device[:]); err != nil {
		return nil, fmt.Errorf("%w: head truncated", ErrFormat)
	}
	var seen uint64
	fields := []*uint64{&h.BatchSeq, &h.HLC}
	switch v {
	case 1:
		fields = append(fields, &h.CPSeq, &h.GCSeq)
	case 3:
		fields = append(fields, &seen)
	}
	for _, p := range fields {
		if err := binary.Read(rd, binary.BigEndian, p); err != nil {
			return nil, fmt.Errorf("%w: head truncated", ErrFormat)
		}
	}
	if seen > 1<<62 {
		return nil, fmt.Errorf("%w: head seen at %d", ErrFormat, seen)
	}
	h.Seen = int64(seen)
	refs := []*[]byte{&h.Tip}
	if v == 1 {
		refs = append(refs, &h.Checkpoint)
	}
	for _, p := range refs {
		var n uint16
		if err := binary.Read(rd, binary.BigEndian, &n); err != nil || int(n) > rd.Len() {
			return nil, fmt.Errorf("%w: head truncated", ErrFormat)
		}
		if n > 0 {
			*p = make([]byte, n)
			rd.Read(*p)
		}
	}
	if rd.Len() != 0 {
		return nil, fmt.Errorf("%w: head has trailing bytes", ErrFormat)
	}
	return h, nil
}
