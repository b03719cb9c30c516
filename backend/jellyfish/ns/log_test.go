package ns

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// sampleEntries are the entries of the golden version 1 files in testdata,
// written by the JSON encoder of FormatVersion 1.
func sampleEntries() []Entry {
	d1, d2 := DeviceID{1, 2, 3}, DeviceID{0xaa, 0xbb}
	return []Entry{
		{Path: "docs", Dir: true, ModTime: 1700000000000000000, Stamp: Stamp{HLC: 111 << 16, Device: d1}},
		{Path: "docs/a.txt", Size: 5, ModTime: 1700000000123456789, Hash: []byte{9, 8, 7}, Inline: []byte("hello"), Stamp: Stamp{HLC: 112 << 16, Device: d1}, Bases: []Stamp{{HLC: 100 << 16, Device: d2}}},
		{Path: "docs/big.bin", Size: 1 << 40, ModTime: -5, Hash: []byte{1}, Content: []byte{1, 2, 3, 4}, Stamp: Stamp{HLC: 113<<16 | 1, Device: d1}},
		{Path: "old", Deleted: true, Stamp: Stamp{HLC: 114 << 16, Device: d1}, Bases: []Stamp{{HLC: 1, Device: d1}, {HLC: 2, Device: d2}}},
	}
}

func sampleBatch() *Batch {
	return &Batch{Device: DeviceID{1, 2, 3}, Seq: 7, Prev: []byte{1, 0xff, 3}, PrevSeq: 6, Entries: sampleEntries()}
}

func sampleCheckpoint() *Checkpoint {
	return &Checkpoint{Covers: map[DeviceID]uint64{{1, 2, 3}: 7, {0xaa, 0xbb}: 3}, Entries: sampleEntries()}
}

func samplePacks() []Pack {
	return []Pack{
		{ID: PackID{5}, Device: DeviceID{1, 2, 3}, Rev: 1, Size: 1 << 20, Ref: []byte{1, 2}},
		{ID: PackID{6}, Device: DeviceID{1, 2, 3}, Rev: 3, Size: 1000, Ref: []byte{3}, Map: []Extent{{Off: 10, Len: 20}, {Off: 100, Len: 5, At: 20}}},
		{ID: PackID{7}, Device: DeviceID{0xaa}, Rev: 2, Size: 50},
	}
}

// TestDecodeVersion1 reads JSON batches and checkpoints written before
// FormatVersion 2.
func TestDecodeVersion1(t *testing.T) {
	data, err := os.ReadFile("testdata/v1-batch.json")
	if err != nil {
		t.Fatal(err)
	}
	b, err := DecodeBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	want := sampleBatch()
	want.Version = 1
	if !reflect.DeepEqual(b, want) {
		t.Fatalf("version 1 batch:\n got %+v\nwant %+v", b, want)
	}
	data, err = os.ReadFile("testdata/v1-checkpoint.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := DecodeCheckpoint(data)
	if err != nil {
		t.Fatal(err)
	}
	wantCP := sampleCheckpoint()
	wantCP.Version = 1
	if !reflect.DeepEqual(c, wantCP) {
		t.Fatalf("version 1 checkpoint:\n got %+v\nwant %+v", c, wantCP)
	}
	for _, bad := range []string{`{"v":2}`, `{"v":1,"e":[{"p":"../x"}]}`, `{"v":1,"e":[{"p":"a","s":-1}]}`, `{"v":1,"e":[`,
		`{"v":1,"pk":[{"id":"05000000000000000000000000000000","s":-1}]}`,
		`{"v":1,"pk":[{"id":"05000000000000000000000000000000","s":10,"x":[{"o":4611686018427387904,"l":4611686018427387904}]}]}`} {
		if _, err := DecodeBatch([]byte(bad)); !errors.Is(err, ErrFormat) {
			t.Errorf("batch %s: %v", bad, err)
		}
	}
	if _, err := DecodeCheckpoint([]byte(`{"v":1,"covers":{"zz":1}}`)); !errors.Is(err, ErrFormat) {
		t.Errorf("checkpoint with a bad device ID: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	b := sampleBatch()
	b.Packs = samplePacks()
	data, err := EncodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	if b.Version != FormatVersion {
		t.Fatalf("EncodeBatch left version %d", b.Version)
	}
	got, err := DecodeBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, b) {
		t.Fatalf("batch round trip:\n got %+v\nwant %+v", got, b)
	}
	// Byte slices are clipped: appending to one must not overwrite the
	// next field.
	_ = append(got.Entries[1].Inline, 'X')
	if again, err := DecodeBatch(data); err != nil || !reflect.DeepEqual(again, b) {
		t.Fatal("appending to a decoded field changed the encoded batch")
	}

	c := sampleCheckpoint()
	c.Packs = samplePacks()
	data, err = EncodeCheckpoint(c)
	if err != nil {
		t.Fatal(err)
	}
	gotCP, err := DecodeCheckpoint(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotCP, c) {
		t.Fatalf("checkpoint round trip:\n got %+v\nwant %+v", gotCP, c)
	}

	// Empty ones too: no entries, no packs, no covers.
	data, err = EncodeCheckpoint(&Checkpoint{})
	if err != nil {
		t.Fatal(err)
	}
	if gotCP, err = DecodeCheckpoint(data); err != nil || len(gotCP.Covers) != 0 || gotCP.Entries != nil {
		t.Fatalf("empty checkpoint: %+v %v", gotCP, err)
	}
}

// TestBatchLayout pins the byte layout documented in docs/design.md §4.3.
func TestBatchLayout(t *testing.T) {
	b := &Batch{Device: DeviceID{0xd0}, Seq: 300, Prev: []byte{0xee}, PrevSeq: 299,
		Packs: []Pack{{ID: PackID{0xa0}, Device: DeviceID{0xd0}, Rev: 2, Size: 100, Ref: []byte{0xcc}, Map: []Extent{{Off: 1, Len: 2, At: 3}}}},
		Entries: []Entry{{Path: "a/b", Deleted: true, Size: 5, ModTime: -1, Hash: []byte{0xbb}, Inline: []byte("hi"),
			Stamp: Stamp{HLC: 0x0102, Device: DeviceID{0xd0}}, Bases: []Stamp{{HLC: 1, Device: DeviceID{0xd1}}}}}}
	b.Checkpoint = &CheckpointRef{Seq: 290, Root: []byte{0xcf}, Covers: map[DeviceID]Cover{{0xd0}: {Seq: 290, HLC: 0x0100}}}
	b.Collected = 12
	b.Locations = []Location{{Shard: ShardID{0x5a}, Holder: []byte{0x70, 0x71}}}
	want := strings.Join([]string{
		"4a466c62", "03", // "JFlb", version
		"d0000000000000000000000000000000", // device
		"ac02",                             // seq 300
		"01", "ab02", "01ee",               // one earlier batch: 299, its reference
		"01", "a202", "01cf", "01", "d0000000000000000000000000000000", "a202", "0000000000000100", // checkpoint
		"0c",                                                                   // collected 12
		"01",                                                                   // one pack
		"a0000000000000000000000000000000", "d0000000000000000000000000000000", // pack ID, device
		"02", "64", "01cc", "01", "010203", // rev, size, ref, one extent
		"01", "5a00000000000000000000000000000000000000000000000000000000000000", "027071", // one location
		"01",       // one entry
		"03612f62", // path
		"02",       // flags: deleted
		"05", "01", // size 5, modtime -1 (zigzag)
		"01bb", "00", "026869", // hash, no content, inline "hi"
		"0000000000000102", "d0000000000000000000000000000000", // stamp
		"01", "0000000000000001", "d1000000000000000000000000000000", // one base
	}, "")
	data, err := EncodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(data); got != want {
		t.Fatalf("layout changed:\n got %s\nwant %s", got, want)
	}
	c := &Checkpoint{Covers: map[DeviceID]uint64{{0xd1}: 2, {0xd0}: 1}}
	data, err = EncodeCheckpoint(c)
	if err != nil {
		t.Fatal(err)
	}
	wantCP := "4a466370" + "02" + "02" + "d0000000000000000000000000000000" + "01" + "d1000000000000000000000000000000" + "02" + "00" + "00"
	if got := hex.EncodeToString(data); got != wantCP {
		t.Fatalf("checkpoint layout changed:\n got %s\nwant %s", got, wantCP)
	}
}

// TestDecodeMalformed: every malformed input is an ErrFormat error.
func TestDecodeMalformed(t *testing.T) {
	b := sampleBatch()
	b.Packs = samplePacks()
	good, err := EncodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	// Every truncation.
	for n := range len(good) {
		if _, err := DecodeBatch(good[:n]); !errors.Is(err, ErrFormat) {
			t.Fatalf("batch cut to %d of %d bytes: %v", n, len(good), err)
		}
	}
	if _, err := DecodeBatch(append(good[:len(good):len(good)], 0)); err == nil || !strings.Contains(err.Error(), "trailing") {
		t.Fatalf("trailing byte: %v", err)
	}
	cp, err := EncodeCheckpoint(sampleCheckpoint())
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(cp) {
		if _, err := DecodeCheckpoint(cp[:n]); !errors.Is(err, ErrFormat) {
			t.Fatalf("checkpoint cut to %d of %d bytes: %v", n, len(cp), err)
		}
	}
	if _, err := DecodeCheckpoint(append(cp[:len(cp):len(cp)], 0)); err == nil || !strings.Contains(err.Error(), "trailing") {
		t.Fatalf("trailing byte: %v", err)
	}
	// A batch is not a checkpoint and the other way round.
	if _, err := DecodeCheckpoint(good); !errors.Is(err, ErrFormat) {
		t.Fatalf("batch read as a checkpoint: %v", err)
	}
	if _, err := DecodeBatch(cp); !errors.Is(err, ErrFormat) {
		t.Fatalf("checkpoint read as a batch: %v", err)
	}

	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	big := func(n uint64) []byte { return binary.AppendUvarint(nil, n) }
	// head: device, seq 1, prevseq 0, no prev, no packs, then an entry count.
	head := func(entries uint64) []byte {
		return cat([]byte("JFlb\x02"), make([]byte, 16), []byte{1, 0, 0, 0}, big(entries))
	}
	entry := func(path string, flags byte, mid ...byte) []byte {
		// mid: the hash, content and inline lengths (and bytes).
		return cat(big(uint64(len(path))), []byte(path), []byte{flags, 0, 0}, mid, make([]byte, stampSize), []byte{0})
	}
	empty := []byte{0, 0, 0}
	pad := make([]byte, 64) // so that counts fit and the field itself is what fails
	cases := map[string][]byte{
		"empty":             {},
		"bad magic":         []byte("JFxx\x02"),
		"future version":    []byte("JFlb\x03"),
		"version 0":         []byte("JFlb\x00"),
		"huge entry count":  head(1 << 40),
		"count over bytes":  head(1000),
		"unclean path":      cat(head(1), entry("a//b", 0, empty...)),
		"dot path":          cat(head(1), entry("a/./b", 0, empty...)),
		"dotdot path":       cat(head(1), entry("../b", 0, empty...)),
		"leading slash":     cat(head(1), entry("/b", 0, empty...)),
		"trailing slash":    cat(head(1), entry("b/", 0, empty...)),
		"unknown flag":      cat(head(1), entry("b", 4, empty...)),
		"hash too long":     cat(head(1), entry("b", 0, cat(big(maxHash+1), make([]byte, maxHash+3))...)),
		"inline too long":   cat(head(1), entry("b", 0, cat([]byte{0, 0}, big(maxInline+1))...)),
		"inline past end":   cat(head(1), entry("b", 0, 0, 0, 100)),
		"path too long":     cat(head(1), big(maxPath+1), pad),
		"path past end":     cat(head(1), big(40), pad[:35]),
		"overlong varint":   cat(head(1), bytes.Repeat([]byte{0xff}, 11), pad),
		"size out of range": cat(head(1), []byte{1, 'b', 0}, big(1<<63), pad),
		"too many bases":    cat(head(1), entry("b", 0, empty...)[:len(entry("b", 0, empty...))-1], big(maxBases+1), pad),
		"bases past end":    cat(head(1), entry("b", 0, empty...)[:len(entry("b", 0, empty...))-1], []byte{3}),
	}
	packs := cat([]byte("JFlb\x02"), make([]byte, 16), []byte{1, 0, 0}) // then the pack count
	onePack := cat(packs, []byte{1}, make([]byte, 32))                  // then rev, size, ref, extents
	cases["huge pack count"] = cat(packs, big(1<<30), pad)
	cases["pack count over bytes"] = cat(packs, big(100), pad)
	cases["pack size out of range"] = cat(onePack, []byte{1}, big(maxOffset+1), pad)
	cases["extent out of range"] = cat(onePack, []byte{1, 10, 0, 1}, big(maxOffset+1), []byte{1, 0}, pad)
	cases["overlapping extents"] = cat(onePack, []byte{1, 10, 0, 2, 0, 5, 0, 2, 5, 5}, []byte{0})
	cases["extent count over bytes"] = cat(onePack, []byte{1, 10, 0, 100})
	for name, data := range cases {
		_, err := DecodeBatch(data)
		if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	// Sanity: the helpers build valid batches.
	if _, err := DecodeBatch(cat(head(1), entry("a/b", 1, empty...))); err != nil {
		t.Fatalf("valid hand-built batch: %v", err)
	}
	if _, err := DecodeBatch(cat(onePack, []byte{1, 10, 0, 2, 0, 5, 0, 6, 4, 5}, []byte{0})); err != nil {
		t.Fatalf("valid hand-built pack: %v", err)
	}

	cpHead := []byte("JFcp\x02\x02") // then two covers
	dev := func(b byte) []byte { return bytes.Repeat([]byte{b}, 16) }
	for name, data := range map[string][]byte{
		"covers unsorted":  cat(cpHead, dev(2), []byte{1}, dev(1), []byte{1, 0, 0}),
		"covers repeated":  cat(cpHead, dev(2), []byte{1}, dev(2), []byte{1, 0, 0}),
		"huge cover count": cat([]byte("JFcp\x02"), big(1<<20), pad),
	} {
		_, err := DecodeCheckpoint(data)
		if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	if _, err := DecodeCheckpoint(cat(cpHead, dev(1), []byte{1}, dev(2), []byte{1, 0, 0})); err != nil {
		t.Fatalf("valid hand-built checkpoint: %v", err)
	}
}

// TestEncodeRefuses: the encoder refuses what the decoder would refuse.
func TestEncodeRefuses(t *testing.T) {
	for name, e := range map[string]Entry{
		"unclean path":  {Path: "a/../b"},
		"negative size": {Path: "a", Size: -1},
		"long path":     {Path: strings.Repeat("a", maxPath+1)},
		"long hash":     {Path: "a", Hash: make([]byte, maxHash+1)},
		"long inline":   {Path: "a", Inline: make([]byte, maxInline+1)},
		"many bases":    {Path: "a", Bases: make([]Stamp, maxBases+1)},
	} {
		if _, err := EncodeBatch(&Batch{Entries: []Entry{e}}); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := EncodeCheckpoint(&Checkpoint{Packs: []Pack{{Size: -1}}}); !errors.Is(err, ErrFormat) {
		t.Errorf("bad pack: %v", err)
	}
}

func TestIsClean(t *testing.T) {
	for _, p := range []string{"", "a", "a/b", "/", "//", "a/", "/a", "a//b", ".", "..", "a/.", "a/..", "./a", "../a", "a/./b", "a/../b", "...", "a/.../b", ".a", "a.", "a/.b/c"} {
		if got, want := isClean(p), Clean(p) == p; got != want {
			t.Errorf("isClean(%q) = %v, want %v", p, got, want)
		}
	}
}

// FuzzDecodeBatch: decoding never panics; what decodes encodes again to
// something that decodes to the same batch.
func FuzzDecodeBatch(f *testing.F) {
	b := sampleBatch()
	b.Packs = samplePacks()
	if data, err := EncodeBatch(b); err == nil {
		f.Add(data)
	}
	if data, err := os.ReadFile("testdata/v1-batch.json"); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBatch(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error without ErrFormat: %v", err)
			}
			return
		}
		for i := range b.Packs {
			b.Packs[i].Locate(0, 1)
		}
		again, err := EncodeBatch(b)
		if err != nil {
			t.Fatalf("decoded batch does not encode: %v", err)
		}
		b2, err := DecodeBatch(again)
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		if !reflect.DeepEqual(normBatch(b), normBatch(b2)) {
			t.Fatalf("round trip changed the batch")
		}
	})
}

// FuzzDecodeCheckpoint is FuzzDecodeBatch for checkpoints.
func FuzzDecodeCheckpoint(f *testing.F) {
	c := sampleCheckpoint()
	c.Packs = samplePacks()
	if data, err := EncodeCheckpoint(c); err == nil {
		f.Add(data)
	}
	if data, err := os.ReadFile("testdata/v1-checkpoint.json"); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCheckpoint(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error without ErrFormat: %v", err)
			}
			return
		}
		again, err := EncodeCheckpoint(c)
		if err != nil {
			t.Fatalf("decoded checkpoint does not encode: %v", err)
		}
		c2, err := DecodeCheckpoint(again)
		if err != nil {
			t.Fatalf("re-encoded checkpoint does not decode: %v", err)
		}
		c.Version, c2.Version = 0, 0
		if !reflect.DeepEqual(normEntries(c.Entries), normEntries(c2.Entries)) || !reflect.DeepEqual(normPacks(c.Packs), normPacks(c2.Packs)) ||
			len(c.Covers) != len(c2.Covers) {
			t.Fatalf("round trip changed the checkpoint")
		}
		for d, s := range c.Covers {
			if c2.Covers[d] != s {
				t.Fatalf("round trip changed covers")
			}
		}
	})
}

// normBatch makes empty and nil slices compare equal (JSON decodes "" as
// an empty slice, the binary decoder as nil).
func normBatch(b *Batch) *Batch {
	c := *b
	c.Version = 0
	c.Prev = normBytes(c.Prev)
	c.Entries = normEntries(c.Entries)
	c.Packs = normPacks(c.Packs)
	return &c
}

func normBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func normEntries(es []Entry) []Entry {
	if len(es) == 0 {
		return nil
	}
	out := make([]Entry, len(es))
	for i, e := range es {
		e.Hash, e.Content, e.Inline = normBytes(e.Hash), normBytes(e.Content), normBytes(e.Inline)
		if len(e.Bases) == 0 {
			e.Bases = nil
		}
		out[i] = e
	}
	return out
}

func normPacks(ps []Pack) []Pack {
	if len(ps) == 0 {
		return nil
	}
	out := make([]Pack, len(ps))
	for i, p := range ps {
		p.Ref = normBytes(p.Ref)
		if len(p.Map) == 0 {
			p.Map = nil
		}
		out[i] = p
	}
	return out
}

// benchBatch is the batch of the small-file benchmark (make bench-small):
// 2,000 new files of 4 KiB inline in 20 folders.
func benchBatch() *Batch {
	b := &Batch{Device: DeviceID{1}, Seq: 1}
	inline := bytes.Repeat([]byte{0x5a}, 4096)
	for i := range 20 {
		b.Entries = append(b.Entries, Entry{Path: "small/folder-" + string(rune('a'+i)), Dir: true, Stamp: Stamp{HLC: uint64(i), Device: DeviceID{1}}})
	}
	for i := range 2000 {
		b.Entries = append(b.Entries, Entry{
			Path: "small/folder-" + string(rune('a'+i%20)) + "/file-" + hex.EncodeToString([]byte{byte(i >> 8), byte(i)}) + ".bin",
			Size: 4096, ModTime: 1700000000123456789 + int64(i), Hash: bytes.Repeat([]byte{byte(i)}, 32), Inline: inline,
			Stamp: Stamp{HLC: uint64(100 + i), Device: DeviceID{1}},
		})
	}
	return b
}

func BenchmarkDecodeBatch(b *testing.B) {
	batch := benchBatch()
	v2, err := EncodeBatch(batch)
	if err != nil {
		b.Fatal(err)
	}
	v1, err := encodeJSON(batch)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		data []byte
	}{{"v1-json", v1}, {"v2", v2}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeBatch(c.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeBatch(b *testing.B) {
	batch := benchBatch()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeBatch(batch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApplyBatch(b *testing.B) {
	batch := benchBatch()
	b.ReportAllocs()
	for b.Loop() {
		t := NewTree()
		for _, e := range batch.Entries {
			t.Apply(e)
		}
	}
}

// encodeJSON encodes b as FormatVersion 1 did.
func encodeJSON(b *Batch) ([]byte, error) {
	c := *b
	c.Version = formatJSON
	return json.Marshal(&c)
}

// TestDecodeVersion2 reads a batch and a flat checkpoint written by the
// version 2 encoder (before batches became version 3 and checkpoints
// trees).
func TestDecodeVersion2(t *testing.T) {
	data, err := os.ReadFile("testdata/v2-batch.bin")
	if err != nil {
		t.Fatal(err)
	}
	b, err := DecodeBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	want := sampleBatch()
	want.Packs = samplePacks()
	want.Version = 2
	if !reflect.DeepEqual(b, want) {
		t.Fatalf("version 2 batch:\n got %+v\nwant %+v", b, want)
	}
	data, err = os.ReadFile("testdata/v2-checkpoint.bin")
	if err != nil {
		t.Fatal(err)
	}
	c, err := DecodeCheckpoint(data)
	if err != nil {
		t.Fatal(err)
	}
	wantCP := sampleCheckpoint()
	wantCP.Packs = samplePacks()
	wantCP.Version = 2
	if !reflect.DeepEqual(c, wantCP) {
		t.Fatalf("version 2 checkpoint:\n got %+v\nwant %+v", c, wantCP)
	}
}
