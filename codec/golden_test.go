package codec

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// The golden files pin format version 1: a decoder must always read them,
// and the encoder must keep producing the same bytes for stored segments.
// Regenerate (only for a new format version!) with
//
//	go test ./codec -run TestGolden -args -update-golden
var updateGolden = flag.Bool("update-golden", false, "rewrite codec/testdata/golden")

const goldenDir = "testdata/golden/v1"

func goldenInput() []byte {
	var b bytes.Buffer
	b.Write(randomBytes(100, testSeg))
	// A compressible middle segment, so the zstd mode is pinned too.
	for b.Len() < 2*testSeg {
		fmt.Fprintf(&b, "segment %d of the Jellyfish golden vector; ", b.Len())
	}
	b.Truncate(2 * testSeg)
	b.Write(randomBytes(101, 808))
	return b.Bytes()
}

func goldenEncode(t *testing.T) *encoded {
	enc, err := NewEncoder(Params{K: 2, M: 1, SegmentSize: testSeg, Compression: CompressZstd})
	if err != nil {
		t.Fatal(err)
	}
	salt := bytes.Repeat([]byte{0x5a}, SaltSize)
	enc.rand = bytes.NewReader(salt)
	var out encoded
	l, err := enc.Encode(context.Background(), bytes.NewReader(goldenInput()), testKey(0x11), func(s *Segment) error {
		ss := make([][]byte, len(s.Shards))
		for i := range s.Shards {
			ss[i] = s.Shards[i].Bytes()
		}
		out.shards = append(out.shards, ss)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out.layout = l
	return &out
}

func goldenShardPath(seg, i int) string {
	return filepath.Join(goldenDir, fmt.Sprintf("shard-%d-%d.bin", seg, i))
}

func TestGolden(t *testing.T) {
	fresh := goldenEncode(t)
	if *updateGolden {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		b, _ := fresh.layout.MarshalBinary()
		if err := os.WriteFile(filepath.Join(goldenDir, "layout.bin"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		for seg, ss := range fresh.shards {
			for i, s := range ss {
				if err := os.WriteFile(goldenShardPath(seg, i), s, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	lb, err := os.ReadFile(filepath.Join(goldenDir, "layout.bin"))
	if err != nil {
		t.Fatal(err)
	}
	var l Layout
	if err := l.UnmarshalBinary(lb); err != nil {
		t.Fatalf("golden layout no longer parses: %v", err)
	}
	golden := &encoded{layout: &l}
	for seg := range l.Segments {
		var ss [][]byte
		for i := range l.Total() {
			b, err := os.ReadFile(goldenShardPath(seg, i))
			if err != nil {
				t.Fatal(err)
			}
			ss = append(ss, b)
		}
		golden.shards = append(golden.shards, ss)
	}
	// Old data stays readable, from any k of the shards.
	got, err := decodeAll(t, golden, testKey(0x11), golden.fetcher(func(seg int, s [][]byte) [][]byte { return s[1:] }, nil), 0, -1)
	if err != nil || !bytes.Equal(got, goldenInput()) {
		t.Fatalf("golden vector no longer decodes: %v", err)
	}
	// The encoder still writes the same bytes. The zstd segment's bytes
	// may change with the compression library without breaking the format,
	// so only its round trip above is required.
	fb, _ := fresh.layout.MarshalBinary()
	if l.Size != fresh.layout.Size || !bytes.Equal(lb[:layoutFixed], fb[:layoutFixed]) {
		t.Fatal("layout header differs from the golden vector")
	}
	for _, seg := range []int{0, 2} {
		for i := range l.Total() {
			if !bytes.Equal(fresh.shards[seg][i], golden.shards[seg][i]) {
				t.Fatalf("segment %d shard %d differs from the golden vector", seg, i)
			}
		}
		if fresh.layout.Segments[seg].IDs[0] != l.Segments[seg].IDs[0] {
			t.Fatalf("segment %d IDs differ from the golden vector", seg)
		}
	}
	// Known answers: BLAKE3 of the empty input (the BLAKE3 test vectors),
	// and the nonce layout.
	if got := IDOf(nil).String(); got != "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262" {
		t.Fatalf("BLAKE3(\"\") = %s", got)
	}
	if n := segmentNonce(0x0102030405060708, true); n != [12]byte{0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1} {
		t.Fatalf("nonce layout changed: %x", n)
	}
}
