package ns

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// FormatVersion is the version of the batches this package writes.
// Versions 1 (JSON) and 2 are still read; see docs/design.md §4.3.
const FormatVersion = 3

// flatVersion is the version of the flat checkpoints (the whole tree in one
// object) written before checkpoints became trees; they are still read.
const flatVersion = 2

// formatJSON is the version of the JSON batches and checkpoints written
// before FormatVersion 2.
const formatJSON = 1

// ErrFormat is wrapped by every error about a malformed or unsupported batch
// or checkpoint.
var ErrFormat = errors.New("ns: malformed log data")

// Batch is one flushed group of a device's writes: the unit of its log.
// Batches of a device are numbered from 1 and chained by Prev (an opaque
// reference to the previous batch's stored object), so a reader can walk a
// device's log back from its head to its last checkpoint.
type Batch struct {
	// Version is the format the batch was decoded from (EncodeBatch sets
	// it to FormatVersion).
	Version int      `json:"v"`
	Device  DeviceID `json:"dev"`
	Seq     uint64   `json:"seq"`
	// Prev and PrevSeq are the previous batch of the device (versions 1
	// and 2; in version 3 they mirror Prevs[0]), so a reader can walk a
	// device's log back and stop without reading further.
	Prev    []byte  `json:"prev,omitempty"`
	PrevSeq uint64  `json:"prevseq,omitempty"`
	Entries []Entry `json:"e"`
	// Packs are the pack records this batch creates or replaces (see Pack).
	Packs []Pack `json:"pk,omitempty"`

	// Version 3 only:

	// Prevs are earlier batches of the device, newest first, with no
	// gaps: at least the previous one, and every one since the device's
	// checkpoint up to maxPrevs, so a reader fetches them at once. Empty
	// for a device's first batch (or the first after its log was lost).
	Prevs []BatchRef `json:"-"`
	// Checkpoint is the device's latest checkpoint, if it has one.
	Checkpoint *CheckpointRef `json:"-"`
	// Collected: the device's batches up to this sequence number were
	// deleted; walks never go below it.
	Collected uint64 `json:"-"`
	// Locations are holders of shards recorded since the shards were
	// stored (by repair), beside those their object reference names.
	Locations []Location `json:"-"`
}

// BatchRef names one stored batch of a device.
type BatchRef struct {
	Seq uint64
	Ref []byte
}

// CheckpointRef names a checkpoint: a tree of the namespace (Root, the
// reference of its root node) holding every batch of every device up to
// Covers, this device's up to Seq.
type CheckpointRef struct {
	Seq    uint64
	Root   []byte
	Covers map[DeviceID]Cover
}

// Cover is how far a checkpoint holds one device's log: every batch up to
// Seq, whose newest stamp is HLC.
type Cover struct {
	Seq, HLC uint64
}

// Covered returns, per device, the newest stamp the checkpoint holds.
func (c *CheckpointRef) Covered() Covered {
	out := make(Covered, len(c.Covers))
	for d, cv := range c.Covers {
		out[d] = cv.HLC
	}
	return out
}

// Location records that Holder (a peer ID's bytes) holds shard Shard.
type Location struct {
	Shard  ShardID
	Holder []byte
}

// maxPrevs bounds the earlier batches a batch names.
const maxPrevs = 64

// Checkpoint is a whole namespace as one object: every entry (tombstones
// included) and, per device, the last batch it covers.
type Checkpoint struct {
	Version int                 `json:"v"`
	Covers  map[DeviceID]uint64 `json:"covers"` // version 1: device ID hex → batch seq
	Entries []Entry             `json:"e"`
	// Packs are the pack records of the namespace (see Pack).
	Packs []Pack `json:"pk,omitempty"`
}

// Hard limits of the format. A decoder refuses anything beyond them before
// allocating for it, and an encoder refuses to write what would be refused.
const (
	// maxEncoded bounds a whole batch or checkpoint.
	maxEncoded = 1 << 30
	// maxEntries bounds the entries of one batch or checkpoint.
	maxEntries = 1 << 24
	// maxPath bounds an entry's path in bytes.
	maxPath = 1 << 16
	// maxHash bounds an entry's hash (BLAKE3 is 32 bytes).
	maxHash = 64
	// maxInline bounds an entry's inline bytes (the backend stores at most
	// 256 KiB inline).
	maxInline = 1 << 20
	// maxRef bounds an object reference (Prev, Content). A reference lists
	// every shard of its object, so a very large file has a large one.
	maxRef = maxEncoded
	// maxBases bounds the stamps an entry replaces.
	maxBases = 1 << 12
	// maxCovers bounds the devices a checkpoint covers.
	maxCovers = 1 << 16
	// maxPacks bounds the pack records of one batch or checkpoint.
	maxPacks = 1 << 20
	// maxExtents bounds the extents of one pack record.
	maxExtents = 1 << 20
	// maxOffset bounds pack sizes and extent offsets and lengths, so their
	// sums cannot overflow.
	maxOffset = 1 << 61
)

// Magic numbers of version 2 and later. A version 1 (JSON) batch or
// checkpoint starts with '{' instead.
var (
	batchMagic      = [4]byte{'J', 'F', 'l', 'b'}
	checkpointMagic = [4]byte{'J', 'F', 'c', 'p'}
)

const (
	flagDir     = 1 << 0
	flagDeleted = 1 << 1
	knownFlags  = flagDir | flagDeleted
)

// Smallest encodings, used to refuse counts the remaining bytes cannot hold
// before allocating for them.
const (
	stampSize    = 8 + len(DeviceID{})
	minEntrySize = 1 + 1 + 1 + 1 + 1 + 1 + 1 + stampSize + 1 // empty lengths, flags, size, modtime, stamp, no bases
	coverSize    = len(DeviceID{}) + 1
	minPackSize  = len(PackID{}) + len(DeviceID{}) + 1 + 1 + 1 + 1 // rev, size, empty ref, no extents
	minExtent    = 3
)

// EncodeBatch encodes b in the current format (version 3) and sets
// b.Version:
//
//	"JFlb" | version u8 (3) | device [16] | seq uv |
//	prev count uv | { seq uv | reference bytes }* (newest first, no gaps) |
//	checkpoint flag u8 | [ seq uv | root bytes | cover count uv |
//	    { device [16] | seq uv | HLC u64 }* (devices ascending) ] |
//	collected uv | pack count uv | pack* |
//	location count uv | { shard [32] | holder bytes }* | entry count uv | entry*
func EncodeBatch(b *Batch) ([]byte, error) {
	if len(b.Entries) > maxEntries {
		return nil, fmt.Errorf("%w: batch of %d entries exceeds %d", ErrFormat, len(b.Entries), maxEntries)
	}
	if len(b.Prevs) == 0 && len(b.Prev) > 0 {
		// A batch built (or decoded from version 1 or 2) with Prev alone.
		b.Prevs = []BatchRef{{Seq: b.PrevSeq, Ref: b.Prev}}
	}
	if len(b.Prevs) > maxPrevs || len(b.Locations) > maxPacks {
		return nil, fmt.Errorf("%w: batch names %d earlier batches and %d locations", ErrFormat, len(b.Prevs), len(b.Locations))
	}
	for i, p := range b.Prevs {
		if p.Seq >= b.Seq || (i > 0 && p.Seq != b.Prevs[i-1].Seq-1) || len(p.Ref) == 0 || len(p.Ref) > maxRef {
			return nil, fmt.Errorf("%w: batch %d names batch %d out of order", ErrFormat, b.Seq, p.Seq)
		}
	}
	b.Version = FormatVersion
	if len(b.Prevs) > 0 {
		b.Prev, b.PrevSeq = b.Prevs[0].Ref, b.Prevs[0].Seq
	} else {
		b.Prev, b.PrevSeq = nil, 0
	}
	n := 64 + packsSize(b.Packs) + entriesSize(b.Entries) + len(b.Locations)*(len(ShardID{})+maxPeerID+2)
	for _, p := range b.Prevs {
		n += 2*binary.MaxVarintLen64 + len(p.Ref)
	}
	if c := b.Checkpoint; c != nil {
		n += 2*binary.MaxVarintLen64 + len(c.Root) + len(c.Covers)*(len(DeviceID{})+binary.MaxVarintLen64+8)
	}
	out := make([]byte, 0, n)
	out = append(out, batchMagic[:]...)
	out = append(out, FormatVersion)
	out = append(out, b.Device[:]...)
	out = binary.AppendUvarint(out, b.Seq)
	out = binary.AppendUvarint(out, uint64(len(b.Prevs)))
	for _, p := range b.Prevs {
		out = binary.AppendUvarint(out, p.Seq)
		out = appendBytes(out, p.Ref)
	}
	if c := b.Checkpoint; c == nil {
		out = append(out, 0)
	} else {
		if len(c.Covers) > maxCovers || len(c.Root) == 0 || len(c.Root) > maxRef {
			return nil, fmt.Errorf("%w: checkpoint reference of %d bytes covering %d devices", ErrFormat, len(c.Root), len(c.Covers))
		}
		out = append(out, 1)
		out = binary.AppendUvarint(out, c.Seq)
		out = appendBytes(out, c.Root)
		out = binary.AppendUvarint(out, uint64(len(c.Covers)))
		for _, d := range sortedDevices(c.Covers) {
			out = append(out, d[:]...)
			out = binary.AppendUvarint(out, c.Covers[d].Seq)
			out = binary.BigEndian.AppendUint64(out, c.Covers[d].HLC)
		}
	}
	out = binary.AppendUvarint(out, b.Collected)
	out, err := appendPacks(out, b.Packs)
	if err != nil {
		return nil, err
	}
	out = binary.AppendUvarint(out, uint64(len(b.Locations)))
	for _, l := range b.Locations {
		if len(l.Holder) == 0 || len(l.Holder) > maxPeerID {
			return nil, fmt.Errorf("%w: location holder of %d bytes", ErrFormat, len(l.Holder))
		}
		out = append(out, l.Shard[:]...)
		out = appendBytes(out, l.Holder)
	}
	out, err = appendEntries(out, b.Entries)
	if err != nil {
		return nil, err
	}
	if len(out) > maxEncoded {
		return nil, fmt.Errorf("%w: batch of %d bytes exceeds %d", ErrFormat, len(out), maxEncoded)
	}
	return out, nil
}

// sortedDevices returns the keys of m in ascending order.
func sortedDevices[V any](m map[DeviceID]V) []DeviceID {
	devs := make([]DeviceID, 0, len(m))
	for d := range m {
		devs = append(devs, d)
	}
	slices.SortFunc(devs, func(a, b DeviceID) int { return cmp.Compare(string(a[:]), string(b[:])) })
	return devs
}

// minLocation is the smallest encoded location.
const minLocation = len(ShardID{}) + 2

// DecodeBatch decodes and checks a batch of any supported version. The byte
// slices of the result (Prev, and each entry's Hash, Content and Inline)
// share data's memory: the caller must not modify data afterwards.
func DecodeBatch(data []byte) (*Batch, error) {
	if len(data) > maxEncoded {
		return nil, fmt.Errorf("%w: batch of %d bytes", ErrFormat, len(data))
	}
	if isJSON(data) {
		return decodeBatchJSON(data)
	}
	r := reader{b: data, what: "batch"}
	v := r.header(batchMagic, flatVersion, FormatVersion)
	var b Batch
	b.Version = v
	r.fixed(b.Device[:])
	b.Seq = r.uvarint()
	if v == flatVersion {
		b.PrevSeq = r.uvarint()
		b.Prev = r.blob(maxRef, "reference")
		if r.err == nil && len(b.Prev) > 0 && b.PrevSeq >= b.Seq {
			r.fail("previous batch %d is not before %d", b.PrevSeq, b.Seq)
		}
		b.Packs = r.packs()
		b.Entries = r.entries()
		if err := r.done(); err != nil {
			return nil, err
		}
		return &b, nil
	}
	np := r.count(maxPrevs, 2, "earlier batches")
	for i := range np {
		p := BatchRef{Seq: r.uvarint(), Ref: r.blob(maxRef, "reference")}
		if r.err == nil && (p.Seq >= b.Seq || (i > 0 && p.Seq != b.Prevs[i-1].Seq-1) || len(p.Ref) == 0) {
			r.fail("earlier batch %d out of order", p.Seq)
		}
		b.Prevs = append(b.Prevs, p)
	}
	if len(b.Prevs) > 0 {
		b.Prev, b.PrevSeq = b.Prevs[0].Ref, b.Prevs[0].Seq
	}
	switch flag := r.u8(); {
	case r.err != nil:
	case flag == 1:
		c := &CheckpointRef{Seq: r.uvarint(), Root: r.blob(maxRef, "checkpoint root")}
		if r.err == nil && len(c.Root) == 0 {
			r.fail("empty checkpoint root")
		}
		n := r.count(maxCovers, len(DeviceID{})+1+8, "covered devices")
		c.Covers = make(map[DeviceID]Cover, n)
		var last DeviceID
		for i := range n {
			var d DeviceID
			r.fixed(d[:])
			cv := Cover{Seq: r.uvarint()}
			if r.err == nil && len(r.b)-r.off < 8 {
				r.fail("truncated")
			}
			if r.err != nil {
				return nil, r.err
			}
			cv.HLC = binary.BigEndian.Uint64(r.b[r.off:])
			r.off += 8
			if i > 0 && bytes.Compare(last[:], d[:]) >= 0 {
				r.fail("covered devices not in ascending order")
			}
			c.Covers[d], last = cv, d
		}
		b.Checkpoint = c
	case flag != 0:
		r.fail("checkpoint flag %d", flag)
	}
	b.Collected = r.uvarint()
	b.Packs = r.packs()
	nl := r.count(maxPacks, minLocation, "locations")
	for range nl {
		var l Location
		r.fixed(l.Shard[:])
		l.Holder = r.blob(maxPeerID, "holder")
		if r.err == nil && len(l.Holder) == 0 {
			r.fail("empty location holder")
		}
		b.Locations = append(b.Locations, l)
	}
	b.Entries = r.entries()
	if err := r.done(); err != nil {
		return nil, err
	}
	return &b, nil
}

// EncodeCheckpoint encodes c in the current format and sets c.Version.
func EncodeCheckpoint(c *Checkpoint) ([]byte, error) {
	if len(c.Covers) > maxCovers {
		return nil, fmt.Errorf("%w: checkpoint covers %d devices, more than %d", ErrFormat, len(c.Covers), maxCovers)
	}
	if len(c.Entries) > maxEntries {
		return nil, fmt.Errorf("%w: checkpoint of %d entries exceeds %d", ErrFormat, len(c.Entries), maxEntries)
	}
	c.Version = flatVersion
	devs := sortCovers(c.Covers)
	out := make([]byte, 0, 64+len(devs)*(coverSize+8)+packsSize(c.Packs)+entriesSize(c.Entries))
	out = append(out, checkpointMagic[:]...)
	out = append(out, flatVersion)
	out = binary.AppendUvarint(out, uint64(len(devs)))
	for _, d := range devs {
		out = append(out, d[:]...)
		out = binary.AppendUvarint(out, c.Covers[d])
	}
	out, err := appendBody(out, c.Packs, c.Entries)
	if err != nil {
		return nil, err
	}
	if len(out) > maxEncoded {
		return nil, fmt.Errorf("%w: checkpoint of %d bytes exceeds %d", ErrFormat, len(out), maxEncoded)
	}
	return out, nil
}

// DecodeCheckpoint decodes and checks a checkpoint of any supported
// version. The entries' byte slices share data's memory: the caller must
// not modify data afterwards.
func DecodeCheckpoint(data []byte) (*Checkpoint, error) {
	if len(data) > maxEncoded {
		return nil, fmt.Errorf("%w: checkpoint of %d bytes", ErrFormat, len(data))
	}
	if isJSON(data) {
		return decodeCheckpointJSON(data)
	}
	r := reader{b: data, what: "checkpoint"}
	r.header(checkpointMagic, flatVersion, flatVersion)
	c := Checkpoint{Version: flatVersion}
	n := r.count(maxCovers, coverSize, "covered devices")
	c.Covers = make(map[DeviceID]uint64, n)
	var last DeviceID
	for i := range n {
		var d DeviceID
		r.fixed(d[:])
		seq := r.uvarint()
		if r.err == nil && i > 0 && bytes.Compare(last[:], d[:]) >= 0 {
			r.fail("covered devices not in ascending order")
		}
		if r.err != nil {
			return nil, r.err
		}
		c.Covers[d], last = seq, d
	}
	c.Packs = r.packs()
	c.Entries = r.entries()
	if err := r.done(); err != nil {
		return nil, err
	}
	return &c, nil
}

// isJSON reports whether data is a version 1 (JSON) batch or checkpoint.
func isJSON(data []byte) bool {
	data = bytes.TrimLeft(data, " \t\r\n")
	return len(data) > 0 && data[0] == '{'
}

func decodeBatchJSON(data []byte) (*Batch, error) {
	var b Batch
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("%w: batch: %v", ErrFormat, err)
	}
	if b.Version != formatJSON {
		return nil, fmt.Errorf("%w: JSON batch version %d not supported", ErrFormat, b.Version)
	}
	if err := checkEntries(b.Entries, b.Packs); err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	return &b, nil
}

func decodeCheckpointJSON(data []byte) (*Checkpoint, error) {
	var c Checkpoint
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%w: checkpoint: %v", ErrFormat, err)
	}
	if c.Version != formatJSON {
		return nil, fmt.Errorf("%w: JSON checkpoint version %d not supported", ErrFormat, c.Version)
	}
	if err := checkEntries(c.Entries, c.Packs); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if c.Covers == nil {
		c.Covers = map[DeviceID]uint64{}
	}
	return &c, nil
}

// checkEntries applies to version 1 entries and packs the checks the
// version 2 decoder makes as it goes.
func checkEntries(es []Entry, ps []Pack) error {
	for i := range ps {
		if err := checkPackRecord(&ps[i]); err != nil {
			return err
		}
	}
	for i := range es {
		if err := checkEntry(&es[i]); err != nil {
			return err
		}
	}
	return nil
}

// CheckEntry reports whether e can be encoded in a batch, and why not.
func CheckEntry(e *Entry) error { return checkEntry(e) }

// checkEntry checks e against the limits of the format.
func checkEntry(e *Entry) error {
	switch {
	case len(e.Path) > maxPath:
		return fmt.Errorf("%w: entry path of %d bytes exceeds %d", ErrFormat, len(e.Path), maxPath)
	case !isClean(e.Path):
		return fmt.Errorf("%w: entry path %q is not clean", ErrFormat, e.Path)
	case e.Size < 0:
		return fmt.Errorf("%w: entry %q has size %d", ErrFormat, e.Path, e.Size)
	case len(e.Hash) > maxHash:
		return fmt.Errorf("%w: entry %q has a hash of %d bytes", ErrFormat, e.Path, len(e.Hash))
	case len(e.Content) > maxRef:
		return fmt.Errorf("%w: entry %q has a reference of %d bytes", ErrFormat, e.Path, len(e.Content))
	case len(e.Inline) > maxInline:
		return fmt.Errorf("%w: entry %q has %d inline bytes, more than %d", ErrFormat, e.Path, len(e.Inline), maxInline)
	case len(e.Bases) > maxBases:
		return fmt.Errorf("%w: entry %q has %d bases, more than %d", ErrFormat, e.Path, len(e.Bases), maxBases)
	}
	return nil
}

// isClean reports whether Clean(p) == p without allocating: no empty, "."
// or ".." elements and no leading or trailing slash.
func isClean(p string) bool {
	if p == "" {
		return true
	}
	start := 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		switch p[start:i] {
		case "", ".", "..":
			return false
		}
		start = i + 1
	}
	return true
}

// entriesSize is an upper bound of the encoded size of es.
func entriesSize(es []Entry) int {
	n := binary.MaxVarintLen64
	for i := range es {
		e := &es[i]
		n += 5*binary.MaxVarintLen64 + 1 + len(e.Path) + len(e.Hash) + len(e.Content) + len(e.Inline) +
			stampSize + binary.MaxVarintLen64 + len(e.Bases)*stampSize
	}
	return n
}

func appendBytes(out, b []byte) []byte {
	out = binary.AppendUvarint(out, uint64(len(b)))
	return append(out, b...)
}

func appendStamp(out []byte, s Stamp) []byte {
	out = binary.BigEndian.AppendUint64(out, s.HLC)
	return append(out, s.Device[:]...)
}

// checkPackRecord checks p against the limits of the format and the
// invariants of packs.
func checkPackRecord(p *Pack) error {
	if p.Size > maxOffset || len(p.Ref) > maxRef || len(p.Map) > maxExtents {
		return fmt.Errorf("%w: pack %s out of the format's range", ErrFormat, p.ID)
	}
	for _, x := range p.Map {
		if x.Off < 0 || x.Off > maxOffset || x.Len > maxOffset || x.At < 0 || x.At > maxOffset {
			return fmt.Errorf("%w: pack %s has an extent out of range", ErrFormat, p.ID)
		}
	}
	if err := checkPack(p); err != nil {
		return fmt.Errorf("%w: %v", ErrFormat, err)
	}
	return nil
}

// packsSize is an upper bound of the encoded size of ps.
func packsSize(ps []Pack) int {
	n := binary.MaxVarintLen64
	for i := range ps {
		n += len(PackID{}) + len(DeviceID{}) + 4*binary.MaxVarintLen64 + len(ps[i].Ref) + len(ps[i].Map)*3*binary.MaxVarintLen64
	}
	return n
}

// appendBody appends the pack records and the entries, refusing anything
// the decoder would refuse.
func appendBody(out []byte, ps []Pack, es []Entry) ([]byte, error) {
	out, err := appendPacks(out, ps)
	if err != nil {
		return nil, err
	}
	return appendEntries(out, es)
}

// appendPacks appends the pack count and the pack records.
func appendPacks(out []byte, ps []Pack) ([]byte, error) {
	if len(ps) > maxPacks {
		return nil, fmt.Errorf("%w: %d pack records exceed %d", ErrFormat, len(ps), maxPacks)
	}
	out = binary.AppendUvarint(out, uint64(len(ps)))
	for i := range ps {
		var err error
		if out, err = appendPack(append(out, ps[i].ID[:]...), &ps[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// appendPack appends a pack record without its ID:
// device [16] | revision uv | size uv | reference bytes | extents.
func appendPack(out []byte, p *Pack) ([]byte, error) {
	if err := checkPackRecord(p); err != nil {
		return nil, err
	}
	out = append(out, p.Device[:]...)
	out = binary.AppendUvarint(out, p.Rev)
	out = binary.AppendUvarint(out, uint64(p.Size))
	out = appendBytes(out, p.Ref)
	out = binary.AppendUvarint(out, uint64(len(p.Map)))
	for _, x := range p.Map {
		out = binary.AppendUvarint(out, uint64(x.Off))
		out = binary.AppendUvarint(out, uint64(x.Len))
		out = binary.AppendUvarint(out, uint64(x.At))
	}
	return out, nil
}

// appendEntries appends the entry count and es, refusing any entry the
// decoder would refuse.
func appendEntries(out []byte, es []Entry) ([]byte, error) {
	out = binary.AppendUvarint(out, uint64(len(es)))
	for i := range es {
		e := &es[i]
		if err := checkEntry(e); err != nil {
			return nil, err
		}
		out = binary.AppendUvarint(out, uint64(len(e.Path)))
		out = append(out, e.Path...)
		out = appendEntryBody(out, e)
	}
	return out, nil
}

// appendEntryBody appends everything of an entry but its path:
// flags u8 | size uv | modtime sv | hash bytes | content bytes |
// inline bytes | stamp | base count uv | stamp*.
func appendEntryBody(out []byte, e *Entry) []byte {
	var flags byte
	if e.Dir {
		flags |= flagDir
	}
	if e.Deleted {
		flags |= flagDeleted
	}
	out = append(out, flags)
	out = binary.AppendUvarint(out, uint64(e.Size))
	out = binary.AppendVarint(out, e.ModTime)
	out = appendBytes(out, e.Hash)
	out = appendBytes(out, e.Content)
	out = appendBytes(out, e.Inline)
	out = appendStamp(out, e.Stamp)
	out = binary.AppendUvarint(out, uint64(len(e.Bases)))
	for _, s := range e.Bases {
		out = appendStamp(out, s)
	}
	return out
}

// reader decodes version 2 data. The first error sticks: later reads
// return zero values, and done reports it.
type reader struct {
	b    []byte
	off  int
	what string // "batch" or "checkpoint"
	err  error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at byte %d: %s", ErrFormat, r.what, r.off, fmt.Sprintf(format, args...))
	}
}

// header reads the magic and a version in [lo, hi] and returns the version.
func (r *reader) header(magic [4]byte, lo, hi int) int {
	if len(r.b) < len(magic)+1 || !bytes.Equal(r.b[:len(magic)], magic[:]) {
		r.fail("no %s header", r.what)
		return 0
	}
	v := int(r.b[len(magic)])
	if v < lo || v > hi {
		r.fail("version %d not supported", v)
		return 0
	}
	r.off = len(magic) + 1
	return v
}

func (r *reader) fixed(dst []byte) {
	if r.err != nil {
		return
	}
	if len(r.b)-r.off < len(dst) {
		r.fail("truncated")
		return
	}
	r.off += copy(dst, r.b[r.off:])
}

func (r *reader) u8() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("truncated")
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		if n == 0 {
			r.fail("truncated")
		} else {
			r.fail("varint overflows 64 bits")
		}
		return 0
	}
	r.off += n
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		if n == 0 {
			r.fail("truncated")
		} else {
			r.fail("varint overflows 64 bits")
		}
		return 0
	}
	r.off += n
	return v
}

// length reads a length of at most limit that the remaining bytes hold.
func (r *reader) length(limit int, what string) int {
	v := r.uvarint()
	if r.err != nil {
		return 0
	}
	if v > uint64(limit) {
		r.fail("%s of %d bytes exceeds %d", what, v, limit)
		return 0
	}
	if v > uint64(len(r.b)-r.off) {
		r.fail("%s of %d bytes truncated", what, v)
		return 0
	}
	return int(v)
}

// blob reads a length-prefixed byte string as a sub-slice of the input
// (capacity clipped, so an append never writes into the next field), or
// nil if it is empty.
func (r *reader) blob(limit int, what string) []byte {
	n := r.length(limit, what)
	if r.err != nil || n == 0 {
		return nil
	}
	b := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return b
}

// count reads a count of at most limit items of at least minSize bytes
// each that the remaining bytes could hold.
func (r *reader) count(limit, minSize int, what string) int {
	v := r.uvarint()
	if r.err != nil {
		return 0
	}
	if v > uint64(limit) {
		r.fail("%d %s exceed %d", v, what, limit)
		return 0
	}
	if v > uint64((len(r.b)-r.off)/minSize) {
		r.fail("%d %s cannot fit in %d bytes", v, what, len(r.b)-r.off)
		return 0
	}
	return int(v)
}

func (r *reader) stamp() Stamp {
	var s Stamp
	if r.err != nil {
		return s
	}
	if len(r.b)-r.off < stampSize {
		r.fail("truncated")
		return s
	}
	s.HLC = binary.BigEndian.Uint64(r.b[r.off:])
	copy(s.Device[:], r.b[r.off+8:])
	r.off += stampSize
	return s
}

// int63 reads a uvarint that must fit an int64.
func (r *reader) int63(what string) int64 { return r.upTo(1<<63-1, what) }

// upTo reads a uvarint of at most limit.
func (r *reader) upTo(limit uint64, what string) int64 {
	v := r.uvarint()
	if v > limit {
		r.fail("%s %d out of range", what, v)
		return 0
	}
	return int64(v)
}

// packs reads the pack count and the pack records.
func (r *reader) packs() []Pack {
	n := r.count(maxPacks, minPackSize, "pack records")
	if r.err != nil || n == 0 {
		return nil
	}
	ps := make([]Pack, n)
	for i := range ps {
		r.fixed(ps[i].ID[:])
		r.pack(&ps[i])
		if r.err != nil {
			return nil
		}
	}
	return ps
}

// pack reads a pack record without its ID into p.
func (r *reader) pack(p *Pack) {
	r.fixed(p.Device[:])
	p.Rev = r.uvarint()
	p.Size = r.upTo(maxOffset, "pack size")
	p.Ref = r.blob(maxRef, "pack reference")
	nx := r.count(maxExtents, minExtent, "extents")
	if r.err != nil {
		return
	}
	if nx > 0 {
		p.Map = make([]Extent, nx)
		for j := range p.Map {
			x := &p.Map[j]
			x.Off, x.Len, x.At = r.upTo(maxOffset, "extent offset"), r.upTo(maxOffset, "extent length"), r.upTo(maxOffset, "extent position")
		}
	}
	if r.err != nil {
		return
	}
	if err := checkPack(p); err != nil {
		r.fail("pack record %s: %v", p.ID, err)
	}
}

// entries reads the entry count and the entries. The bases of all entries
// share one allocation.
func (r *reader) entries() []Entry {
	n := r.count(maxEntries, minEntrySize, "entries")
	if r.err != nil || n == 0 {
		return nil
	}
	es := make([]Entry, n)
	var bases []Stamp
	for i := range es {
		e := &es[i]
		pl := r.length(maxPath, "path")
		if r.err != nil {
			return nil
		}
		e.Path = string(r.b[r.off : r.off+pl])
		r.off += pl
		if !isClean(e.Path) {
			r.fail("entry %d: path %q is not clean", i, e.Path)
			return nil
		}
		bases = r.entryBody(e, bases, n-i)
		if r.err != nil {
			return nil
		}
	}
	return es
}

// entryBody reads everything of an entry but its path into e. Its bases are
// appended to bases (grown for up to hint more entries at a time, so most
// entries share an allocation), which it returns.
func (r *reader) entryBody(e *Entry, bases []Stamp, hint int) []Stamp {
	flags := r.u8()
	if flags&^knownFlags != 0 {
		r.fail("entry %q: unknown flags %#x", e.Path, flags)
		return bases
	}
	e.Dir, e.Deleted = flags&flagDir != 0, flags&flagDeleted != 0
	e.Size = r.int63("size")
	e.ModTime = r.varint()
	e.Hash = r.blob(maxHash, "hash")
	e.Content = r.blob(maxRef, "reference")
	e.Inline = r.blob(maxInline, "inline data")
	e.Stamp = r.stamp()
	nb := r.count(maxBases, stampSize, "bases")
	if r.err != nil || nb == 0 {
		return bases
	}
	if cap(bases)-len(bases) < nb {
		// Most entries have one base: room for one per entry left, a
		// bounded number at a time.
		bases = make([]Stamp, 0, max(nb, min(hint, 1024)))
	}
	start := len(bases)
	for range nb {
		bases = append(bases, r.stamp())
	}
	e.Bases = bases[start:len(bases):len(bases)]
	return bases
}

// done reports the first error, or trailing bytes.
func (r *reader) done() error {
	if r.err == nil && r.off != len(r.b) {
		r.fail("%d trailing bytes", len(r.b)-r.off)
	}
	return r.err
}

// sortCovers returns the devices of covers in ascending order.
func sortCovers(covers map[DeviceID]uint64) []DeviceID {
	devs := make([]DeviceID, 0, len(covers))
	for d := range covers {
		devs = append(devs, d)
	}
	slices.SortFunc(devs, func(a, b DeviceID) int { return cmp.Compare(string(a[:]), string(b[:])) })
	return devs
}

// EncodeEntries encodes es alone (a count and the entries, as inside a
// batch), refusing any entry the decoder would refuse.
func EncodeEntries(es []Entry) ([]byte, error) {
	return appendEntries(make([]byte, 0, entriesSize(es)), es)
}

// AppendEntries appends what EncodeEntries encodes to b.
func AppendEntries(b []byte, es []Entry) ([]byte, error) { return appendEntries(b, es) }

// DecodeEntries decodes what EncodeEntries wrote. The entries' byte slices
// share data's memory.
func DecodeEntries(data []byte) ([]Entry, error) {
	r := reader{b: data, what: "entries"}
	es := r.entries()
	if err := r.done(); err != nil {
		return nil, err
	}
	return es, nil
}
