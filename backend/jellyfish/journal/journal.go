// Package journal keeps a device's changes on local disk from the moment
// rclone is told a write succeeded until they are stored on the network.
//
// A change is appended to the journal and fsynced before Put (or Mkdir,
// Remove, Move…) returns. A flush rotates the journal (later changes go to
// a new segment file) and, once the changes it took are stored and the
// device's head published, drops the segments it covered. Whatever a
// process leaves behind — killed, interrupted, or unable to reach the
// network at exit — is read back by the next process of the account on the
// machine, which writes it again.
//
// A journal is a folder of segment files, numbered upwards:
//
//	<segment, 16 hex digits>.jnl:
//	  "JFjn" | version u8 (1) | segment u64 | device [16] | key check [8] | record*
//	record:
//	  length u32 | nonce [12] | AES-256-GCM(key, nonce, payload,
//	      ad = "JFjr" | segment u64 | offset of the length field u64)
//	payload:
//	  data count uvarint | { pack ID [16] | offset uvarint | length uvarint | bytes } |
//	  entries (ns.EncodeEntries)
//
// The key check is the first 8 bytes of SHA-256("jellyfish/journal/v1/key-check\0" ‖ key):
// a journal of another account (same user name, another network) is
// recognised and left alone. The additional data binds each record to its place, so records cannot be
// reordered, moved between segments or spliced in from another file. A
// record is the unit of durability: reading stops at the first record of a
// segment that is cut short or does not open (a crash mid-append; that
// write was never acknowledged).
package journal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
)

// KeySize is the size of a journal key.
const KeySize = 32

const (
	version    = 1
	headerSize = 4 + 1 + 8 + 16 + 8
	suffix     = ".jnl"
	// maxRecord bounds one record: a packed file is at most 16 MiB and a
	// record holds one commit's entries.
	maxRecord = 1 << 30
)

var (
	fileMagic   = []byte("JFjn")
	recordMagic = []byte("JFjr")
)

// ErrFormat is wrapped by errors about a journal that does not parse.
var ErrFormat = errors.New("journal: malformed journal")

// Data is the bytes of a packed file, at their place in their pack.
type Data struct {
	Pack  ns.PackID
	Off   int64
	Bytes []byte
}

// Record is one acknowledged change: the entries it committed and the bytes
// of the packed files among them.
type Record struct {
	Segment uint64
	Entries []ns.Entry
	Data    []Data
}

// Journal is the open journal of one device slot. Its methods are safe for
// concurrent use; only one process may open a journal folder at a time (the
// device slot's lock).
type Journal struct {
	dir    string
	aead   cipher.AEAD
	check  []byte
	device ns.DeviceID

	mu   sync.Mutex // guards the fields below
	f    *os.File
	seg  uint64
	off  int64 // end of the last record written
	err  error // sticky write error: the segment is not trusted after it
	done int64 // bytes of the current segment known durable
	// closedErr holds, per segment left by Rotate, the error of its last
	// sync (absent when it succeeded).
	closedErr map[uint64]error

	syncMu sync.Mutex // one fsync at a time
}

// Open opens (creating it if needed) the journal in dir, whose records are
// sealed under key, for device. It returns the records of the segments
// already there, oldest first; those segments stay until DropThrough. New
// records go to a fresh segment.
func Open(dir string, key []byte, device ns.DeviceID) (*Journal, []Record, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	recs, last, err := read(dir, aead, keyCheck(key), &device)
	if err != nil {
		return nil, nil, err
	}
	j := &Journal{dir: dir, aead: aead, check: keyCheck(key), device: device}
	if err := j.startSegment(last + 1); err != nil {
		return nil, nil, err
	}
	return j, recs, nil
}

// Read returns the records of the journal in dir without opening it for
// writing, and the device that wrote it (zero if it has no segment).
func Read(dir string, key []byte) (ns.DeviceID, []Record, error) {
	var dev ns.DeviceID
	aead, err := newAEAD(key)
	if err != nil {
		return dev, nil, err
	}
	recs, _, err := read(dir, aead, keyCheck(key), &dev)
	return dev, recs, err
}

// ErrWrongKey: the journal was written under another key (another account).
var ErrWrongKey = errors.New("journal: written under another account's key")

func keyCheck(key []byte) []byte {
	h := sha256.New()
	h.Write([]byte("jellyfish/journal/v1/key-check\x00"))
	h.Write(key)
	return h.Sum(nil)[:8]
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("journal: key of %d bytes", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// segments returns the segment numbers in dir, ascending.
func segments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var out []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), suffix)
		if !ok || len(name) != 16 {
			continue
		}
		n, err := strconv.ParseUint(name, 16, 64)
		if err != nil {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

func segName(dir string, seg uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%016x%s", seg, suffix))
}

// read returns every readable record in dir and the highest segment number
// (0 if none). If *device is zero it is set from the first segment;
// otherwise a segment of another device is an error.
func read(dir string, aead cipher.AEAD, check []byte, device *ns.DeviceID) ([]Record, uint64, error) {
	segs, err := segments(dir)
	if err != nil {
		return nil, 0, err
	}
	var recs []Record
	var last uint64
	for _, seg := range segs {
		last = seg
		b, err := os.ReadFile(segName(dir, seg))
		if err != nil {
			return nil, 0, fmt.Errorf("journal: %w", err)
		}
		if len(b) < headerSize {
			continue // created, never written: a crash at the start of a segment
		}
		if !bytes.Equal(b[:4], fileMagic) || b[4] != version || binary.BigEndian.Uint64(b[5:]) != seg {
			return nil, 0, fmt.Errorf("%w: segment %x has a bad header", ErrFormat, seg)
		}
		if !bytes.Equal(b[29:headerSize], check) {
			return nil, 0, fmt.Errorf("%w: segment %x", ErrWrongKey, seg)
		}
		var dev ns.DeviceID
		copy(dev[:], b[13:29])
		if *device == (ns.DeviceID{}) {
			*device = dev
		} else if dev != *device {
			return nil, 0, fmt.Errorf("%w: segment %x belongs to device %s, not %s", ErrFormat, seg, dev, *device)
		}
		for off := headerSize; off < len(b); {
			rec, n, st := openRecord(aead, seg, b, off)
			if st == torn {
				break // the rest was never acknowledged
			}
			if st == damaged {
				return recs, last, fmt.Errorf("%w: segment %x: record at byte %d is whole but does not open (damaged, or another account's)", ErrDamaged, seg, off)
			}
			recs = append(recs, rec)
			off += n
		}
	}
	return recs, last, nil
}

// ErrDamaged: a journal holds a whole record that does not open with the
// key: it was damaged on disk, or it is another account's. The records
// before it are returned with it.
var ErrDamaged = errors.New("journal: damaged record")

type status int

const (
	good    status = iota
	torn           // cut short: a crash during its append, never acknowledged
	damaged        // whole, but does not open
)

// openRecord opens the record at off of segment seg's bytes b and returns
// it and its length. A record cut short (or whose length field is garbage,
// which a torn write can leave) is torn; a whole one that does not open or
// parse is damaged.
func openRecord(aead cipher.AEAD, seg uint64, b []byte, off int) (Record, int, status) {
	if len(b)-off < 4 {
		return Record{}, 0, torn
	}
	n := int(binary.BigEndian.Uint32(b[off:]))
	nsz := aead.NonceSize()
	if n < nsz+aead.Overhead() || n > len(b)-off-4 {
		return Record{}, 0, torn
	}
	sealed := b[off+4 : off+4+n]
	pt, err := aead.Open(nil, sealed[:nsz], sealed[nsz:], recordAD(seg, int64(off)))
	if err != nil {
		if off+4+n == len(b) {
			// The last record: its tail may not have reached the disk.
			return Record{}, 0, torn
		}
		return Record{}, 0, damaged
	}
	rec, err := decodePayload(pt)
	if err != nil {
		return Record{}, 0, damaged
	}
	rec.Segment = seg
	return rec, 4 + n, good
}

func recordAD(seg uint64, off int64) []byte {
	ad := append([]byte(nil), recordMagic...)
	ad = binary.BigEndian.AppendUint64(ad, seg)
	return binary.BigEndian.AppendUint64(ad, uint64(off))
}

// payloadSize is about the encoded size of a payload.
func payloadSize(es []ns.Entry, data []Data) int {
	n := binary.MaxVarintLen64
	for _, d := range data {
		n += len(d.Pack) + 2*binary.MaxVarintLen64 + len(d.Bytes)
	}
	for i := range es {
		n += 64 + len(es[i].Path) + len(es[i].Hash) + len(es[i].Content) + len(es[i].Inline) + 24*len(es[i].Bases)
	}
	return n
}

// encodePayload appends the payload of es and data to b.
func encodePayload(b []byte, es []ns.Entry, data []Data) ([]byte, error) {
	b = binary.AppendUvarint(b, uint64(len(data)))
	for _, d := range data {
		b = append(b, d.Pack[:]...)
		b = binary.AppendUvarint(b, uint64(d.Off))
		b = binary.AppendUvarint(b, uint64(len(d.Bytes)))
		b = append(b, d.Bytes...)
	}
	return ns.AppendEntries(b, es)
}

func decodePayload(b []byte) (Record, error) {
	var rec Record
	nd, k := binary.Uvarint(b)
	if k <= 0 || nd > uint64(len(b)) {
		return rec, fmt.Errorf("%w: data count", ErrFormat)
	}
	b = b[k:]
	for range nd {
		var d Data
		if len(b) < len(d.Pack) {
			return rec, fmt.Errorf("%w: data truncated", ErrFormat)
		}
		copy(d.Pack[:], b)
		b = b[len(d.Pack):]
		off, k := binary.Uvarint(b)
		if k <= 0 || off > 1<<61 {
			return rec, fmt.Errorf("%w: data offset", ErrFormat)
		}
		b = b[k:]
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return rec, fmt.Errorf("%w: data length", ErrFormat)
		}
		d.Off, d.Bytes = int64(off), b[k:k+int(l)]
		b = b[k+int(l):]
		rec.Data = append(rec.Data, d)
	}
	es, err := ns.DecodeEntries(b)
	if err != nil {
		return rec, err
	}
	rec.Entries = es
	return rec, nil
}

// startSegment creates segment seg and makes it current. The caller holds
// j.mu (or is Open).
func (j *Journal) startSegment(seg uint64) error {
	f, err := os.OpenFile(segName(j.dir, seg), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	hdr := append([]byte(nil), fileMagic...)
	hdr = append(hdr, version)
	hdr = binary.BigEndian.AppendUint64(hdr, seg)
	hdr = append(hdr, j.device[:]...)
	hdr = append(hdr, j.check...)
	if _, err := f.Write(hdr); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("journal: %w", err)
	}
	// The header reaches the disk with the first record's fsync; the new
	// name must be durable before a record in it is acknowledged.
	if err := syncDir(j.dir); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	j.f, j.seg, j.off, j.done, j.err = f, seg, int64(len(hdr)), 0, nil
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("journal: sync %s: %w", dir, err)
	}
	return nil
}

// Append writes one record holding entries and the bytes of the packed
// files among them, and returns once it is on disk (fsynced). Concurrent
// appends share fsyncs.
func (j *Journal) Append(es []ns.Entry, data []Data) error {
	t, err := j.Write(es, data)
	if err != nil {
		return err
	}
	return j.Sync(t)
}

// Ticket says how far a segment must be synced for a record to be durable.
type Ticket struct {
	f   *os.File
	seg uint64
	end int64
}

// Write writes one record without waiting for the disk: it is durable once
// Sync of its ticket returns. Records are read back in the order Write
// wrote them.
func (j *Journal) Write(es []ns.Entry, data []Data) (Ticket, error) {
	// The payload is encoded after room for the length and nonce and
	// sealed in place: one buffer per record.
	hdr := 4 + j.aead.NonceSize()
	rec, err := encodePayload(make([]byte, hdr, hdr+payloadSize(es, data)+j.aead.Overhead()), es, data)
	if err != nil {
		return Ticket{}, err
	}
	if _, err := rand.Read(rec[4:hdr]); err != nil {
		return Ticket{}, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return Ticket{}, j.err
	}
	if j.f == nil {
		return Ticket{}, errors.New("journal: closed")
	}
	rec = j.aead.Seal(rec[:hdr], rec[4:hdr], rec[hdr:], recordAD(j.seg, j.off))
	if len(rec)-4 > maxRecord {
		return Ticket{}, fmt.Errorf("journal: record of %d bytes exceeds %d", len(rec)-4, maxRecord)
	}
	binary.BigEndian.PutUint32(rec, uint32(len(rec)-4))
	if _, err := j.f.Write(rec); err != nil {
		// A partly written record ends the segment for readers; nothing
		// after it may be acknowledged in this segment.
		j.err = fmt.Errorf("journal: write: %w", err)
		return Ticket{}, j.err
	}
	j.off += int64(len(rec))
	return Ticket{j.f, j.seg, j.off}, nil
}

// Sync returns once the record of t is on disk.
func (j *Journal) Sync(t Ticket) error {
	return j.syncTo(t.f, t.seg, t.end)
}

// syncTo returns once segment seg is durable up to end.
func (j *Journal) syncTo(f *os.File, seg uint64, end int64) error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	if j.seg != seg {
		// Rotated meanwhile: Rotate synced the segment before leaving it.
		err := j.closedErr[seg]
		j.mu.Unlock()
		return err
	}
	if j.done >= end {
		j.mu.Unlock()
		return nil
	}
	target := j.off // everything written so far rides on this sync
	j.mu.Unlock()
	if err := datasync(f); err != nil {
		j.mu.Lock()
		if j.seg == seg {
			j.err = fmt.Errorf("journal: sync: %w", err)
		}
		j.mu.Unlock()
		return fmt.Errorf("journal: sync: %w", err)
	}
	j.mu.Lock()
	if j.seg == seg && target > j.done {
		j.done = target
	}
	j.mu.Unlock()
	return nil
}

// Rotate closes the current segment (synced) and starts the next one. It
// returns the number of the segment it closed: every record appended
// before Rotate is in it or in an earlier one.
func (j *Journal) Rotate() (uint64, error) {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return 0, errors.New("journal: closed")
	}
	old := j.seg
	err := j.err
	if serr := datasync(j.f); serr != nil && err == nil {
		err = fmt.Errorf("journal: sync: %w", serr)
	}
	if err != nil {
		if j.closedErr == nil {
			j.closedErr = map[uint64]error{}
		}
		j.closedErr[old] = err
	}
	j.f.Close()
	j.f = nil
	if serr := j.startSegment(old + 1); serr != nil {
		return old, errors.Join(err, serr)
	}
	return old, err
}

// DropThrough removes the segments numbered up to seg: their changes are
// on the network.
func (j *Journal) DropThrough(seg uint64) error {
	return DropThrough(j.dir, seg)
}

// DropThrough removes the segments of the journal in dir numbered up to
// seg.
func DropThrough(dir string, seg uint64) error {
	segs, err := segments(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range segs {
		if s > seg {
			break
		}
		if err := os.Remove(segName(dir, s)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return syncDir(dir)
	}
	return errors.Join(errs...)
}

// Segment returns the number of the current segment.
func (j *Journal) Segment() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.seg
}

// Size returns the bytes of every segment file in dir.
func Size(dir string) (int64, error) {
	segs, err := segments(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, s := range segs {
		if fi, err := os.Stat(segName(dir, s)); err == nil {
			n += fi.Size()
		}
	}
	return n, nil
}

// Close syncs and closes the current segment; an empty one is removed.
// The other segments stay on disk.
func (j *Journal) Close() error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Sync()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	j.f = nil
	if err == nil && j.off == headerSize {
		err = os.Remove(segName(j.dir, j.seg))
	}
	return err
}
