package jellyfish

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
)

// headState is what a device's head record points at: the tip of its log
// and its latest checkpoint.
type headState struct {
	Device     ns.DeviceID
	BatchSeq   uint64 // seq of the batch at Tip
	HLC        uint64 // highest stamp the device had issued
	Tip        []byte // ObjRef of the newest batch, or nil
	Checkpoint []byte // ObjRef of the latest checkpoint, or nil
	CPSeq      uint64 // the device's batch seq the checkpoint covers
	GCSeq      uint64 // the device's batches up to this seq were collected

	recSeq     uint64    // sequence number of the record it was read from
	recExpires time.Time // expiry of that record
}

const headVersion = 1

// headKey derives the key that encrypts head bodies from the account's root
// key: peers see that a device has a head, never what it points at.
func headKey(root account.RootKey) ([]byte, error) {
	return hkdf.Key(sha256.New, root[:], nil, "jellyfish/ns/v1/head-key", chacha20poly1305.KeySize)
}

// logCacheKey derives the key that seals the device's local copies of log
// batches and checkpoints (ns.LogCache) from the account's root key.
func logCacheKey(root account.RootKey) ([]byte, error) {
	return hkdf.Key(sha256.New, root[:], nil, "jellyfish/ns/v1/log-cache-key", ns.LogCacheKeySize)
}

// sealHead encodes and encrypts h for the head record at dhtKey:
//
//	nonce [24] | XChaCha20-Poly1305(ad = dhtKey) of
//	version u8 | device [16] | batch seq u64 | hlc u64 | checkpoint seq u64 |
//	collected seq u64 | tip len u16 | tip | checkpoint len u16 | checkpoint
func sealHead(root account.RootKey, dhtKey string, h *headState) ([]byte, error) {
	if len(h.Tip) > 1<<15 || len(h.Checkpoint) > 1<<15 {
		return nil, errors.New("jellyfish: head references too large")
	}
	b := []byte{headVersion}
	b = append(b, h.Device[:]...)
	b = binary.BigEndian.AppendUint64(b, h.BatchSeq)
	b = binary.BigEndian.AppendUint64(b, h.HLC)
	b = binary.BigEndian.AppendUint64(b, h.CPSeq)
	b = binary.BigEndian.AppendUint64(b, h.GCSeq)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.Tip)))
	b = append(b, h.Tip...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.Checkpoint)))
	b = append(b, h.Checkpoint...)
	k, err := headKey(root)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := aead.Seal(nonce, nonce, b, []byte(dhtKey))
	if len(out) > account.MaxHeadBody {
		return nil, fmt.Errorf("jellyfish: head body of %d bytes exceeds %d (checkpoint too large to reference directly)", len(out), account.MaxHeadBody)
	}
	return out, nil
}

// openHead decrypts and decodes a head body.
func openHead(root account.RootKey, dhtKey string, body []byte) (*headState, error) {
	k, err := headKey(root)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return nil, err
	}
	if len(body) < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead {
		return nil, errors.New("jellyfish: head body too short")
	}
	b, err := aead.Open(nil, body[:chacha20poly1305.NonceSizeX], body[chacha20poly1305.NonceSizeX:], []byte(dhtKey))
	if err != nil {
		return nil, errors.New("jellyfish: head record does not open with this account's key")
	}
	rd := bytes.NewReader(b)
	var h headState
	v, _ := rd.ReadByte()
	if v != headVersion {
		return nil, fmt.Errorf("jellyfish: head version %d not supported", v)
	}
	if _, err := io.ReadFull(rd, h.Device[:]); err != nil {
		return nil, err
	}
	for _, p := range []*uint64{&h.BatchSeq, &h.HLC, &h.CPSeq, &h.GCSeq} {
		if err := binary.Read(rd, binary.BigEndian, p); err != nil {
			return nil, err
		}
	}
	for _, p := range []*[]byte{&h.Tip, &h.Checkpoint} {
		var n uint16
		if err := binary.Read(rd, binary.BigEndian, &n); err != nil || int(n) > rd.Len() {
			return nil, errors.New("jellyfish: head body truncated")
		}
		if n > 0 {
			*p = make([]byte, n)
			io.ReadFull(rd, *p)
		}
	}
	if rd.Len() != 0 {
		return nil, errors.New("jellyfish: head body has trailing bytes")
	}
	return &h, nil
}
