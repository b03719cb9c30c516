package codec

import (
	"bytes"
	"context"
	"crypto/cipher"
	"fmt"
	"io"
	"testing"

	"github.com/zeebo/blake3"
)

// The codec benchmarks. `make bench-codec` runs them with -cpu 1,2 and
// feeds the output to codec/internal/benchsum, which prints one summary
// line per case: the codec's throughput beside the bound set by its parts.
//
// Every benchmark reports MB/s of plaintext input, so a part's figure is
// directly comparable: BenchmarkParts hashes (k+m)/k times the input's
// processed bytes per op but counts only the input.

const benchStream = 32 << 20 // bytes per encode or decode op

var benchCodes = []struct{ k, m int }{{10, 20}, {10, 10}, {4, 4}}

var benchData = map[string][]byte{}

func benchInput(b *testing.B, kind string) []byte {
	if d, ok := benchData[kind]; ok {
		return d
	}
	var d []byte
	switch kind {
	case "random":
		d = randomBytes(42, benchStream)
	case "text":
		d = textBytes(b, benchStream)
	}
	benchData[kind] = d
	return d
}

func benchParams(k, m int) Params {
	return Params{K: k, M: m, SegmentSize: DefaultSegmentSize, Compression: CompressZstd}
}

func BenchmarkCodec(b *testing.B) {
	for _, op := range []string{"encode", "decode"} {
		for _, c := range benchCodes {
			for _, kind := range []string{"random", "text"} {
				name := fmt.Sprintf("op=%s/k=%d/m=%d/data=%s", op, c.k, c.m, kind)
				b.Run(name, func(b *testing.B) {
					data := benchInput(b, kind)
					p := benchParams(c.k, c.m)
					if op == "encode" {
						benchEncode(b, p, data)
					} else {
						benchDecode(b, p, data)
					}
				})
			}
		}
	}
}

func benchEncode(b *testing.B, p Params, data []byte) {
	enc, err := NewEncoder(p)
	if err != nil {
		b.Fatal(err)
	}
	key := testKey(1)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var stored int64
	for b.Loop() {
		stored = 0
		_, err := enc.Encode(context.Background(), bytes.NewReader(data), key, func(s *Segment) error {
			stored += int64(s.CipherLen)
			s.Release()
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(stored)/float64(len(data)), "cipher/plain")
}

func benchDecode(b *testing.B, p Params, data []byte) {
	key := testKey(1)
	e := encodeAll(b, p, key, bytes.NewReader(data))
	// The worst case: the first m shards (data shards first) are missing,
	// so as much as possible must be rebuilt.
	missing := min(p.M, p.Total()-p.K)
	f := e.fetcher(func(seg int, s [][]byte) [][]byte { return s[missing:] }, nil)
	d, err := NewDecoder(e.layout, key)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := d.NewReader(context.Background(), f, 0, -1)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, r)
		r.Close()
		if err != nil || n != int64(len(data)) {
			b.Fatalf("decoded %d bytes: %v", n, err)
		}
	}
}

// BenchmarkParts measures each necessary part of the pipeline alone, on one
// segment of the same data with the codec's parameters, in parallel across
// the available cores as the codec runs segments.
func BenchmarkParts(b *testing.B) {
	for _, op := range []string{"encode", "decode"} {
		for _, c := range benchCodes {
			for _, kind := range []string{"random", "text"} {
				for _, part := range partsOf(op, kind) {
					name := fmt.Sprintf("op=%s/k=%d/m=%d/data=%s/part=%s", op, c.k, c.m, kind, part)
					b.Run(name, func(b *testing.B) {
						benchPart(b, op, part, benchParams(c.k, c.m), benchInput(b, kind))
					})
				}
			}
		}
	}
}

func partsOf(op, kind string) []string {
	if op == "encode" {
		parts := []string{"check"}
		if kind == "text" {
			parts = append(parts, "compress")
		}
		return append(parts, "aes", "hash", "rs")
	}
	parts := []string{"hash", "rs", "aes"}
	if kind == "text" {
		parts = append(parts, "decompress")
	}
	return parts
}

// partFixture is one segment prepared up to the point where a part starts.
type partFixture struct {
	plain, payload, sealed []byte
	shards                 [][]byte // payloads, k+m
	shardLen               int
}

func newPartFixture(b *testing.B, p Params, data []byte) *partFixture {
	comp, err := newCompressor(p.Compression)
	if err != nil {
		b.Fatal(err)
	}
	f := &partFixture{plain: data}
	f.payload = comp.compress(nil, f.plain)
	aead := benchAEAD(b)
	nonce := segmentNonce(0, false)
	f.sealed = aead.Seal(nil, nonce[:], f.payload, []byte(segmentAAD))
	f.shardLen = (len(f.sealed) + p.K - 1) / p.K
	f.shards = make([][]byte, p.Total())
	padded := append(bytes.Clone(f.sealed), make([]byte, p.K*f.shardLen-len(f.sealed))...)
	for i := range p.Total() {
		if i < p.K {
			f.shards[i] = padded[i*f.shardLen : (i+1)*f.shardLen]
		} else {
			f.shards[i] = make([]byte, f.shardLen)
		}
	}
	rs, _ := newRS(p.K, p.M)
	if rs != nil {
		if err := rs.Encode(f.shards); err != nil {
			b.Fatal(err)
		}
	}
	return f
}

func benchAEAD(b *testing.B) cipher.AEAD {
	var salt [SaltSize]byte
	aead, err := newSegmentAEAD(testKey(1), salt)
	if err != nil {
		b.Fatal(err)
	}
	return aead
}

func benchPart(b *testing.B, op, part string, p Params, data []byte) {
	// One op is the part's work on every segment of the stream, as the
	// codec meets them, so both see the same bytes.
	var fixtures []*partFixture
	var payload, maxShard, maxSealed int
	for off := 0; off < len(data); off += p.SegmentSize {
		f := newPartFixture(b, p, data[off:min(len(data), off+p.SegmentSize)])
		fixtures = append(fixtures, f)
		payload += len(f.payload)
		maxShard, maxSealed = max(maxShard, f.shardLen), max(maxSealed, len(f.sealed))
	}
	aead := benchAEAD(b)
	rs, _ := newRS(p.K, p.M)
	missing := min(p.M, p.Total()-p.K)
	b.SetBytes(int64(len(data)))
	b.ReportMetric(float64(payload)/float64(len(data)), "payload/plain")
	b.RunParallel(func(pb *testing.PB) {
		var comp *compressor
		var dec *decompressor
		switch part {
		case "compress":
			comp, _ = newCompressor(p.Compression)
		case "decompress":
			dec, _ = newDecompressor()
		}
		h := blake3.New()
		buf := make([]byte, 0, maxSealed+64)
		head := make([]byte, HeaderSize)
		shards := make([][]byte, p.Total())
		work := make([][]byte, p.Total())
		for i := range work {
			work[i] = make([]byte, maxShard)
		}
		var id ShardID
		nonce := segmentNonce(0, false)
		for pb.Next() {
			for _, f := range fixtures {
				for i := range work {
					work[i] = work[i][:f.shardLen]
				}
				switch part {
				case "check":
					_ = compressible(f.plain)
				case "compress":
					buf = comp.compress(buf[:0], f.plain)
				case "aes":
					if op == "encode" {
						buf = aead.Seal(buf[:0], nonce[:], f.payload, []byte(segmentAAD))
					} else {
						buf = append(buf[:0], f.sealed...)
						if _, err := aead.Open(buf[:0], nonce[:], buf, []byte(segmentAAD)); err != nil {
							panic(err)
						}
					}
				case "hash":
					n := p.Total()
					if op == "decode" {
						n = p.K // decoding hashes only the k shards it uses
					}
					for i := range n {
						h.Reset()
						h.Write(head)
						h.Write(f.shards[i])
						h.Sum(id[:0])
					}
				case "rs":
					if rs == nil {
						continue
					}
					if op == "encode" {
						for i := range work {
							if i < p.K {
								shards[i] = f.shards[i]
							} else {
								shards[i] = work[i]
							}
						}
						if err := rs.Encode(shards); err != nil {
							panic(err)
						}
					} else {
						for i := range shards {
							if i < missing {
								shards[i] = work[i][:0]
							} else {
								shards[i] = f.shards[i]
							}
						}
						if err := rs.ReconstructData(shards); err != nil {
							panic(err)
						}
					}
				case "decompress":
					out, err := dec.decompress(buf[:0], f.payload, len(f.plain))
					if err != nil {
						panic(err)
					}
					buf = out[:0]
				default:
					panic("unknown part " + part)
				}
			}
		}
	})
}

// BenchmarkSegmentSize is the measurement behind DefaultSegmentSize: encode
// and decode throughput of the reference code at several segment sizes.
func BenchmarkSegmentSize(b *testing.B) {
	for _, size := range []int{256 << 10, 1 << 20, 4 << 20, 16 << 20} {
		for _, op := range []string{"encode", "decode"} {
			b.Run(fmt.Sprintf("op=%s/segment=%dKiB", op, size>>10), func(b *testing.B) {
				p := benchParams(10, 20)
				p.SegmentSize = size
				if op == "encode" {
					benchEncode(b, p, benchInput(b, "random"))
				} else {
					benchDecode(b, p, benchInput(b, "random"))
				}
			})
		}
	}
}
