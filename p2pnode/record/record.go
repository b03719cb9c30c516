package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	cryptopb "github.com/libp2p/go-libp2p/core/crypto/pb"
)

// Format constants of the record envelope, version 1.
const (
	// MaxRecordSize is the largest encoded record accepted, checked before
	// any parsing.
	MaxRecordSize = 4096
	// MaxKeySize bounds the DHT key a record may be stored under.
	MaxKeySize = 256
	// formatVersion is the envelope version written after the magic.
	formatVersion = 1
	// maxPubKeySize and maxSignatureSize bound the length-prefixed fields
	// independently of the total size, so no field can claim the whole cap.
	maxPubKeySize    = 128
	maxSignatureSize = 128
)

// magic starts every encoded record; the fourth byte is the version.
var magic = [3]byte{'J', 'F', 'R'}

// signingDomain separates record signatures from every other signature
// Jellyfish keys make.
const signingDomain = "jellyfish/record/v1\x00"

// Sentinel errors; callers test them with errors.Is.
var (
	ErrTooLarge       = errors.New("record: too large")
	ErrMalformed      = errors.New("record: malformed")
	ErrUnsupportedKey = errors.New("record: signer key is not Ed25519")
	ErrUnsigned       = errors.New("record: unsigned")
	ErrBadSignature   = errors.New("record: bad signature")
	ErrBadKey         = errors.New("record: bad DHT key")
	ErrUnknownKind    = errors.New("record: unknown kind")
	ErrWrongKey       = errors.New("record: record does not belong to this key")
	ErrUnauthorized   = errors.New("record: signer may not write this key")
	ErrExpired        = errors.New("record: expired")
	ErrTooFarFuture   = errors.New("record: expiry too far in the future")
	ErrBadBody        = errors.New("record: bad body")
	ErrStale          = errors.New("record: older than a sequence number already seen")
)

// Kind identifies a record kind on the wire. Kinds are registered with a
// Validator through KindRules; zero is never a valid kind.
type Kind uint8

// Record is one decoded record. Sign fills Signer and Signature; Decode
// fills every field. A Record does not know its DHT key: the key is an input
// to signing and verification, so a record cannot be moved to another key.
type Record struct {
	Kind Kind
	// Seq orders versions of the record at one key; higher wins.
	Seq uint64
	// Expires is the end of the record's life, with one-second precision.
	Expires time.Time
	// Body is the kind-specific payload.
	Body []byte
	// Signer is the Ed25519 key that signed the record.
	Signer crypto.PubKey
	// Signature covers signingDomain, the DHT key and every other field.
	Signature []byte
}

// Sign signs r for the DHT key with priv, sets r.Signer and r.Signature and
// returns the encoded record. priv must be an Ed25519 key; the encoded
// record must fit in MaxRecordSize.
func (r *Record) Sign(key string, priv crypto.PrivKey) ([]byte, error) {
	if priv == nil || priv.Type() != cryptopb.KeyType_Ed25519 {
		return nil, ErrUnsupportedKey
	}
	if len(key) == 0 || len(key) > MaxKeySize {
		return nil, fmt.Errorf("record: sign: key length %d: %w", len(key), ErrBadKey)
	}
	if r.Kind == 0 {
		return nil, fmt.Errorf("record: sign: kind 0: %w", ErrUnknownKind)
	}
	if r.Expires.Unix() <= 0 {
		return nil, fmt.Errorf("record: sign: expiry %v before 1970: %w", r.Expires, ErrMalformed)
	}
	pub, err := crypto.MarshalPublicKey(priv.GetPublic())
	if err != nil {
		return nil, fmt.Errorf("record: sign: marshal public key: %w", err)
	}
	unsigned, err := encodeUnsigned(r.Kind, r.Seq, uint64(r.Expires.Unix()), pub, r.Body)
	if err != nil {
		return nil, err
	}
	sig, err := priv.Sign(signingPayload(key, unsigned))
	if err != nil {
		return nil, fmt.Errorf("record: sign: %w", err)
	}
	out := binary.BigEndian.AppendUint16(unsigned, uint16(len(sig)))
	out = append(out, sig...)
	if len(out) > MaxRecordSize {
		return nil, fmt.Errorf("record: sign: %d bytes: %w", len(out), ErrTooLarge)
	}
	r.Signer = priv.GetPublic()
	r.Signature = sig
	r.Expires = time.Unix(r.Expires.Unix(), 0)
	return out, nil
}

// encodeUnsigned writes every field but the signature:
//
//	"JFR" version(1) kind(1) seq(8) expires(8) len(2) pubkey len(2) body
//
// All integers are big-endian.
func encodeUnsigned(kind Kind, seq, expires uint64, pub, body []byte) ([]byte, error) {
	if len(pub) > maxPubKeySize {
		return nil, fmt.Errorf("record: public key of %d bytes: %w", len(pub), ErrMalformed)
	}
	if len(body) > MaxRecordSize {
		return nil, fmt.Errorf("record: body of %d bytes: %w", len(body), ErrTooLarge)
	}
	out := make([]byte, 0, 4+1+8+8+2+len(pub)+2+len(body)+2+64)
	out = append(out, magic[:]...)
	out = append(out, formatVersion, byte(kind))
	out = binary.BigEndian.AppendUint64(out, seq)
	out = binary.BigEndian.AppendUint64(out, expires)
	out = binary.BigEndian.AppendUint16(out, uint16(len(pub)))
	out = append(out, pub...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(body)))
	out = append(out, body...)
	return out, nil
}

// signingPayload is what the signature covers: the domain string, the key
// with its length, and the encoded record up to the signature.
func signingPayload(key string, unsigned []byte) []byte {
	p := make([]byte, 0, len(signingDomain)+2+len(key)+len(unsigned))
	p = append(p, signingDomain...)
	p = binary.BigEndian.AppendUint16(p, uint16(len(key)))
	p = append(p, key...)
	return append(p, unsigned...)
}

// decoded is a parsed record plus the byte offset where its signature field
// starts, so verification signs exactly the bytes that were received.
type decoded struct {
	Record
	unsigned []byte
}

// Decode parses an encoded record without verifying its signature. It
// checks the size cap first, then the magic and version, every length, the
// signer key type, and that no bytes trail the signature.
func Decode(data []byte) (*Record, error) {
	d, err := decode(data)
	if err != nil {
		return nil, err
	}
	return &d.Record, nil
}

func decode(data []byte) (*decoded, error) {
	if len(data) > MaxRecordSize {
		return nil, fmt.Errorf("record: decode %d bytes: %w", len(data), ErrTooLarge)
	}
	rd := reader{buf: data}
	var head [4]byte
	rd.read(head[:])
	if rd.err == nil && !bytes.Equal(head[:3], magic[:]) {
		return nil, fmt.Errorf("record: decode: bad magic %q: %w", head[:3], ErrMalformed)
	}
	if rd.err == nil && head[3] != formatVersion {
		return nil, fmt.Errorf("record: decode: unknown version %d: %w", head[3], ErrMalformed)
	}
	kind := Kind(rd.byte())
	seq := rd.uint64()
	expires := rd.uint64()
	pub := rd.field(maxPubKeySize)
	body := rd.field(MaxRecordSize)
	end := rd.off
	sig := rd.field(maxSignatureSize)
	if rd.err != nil {
		return nil, fmt.Errorf("record: decode: %w", rd.err)
	}
	if rd.off != len(data) {
		return nil, fmt.Errorf("record: decode: %d trailing bytes: %w", len(data)-rd.off, ErrMalformed)
	}
	if kind == 0 {
		return nil, fmt.Errorf("record: decode: kind 0: %w", ErrUnknownKind)
	}
	if expires == 0 || expires > 1<<62 {
		return nil, fmt.Errorf("record: decode: expiry %d out of range: %w", expires, ErrMalformed)
	}
	signer, err := crypto.UnmarshalPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("record: decode: public key: %v: %w", err, ErrMalformed)
	}
	if signer.Type() != cryptopb.KeyType_Ed25519 {
		return nil, ErrUnsupportedKey
	}
	// Only the canonical key encoding is accepted, so one record has
	// exactly one encoding and Select's byte comparison is meaningful.
	if canon, err := crypto.MarshalPublicKey(signer); err != nil || !bytes.Equal(canon, pub) {
		return nil, fmt.Errorf("record: decode: non-canonical public key: %w", ErrMalformed)
	}
	return &decoded{
		Record: Record{
			Kind:      kind,
			Seq:       seq,
			Expires:   time.Unix(int64(expires), 0),
			Body:      bytes.Clone(body),
			Signer:    signer,
			Signature: bytes.Clone(sig),
		},
		unsigned: data[:end],
	}, nil
}

// Verify checks that data is a well-formed record signed for key. It does
// not check expiry, kind rules or authorisation; Validator does.
func Verify(key string, data []byte) (*Record, error) {
	d, err := decode(data)
	if err != nil {
		return nil, err
	}
	if err := d.verify(key); err != nil {
		return nil, err
	}
	return &d.Record, nil
}

func (d *decoded) verify(key string) error {
	if len(d.Signature) == 0 {
		return ErrUnsigned
	}
	ok, err := d.Signer.Verify(signingPayload(key, d.unsigned), d.Signature)
	if err != nil || !ok {
		return ErrBadSignature
	}
	return nil
}

// reader consumes big-endian fields and remembers the first error.
type reader struct {
	buf []byte
	off int
	err error
}

func (r *reader) read(p []byte) {
	if r.err != nil {
		return
	}
	if len(r.buf)-r.off < len(p) {
		r.err = fmt.Errorf("truncated at byte %d: %w", r.off, ErrMalformed)
		return
	}
	copy(p, r.buf[r.off:])
	r.off += len(p)
}

func (r *reader) byte() byte {
	var b [1]byte
	r.read(b[:])
	return b[0]
}

func (r *reader) uint64() uint64 {
	var b [8]byte
	r.read(b[:])
	return binary.BigEndian.Uint64(b[:])
}

// field reads a uint16 length and that many bytes, refusing lengths over max.
func (r *reader) field(max int) []byte {
	var b [2]byte
	r.read(b[:])
	if r.err != nil {
		return nil
	}
	n := int(binary.BigEndian.Uint16(b[:]))
	if n > max {
		r.err = fmt.Errorf("field of %d bytes at byte %d exceeds %d: %w", n, r.off, max, ErrMalformed)
		return nil
	}
	if len(r.buf)-r.off < n {
		r.err = fmt.Errorf("field truncated at byte %d: %w", r.off, ErrMalformed)
		return nil
	}
	f := r.buf[r.off : r.off+n]
	r.off += n
	return f
}
