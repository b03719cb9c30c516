package codec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"github.com/klauspost/compress/zstd"
)

// encoded is a file encoded in a test: its layout and every shard's bytes,
// indexed [segment][shard].
type encoded struct {
	layout *Layout
	shards [][][]byte
}

func encodeAll(t testing.TB, p Params, key Key, r io.Reader) *encoded {
	t.Helper()
	return encodeWith(t, p, key, r, nil)
}

// encodeWith encodes with a fixed salt when salt is not nil, so the output
// is the same on every run.
func encodeWith(t testing.TB, p Params, key Key, r io.Reader, salt []byte) *encoded {
	t.Helper()
	enc, err := NewEncoder(p)
	if err != nil {
		t.Fatal(err)
	}
	if salt != nil {
		enc.rand = bytes.NewReader(salt)
	}
	var out encoded
	l, err := enc.Encode(context.Background(), r, key, func(s *Segment) error {
		if s.Index != uint64(len(out.shards)) {
			return fmt.Errorf("segment %d delivered out of order", s.Index)
		}
		ss := make([][]byte, len(s.Shards))
		for i := range s.Shards {
			ss[i] = s.Shards[i].Bytes()
			if IDOf(ss[i]) != s.Shards[i].ID {
				return fmt.Errorf("segment %d shard %d: ID does not match bytes", s.Index, i)
			}
			// The seekable reader gives the same bytes, also after a rewind.
			r := s.Shards[i].Reader()
			if _, err := io.CopyN(io.Discard, r, int64(len(ss[i])/2)); err != nil {
				return err
			}
			if _, err := r.Seek(0, io.SeekStart); err != nil {
				return err
			}
			if b, err := io.ReadAll(iotest.OneByteReader(r)); err != nil || !bytes.Equal(b, ss[i]) {
				return fmt.Errorf("segment %d shard %d: reader gives other bytes (%v)", s.Index, i, err)
			}
		}
		out.shards = append(out.shards, ss)
		s.Release()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out.layout = l
	return &out
}

// fetcher serves shards from e, letting a test choose what each segment
// returns and counting what was fetched.
func (e *encoded) fetcher(pick func(seg int, shards [][]byte) [][]byte, fetched *atomic.Int64) Fetcher {
	return FetcherFunc(func(ctx context.Context, seg int, info SegmentInfo) ([][]byte, error) {
		if fetched != nil {
			fetched.Add(1)
		}
		s := e.shards[seg]
		if pick != nil {
			return pick(seg, s), nil
		}
		return s, nil
	})
}

func decodeAll(t testing.TB, e *encoded, key Key, f Fetcher, off, n int64) ([]byte, error) {
	t.Helper()
	d, err := NewDecoder(e.layout, key)
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.NewReader(context.Background(), f, off, n)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// textBytes returns n bytes of real text: the Go distribution's own sources.
func textBytes(t testing.TB, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	root := filepath.Join(runtime.GOROOT(), "src")
	errDone := errors.New("done")
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.Contains(path, "testdata") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		buf.Write(b)
		if buf.Len() >= n {
			return errDone
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDone) {
		t.Fatal(err)
	}
	if buf.Len() < n {
		t.Fatalf("only %d bytes of text under %s", buf.Len(), root)
	}
	return buf.Bytes()[:n]
}

func testKey(b byte) Key {
	var k Key
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

const testSeg = MinSegmentSize

func TestRoundTripSizes(t *testing.T) {
	key := testKey(1)
	// 200 bytes of text compress into a zstd frame that omits its size.
	sizes := []int{0, 1, 200, testSeg - 1, testSeg, testSeg + 1, 2 * testSeg, 7*testSeg + 123}
	for _, comp := range []Compression{CompressNone, CompressZstd, CompressGzip} {
		for _, kind := range []string{"random", "text"} {
			for _, size := range sizes {
				name := fmt.Sprintf("%s/%s/%d", comp, kind, size)
				t.Run(name, func(t *testing.T) {
					var data []byte
					if kind == "random" {
						data = randomBytes(uint64(size), size)
					} else {
						data = textBytes(t, size)
					}
					p := Params{K: 3, M: 2, SegmentSize: testSeg, Compression: comp}
					// One byte at a time: the encoder cannot know the length.
					e := encodeAll(t, p, key, iotest.OneByteReader(bytes.NewReader(data)))
					if e.layout.Size != int64(size) || int64(len(e.layout.Segments)) != SegmentCount(int64(size), testSeg) {
						t.Fatalf("layout %v for %d bytes", e.layout, size)
					}
					got, err := decodeAll(t, e, key, e.fetcher(nil, nil), 0, -1)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, data) {
						t.Fatalf("round trip of %d bytes returned %d different bytes", size, len(got))
					}
				})
			}
		}
	}
}

func TestCompressionShrinksText(t *testing.T) {
	data := textBytes(t, 1<<20)
	for _, comp := range []Compression{CompressZstd, CompressGzip} {
		e := encodeAll(t, Params{K: 4, M: 4, SegmentSize: 256 << 10, Compression: comp}, testKey(2), bytes.NewReader(data))
		var cipher int
		for _, s := range e.layout.Segments {
			cipher += s.CipherLen
		}
		if ratio := float64(cipher) / float64(len(data)); ratio > 0.4 {
			t.Errorf("%s: text shrank only to %.0f%%", comp, 100*ratio)
		}
	}
	// Random data is stored as is: one mode byte and a tag per segment.
	e := encodeAll(t, Params{K: 4, M: 4, SegmentSize: 256 << 10, Compression: CompressZstd}, testKey(2), bytes.NewReader(randomBytes(3, 1<<20)))
	for i, s := range e.layout.Segments {
		if s.CipherLen != e.layout.PlainLen(i)+1+tagSize {
			t.Errorf("random segment %d: ciphertext %d for %d plaintext bytes", i, s.CipherLen, e.layout.PlainLen(i))
		}
	}
}

// TestMissingShardCombinations drops every combination of up to m shards of
// every segment.
func TestMissingShardCombinations(t *testing.T) {
	const k, m = 3, 3
	data := randomBytes(4, 2*testSeg+5)
	key := testKey(3)
	e := encodeAll(t, Params{K: k, M: m, SegmentSize: testSeg}, key, bytes.NewReader(data))
	d, err := NewDecoder(e.layout, key)
	if err != nil {
		t.Fatal(err)
	}
	for seg := range e.layout.Segments {
		want := data[seg*testSeg : seg*testSeg+e.layout.PlainLen(seg)]
		for mask := 0; mask < 1<<(k+m); mask++ {
			var shards [][]byte
			missing := 0
			for i := range k + m {
				if mask&(1<<i) != 0 {
					missing++
					continue
				}
				shards = append(shards, e.shards[seg][i])
			}
			got, err := d.DecodeSegment(nil, seg, shards)
			if missing <= m {
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("segment %d missing mask %b: %v", seg, mask, err)
				}
				continue
			}
			var tf *TooFewShardsError
			if !errors.As(err, &tf) || tf.Good != k+m-missing || tf.Need != k {
				t.Fatalf("segment %d missing %d: want TooFewShardsError with %d good, got %v", seg, missing, k+m-missing, err)
			}
		}
	}
}

func TestBadShardsAreDroppedAndBuiltAround(t *testing.T) {
	const k, m = 4, 4
	key := testKey(5)
	data := randomBytes(6, 3*testSeg)
	e := encodeAll(t, Params{K: k, M: m, SegmentSize: testSeg}, key, bytes.NewReader(data))
	other := encodeAll(t, Params{K: k, M: m, SegmentSize: testSeg}, key, bytes.NewReader(data))
	d, err := NewDecoder(e.layout, key)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte, at int) []byte { c := bytes.Clone(b); c[at%len(c)] ^= 0x40; return c }
	const seg = 1
	good := e.shards[seg]
	cases := map[string][][]byte{
		// Each case has exactly k usable shards plus up to m bad ones.
		"corrupt payload":  {flip(good[0], HeaderSize+7), flip(good[1], len(good[1])-1), good[2], good[3], good[4], good[5]},
		"corrupt header":   {flip(good[0], 5), flip(good[1], 10), good[2], good[3], good[4], good[5]},
		"truncated":        {good[0][:len(good[0])-1], good[1][:HeaderSize], good[2][:3], good[3], good[4], good[5], good[6]},
		"appended":         {append(bytes.Clone(good[0]), 0), good[3], good[4], good[5], good[6]},
		"swapped order":    {good[7], good[2], good[5], good[0]},
		"duplicated":       {good[1], good[1], good[1], good[1], good[2], good[2], good[6], good[7]},
		"other segment":    {e.shards[0][0], e.shards[2][1], e.shards[0][2], good[4], good[5], good[6], good[7]},
		"other file":       {other.shards[seg][0], other.shards[seg][1], other.shards[seg][2], good[3], good[4], good[5], good[6]},
		"nil and garbage":  {nil, {}, []byte("JFsh"), randomBytes(9, 100), good[0], good[1], good[2], good[3]},
		"only parity left": {good[4], good[5], good[6], good[7]},
	}
	want := data[seg*testSeg : (seg+1)*testSeg]
	for name, shards := range cases {
		got, err := d.DecodeSegment(nil, seg, shards)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// One usable shard short: the error says how many were found and needed.
	_, err = d.DecodeSegment(nil, seg, [][]byte{flip(good[0], 30), good[1], good[2], good[2], other.shards[seg][3]})
	var tf *TooFewShardsError
	if !errors.As(err, &tf) || tf.Good != 2 || tf.Need != 4 || tf.Bad != 2 || !errors.Is(err, ErrTooFewShards) {
		t.Fatalf("want 2 good of 4 needed, 2 bad; got %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "found 2 good shards, need 4") {
		t.Fatalf("unclear message %q", msg)
	}
	for i, s := range [][]byte{good[0], flip(good[0], 99), other.shards[seg][0], e.shards[0][0]} {
		_, err := d.VerifyShard(seg, s)
		if (i == 0) != (err == nil) {
			t.Errorf("VerifyShard case %d: %v", i, err)
		}
	}
}

func TestWrongKeyFailsClearly(t *testing.T) {
	data := randomBytes(7, testSeg+9)
	e := encodeAll(t, Params{K: 2, M: 1, SegmentSize: testSeg}, testKey(1), bytes.NewReader(data))
	_, err := decodeAll(t, e, testKey(2), e.fetcher(nil, nil), 0, -1)
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong key: want ErrAuth, got %v", err)
	}
	if !strings.Contains(err.Error(), "wrong key") {
		t.Fatalf("unclear message: %v", err)
	}
}

// TestStreamTampering edits the layout to reorder, truncate and splice
// segments; each must fail authentication, not decode to wrong bytes.
func TestStreamTampering(t *testing.T) {
	key := testKey(4)
	p := Params{K: 2, M: 2, SegmentSize: testSeg}
	data := randomBytes(8, 3*testSeg)
	e := encodeAll(t, p, key, bytes.NewReader(data))
	clone := func() *encoded {
		b, err := e.layout.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var l Layout
		if err := l.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		c := &encoded{layout: &l}
		for _, s := range e.shards {
			c.shards = append(c.shards, s)
		}
		return c
	}
	check := func(name string, c *encoded) {
		t.Helper()
		got, err := decodeAll(t, c, key, c.fetcher(nil, nil), 0, -1)
		if err == nil {
			t.Errorf("%s: decoded %d bytes without error", name, len(got))
		} else if !errors.Is(err, ErrAuth) && !errors.Is(err, ErrBadShard) && !errors.Is(err, ErrTooFewShards) && !errors.Is(err, ErrFormat) {
			t.Errorf("%s: unexpected error %v", name, err)
		}
	}

	swapped := clone()
	swapped.layout.Segments[0], swapped.layout.Segments[1] = swapped.layout.Segments[1], swapped.layout.Segments[0]
	swapped.shards[0], swapped.shards[1] = swapped.shards[1], swapped.shards[0]
	check("reordered segments", swapped)

	truncated := clone()
	truncated.layout.Segments = truncated.layout.Segments[:2]
	truncated.layout.Size = 2 * testSeg
	truncated.shards = truncated.shards[:2]
	check("truncated stream", truncated)

	// A segment from another file with the same key: its layout entry and
	// shards are internally consistent, but it was sealed under another salt.
	other := encodeAll(t, p, key, bytes.NewReader(randomBytes(9, 3*testSeg)))
	spliced := clone()
	spliced.layout.Segments[1] = other.layout.Segments[1]
	spliced.shards[1] = other.shards[1]
	check("spliced segment", spliced)

	// Appending: the last segment moved one place on cannot open as non-last.
	appended := clone()
	appended.layout.Segments = append(appended.layout.Segments, appended.layout.Segments[2])
	appended.layout.Size = 4 * testSeg
	appended.shards = append(appended.shards, appended.shards[2])
	check("appended segment", appended)
}

func TestRangedReadsFetchOnlyCoveringSegments(t *testing.T) {
	key := testKey(6)
	data := textBytes(t, 10*testSeg+321)
	e := encodeAll(t, Params{K: 3, M: 2, SegmentSize: testSeg, Compression: CompressZstd}, key, bytes.NewReader(data))
	rng := rand.New(rand.NewPCG(1, 1))
	ranges := [][2]int64{{0, 1}, {testSeg - 1, 2}, {testSeg, testSeg}, {int64(len(data)) - 1, 1}, {int64(len(data)), 0}, {5, -1}}
	for range 30 {
		off := rng.Int64N(int64(len(data)))
		ranges = append(ranges, [2]int64{off, rng.Int64N(int64(len(data)) - off + 1)})
	}
	for _, r := range ranges {
		var fetched atomic.Int64
		got, err := decodeAll(t, e, key, e.fetcher(nil, &fetched), r[0], r[1])
		if err != nil {
			t.Fatalf("range %v: %v", r, err)
		}
		end := r[0] + r[1]
		if r[1] < 0 {
			end = int64(len(data))
		}
		if !bytes.Equal(got, data[r[0]:end]) {
			t.Fatalf("range %v: wrong bytes", r)
		}
		var want int64
		if end > r[0] {
			first, last := e.layout.SegmentRange(r[0], end-r[0])
			want = int64(last - first + 1)
		}
		if fetched.Load() != want {
			t.Fatalf("range %v fetched %d segments, want %d", r, fetched.Load(), want)
		}
	}
	d, _ := NewDecoder(e.layout, key)
	if _, err := d.NewReader(context.Background(), e.fetcher(nil, nil), int64(len(data))+1, 1); err == nil {
		t.Fatal("offset past the end accepted")
	}
}

func TestReaderSurfacesFetchErrorsAndCloses(t *testing.T) {
	key := testKey(7)
	e := encodeAll(t, Params{K: 2, M: 2, SegmentSize: testSeg}, key, bytes.NewReader(randomBytes(1, 6*testSeg)))
	boom := errors.New("holder unreachable")
	f := FetcherFunc(func(ctx context.Context, seg int, info SegmentInfo) ([][]byte, error) {
		if seg == 3 {
			return nil, boom
		}
		return e.shards[seg], nil
	})
	_, err := decodeAll(t, e, key, f, 0, -1)
	if !errors.Is(err, boom) {
		t.Fatalf("want fetch error, got %v", err)
	}
	// Closing early stops the fetchers (a blocked fetch sees its context end).
	d, _ := NewDecoder(e.layout, key)
	block := FetcherFunc(func(ctx context.Context, seg int, info SegmentInfo) ([][]byte, error) {
		if seg > 0 {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return e.shards[seg], nil
	})
	r, err := d.NewReader(context.Background(), block, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(make([]byte, 1)); err == nil {
		t.Fatal("read after close succeeded")
	}
}

func TestEncodeStopsOnErrors(t *testing.T) {
	enc, err := NewEncoder(Params{K: 2, M: 1, SegmentSize: testSeg})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.NewReader(randomBytes(2, 20*testSeg))
	boom := errors.New("sink full")
	calls := 0
	_, err = enc.Encode(context.Background(), data, testKey(1), func(s *Segment) error {
		calls++
		if s.Index == 2 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || calls != 3 {
		t.Fatalf("sink error: got %v after %d calls", err, calls)
	}
	readErr := errors.New("disk on fire")
	_, err = enc.Encode(context.Background(), io.MultiReader(bytes.NewReader(randomBytes(3, 2*testSeg+1)), iotest.ErrReader(readErr)), testKey(1), func(s *Segment) error { return nil })
	if !errors.Is(err, readErr) {
		t.Fatalf("reader error: got %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err = enc.Encode(ctx, bytes.NewReader(randomBytes(4, 20*testSeg)), testKey(1), func(s *Segment) error {
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel: got %v", err)
	}
}

func TestParamsValidate(t *testing.T) {
	for _, p := range []Params{
		{K: 0, M: 1, SegmentSize: testSeg},
		{K: 1, M: -1, SegmentSize: testSeg},
		{K: 200, M: 57, SegmentSize: testSeg},
		{K: 1, M: 1, SegmentSize: 100},
		{K: 1, M: 1, SegmentSize: MaxSegmentSize + 1},
		{K: 1, M: 1, SegmentSize: testSeg, Compression: 9},
	} {
		if _, err := NewEncoder(p); err == nil {
			t.Errorf("params %+v accepted", p)
		}
	}
	// No parity at all is legal: every shard is needed.
	e := encodeAll(t, Params{K: 3, M: 0, SegmentSize: testSeg}, testKey(9), bytes.NewReader(randomBytes(5, testSeg*2)))
	if got, err := decodeAll(t, e, testKey(9), e.fetcher(nil, nil), 0, -1); err != nil || len(got) != 2*testSeg {
		t.Fatalf("k=3 m=0: %v", err)
	}
}

func TestDecompressionBombRefused(t *testing.T) {
	c, err := newCompressor(CompressZstd)
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDecompressor()
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 1<<20)
	payload := c.compress(nil, big)
	if payload[0] != modeZstd || len(payload) > 1000 {
		t.Fatalf("zeros did not compress: mode %d, %d bytes", payload[0], len(payload))
	}
	if _, err := d.decompress(nil, payload, 4096); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("zstd bomb: got %v", err)
	}
	// A small frame without a declared size cannot exceed its segment either.
	small := c.compress(nil, bytes.Repeat([]byte("ab"), 100))
	if h := new(zstd.Header); h.Decode(small[1:]) != nil || h.HasFCS {
		t.Fatal("expected a 200-byte frame without a declared size")
	}
	if _, err := d.decompress(nil, small, 150); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("small zstd frame over its size: got %v", err)
	}
	if out, err := d.decompress(nil, small, 200); err != nil || len(out) != 200 {
		t.Fatalf("small zstd frame: %v", err)
	}
	g, _ := newCompressor(CompressGzip)
	gp := g.compress(nil, big)
	if gp[0] != modeGzip {
		t.Fatalf("gzip mode %d", gp[0])
	}
	if _, err := d.decompress(nil, gp, 4096); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("gzip bomb: got %v", err)
	}
	if out, err := d.decompress(nil, payload, len(big)); err != nil || !bytes.Equal(out, big) {
		t.Fatalf("honest payload: %v", err)
	}
}

func TestChallenges(t *testing.T) {
	key := testKey(8)
	e := encodeAll(t, Params{K: 2, M: 2, SegmentSize: testSeg}, key, bytes.NewReader(randomBytes(6, testSeg)))
	secret, err := NewChallengeSecret(key, e.layout)
	if err != nil {
		t.Fatal(err)
	}
	shard := e.shards[0][1]
	cs := secret.MakeChallenges(shard, 0, 4)
	seen := map[[32]byte]bool{}
	for _, c := range cs {
		ans, err := ChallengeAnswer(c.Salt, bytes.NewReader(shard))
		if err != nil || ans != c.Answer {
			t.Fatalf("challenge %d: holder's answer differs", c.Index)
		}
		if c.Salt != secret.Salt(IDOf(shard), c.Index) {
			t.Fatalf("challenge %d: salt not re-derivable", c.Index)
		}
		seen[c.Salt] = true
		// A holder that kept a changed shard answers wrongly.
		bad := bytes.Clone(shard)
		bad[HeaderSize+10] ^= 1
		if wrong, _ := ChallengeAnswer(c.Salt, bytes.NewReader(bad)); wrong == c.Answer {
			t.Fatal("changed shard gave the right answer")
		}
	}
	if len(seen) != 4 {
		t.Fatal("salts repeat")
	}
	secret2, _ := NewChallengeSecret(testKey(9), e.layout)
	if secret2 == secret {
		t.Fatal("challenge secret does not depend on the key")
	}
}

func TestLayoutRoundTripAndRejects(t *testing.T) {
	e := encodeAll(t, Params{K: 3, M: 2, SegmentSize: testSeg, Compression: CompressGzip}, testKey(3), bytes.NewReader(randomBytes(9, 3*testSeg+1)))
	b, err := e.layout.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var l Layout
	if err := l.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	b2, _ := l.MarshalBinary()
	if !bytes.Equal(b, b2) {
		t.Fatal("layout does not round trip")
	}
	for name, bad := range map[string][]byte{
		"short":     b[:layoutFixed-1],
		"truncated": b[:len(b)-1],
		"extra":     append(bytes.Clone(b), 0),
		"magic":     append([]byte("XXXX"), b[4:]...),
		"version":   append(append(bytes.Clone(b[:4]), 9), b[5:]...),
	} {
		if err := new(Layout).UnmarshalBinary(bad); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

// verifiedFetcher serves e's shards as already verified, with the IDs the
// test chooses.
type verifiedFetcher struct {
	e    *encoded
	pick func(seg int, vs []VerifiedShard) []VerifiedShard
}

func (f verifiedFetcher) FetchSegment(ctx context.Context, seg int, info SegmentInfo) ([][]byte, error) {
	return nil, errors.New("FetchSegment called on a verified fetcher")
}

func (f verifiedFetcher) FetchVerified(ctx context.Context, seg int, info SegmentInfo) ([]VerifiedShard, error) {
	var vs []VerifiedShard
	for i, s := range f.e.shards[seg] {
		vs = append(vs, VerifiedShard{ID: info.IDs[i], Data: s})
	}
	return f.pick(seg, vs), nil
}

// TestVerifiedFetcher: shards a fetcher vouches for are not hashed again,
// but a vouched ID outside the segment is still refused and a lying fetcher
// (right ID, wrong bytes) fails authentication instead of returning wrong
// plaintext.
func TestVerifiedFetcher(t *testing.T) {
	p := Params{K: 3, M: 3, SegmentSize: MinSegmentSize}
	key := testKey(7)
	data := randomBytes(11, 3*MinSegmentSize+100)
	e := encodeAll(t, p, key, bytes.NewReader(data))

	// Only parity shards: the decoder rebuilds from vouched shards.
	got, err := decodeAll(t, e, key, verifiedFetcher{e, func(seg int, vs []VerifiedShard) []VerifiedShard { return vs[3:] }}, 0, -1)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("verified parity-only read: %v (equal %v)", err, bytes.Equal(got, data))
	}

	// A foreign ID is dropped like a foreign shard: with it among k
	// candidates the segment has too few.
	foreign := func(seg int, vs []VerifiedShard) []VerifiedShard {
		vs = vs[:3]
		vs[0].ID = IDOf([]byte("not a shard of this file"))
		return vs
	}
	if _, err := decodeAll(t, e, key, verifiedFetcher{e, foreign}, 0, -1); !errors.Is(err, ErrTooFewShards) {
		t.Fatalf("foreign vouched ID: got %v, want ErrTooFewShards", err)
	}

	// A fetcher that vouches for altered bytes: the AEAD catches it.
	lying := func(seg int, vs []VerifiedShard) []VerifiedShard {
		vs = vs[:3]
		bad := bytes.Clone(vs[1].Data)
		bad[HeaderSize+10] ^= 1
		vs[1].Data = bad
		return vs
	}
	if _, err := decodeAll(t, e, key, verifiedFetcher{e, lying}, 0, -1); !errors.Is(err, ErrAuth) {
		t.Fatalf("lying fetcher: got %v, want ErrAuth", err)
	}
}
