package codec

import (
	"bytes"
	"errors"
	"testing"
)

// Fuzz targets for everything the codec parses. Seeds are in
// testdata/fuzz/<target>; `make fuzz` runs each briefly.

func FuzzParseHeader(f *testing.F) {
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error not ErrFormat: %v", err)
			}
			return
		}
		var again [HeaderSize]byte
		h.put(again[:])
		if !bytes.Equal(again[:], b[:HeaderSize]) {
			t.Fatal("header does not re-encode to its bytes")
		}
	})
}

func FuzzLayout(f *testing.F) {
	f.Add([]byte("JFly"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var l Layout
		if err := l.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error not ErrFormat: %v", err)
			}
			return
		}
		again, err := l.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("layout does not re-encode to its bytes: %v", err)
		}
	})
}

// FuzzDecodeSegment feeds arbitrary bytes as shards of a real file: the
// decoder may refuse them, but must never panic or return wrong plaintext.
func FuzzDecodeSegment(f *testing.F) {
	f.Add([]byte{}, []byte{}, uint8(0))
	e := fuzzFile(f)
	d, err := NewDecoder(e.layout, testKey(1))
	if err != nil {
		f.Fatal(err)
	}
	plain := goldenInput()
	f.Fuzz(func(t *testing.T, a, b []byte, pick uint8) {
		seg := int(pick) % len(e.layout.Segments)
		// Two hostile shards and one good one: k=2 can only succeed if a
		// hostile shard is really a shard of this segment.
		shards := [][]byte{a, b, e.shards[seg][int(pick>>4)%4]}
		got, err := d.DecodeSegment(nil, seg, shards)
		if err != nil {
			return
		}
		want := plain[seg*testSeg : seg*testSeg+e.layout.PlainLen(seg)]
		if !bytes.Equal(got, want) {
			t.Fatal("decoded wrong plaintext from hostile shards")
		}
	})
}

// FuzzDecompress feeds arbitrary segment payloads (mode byte first).
func FuzzDecompress(f *testing.F) {
	c, _ := newCompressor(CompressZstd)
	g, _ := newCompressor(CompressGzip)
	text := bytes.Repeat([]byte("jellyfish "), 100)
	f.Add(c.compress(nil, text), uint16(len(text)))
	f.Add(g.compress(nil, text), uint16(len(text)))
	d, err := newDecompressor()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte, want uint16) {
		out, err := d.decompress(nil, payload, int(want))
		if err == nil && len(out) != int(want) {
			t.Fatalf("decompressed %d bytes, want %d", len(out), want)
		}
	})
}

// FuzzVerifyRange feeds arbitrary proofs for a real shard ID.
func FuzzVerifyRange(f *testing.F) {
	shard := randomBytes(5, 3*LeafSize+100)
	tree, id := Tree(shard)
	start, end := LeafSpan(LeafSize+5, 10, int64(len(shard)))
	proof, err := Prove(tree, shard[start:end], LeafSize+5, 10)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(proof, int64(LeafSize+5), int64(10))
	f.Fuzz(func(t *testing.T, proof []byte, off, n int64) {
		if off < 0 || n <= 0 || off+n > int64(len(shard)) || off+n < 0 {
			return
		}
		got, err := VerifyRange(id, proof, off, n)
		if err == nil && !bytes.Equal(got, shard[off:off+n]) {
			t.Fatal("proof verified for bytes that are not the shard's")
		}
	})
}

// fuzzFile is the file FuzzDecodeSegment attacks, encoded with a fixed salt
// so the committed seeds hold real shards of it.
func fuzzFile(tb testing.TB) *encoded {
	return encodeWith(tb, Params{K: 2, M: 2, SegmentSize: testSeg, Compression: CompressZstd}, testKey(1),
		bytes.NewReader(goldenInput()), bytes.Repeat([]byte{7}, SaltSize))
}
