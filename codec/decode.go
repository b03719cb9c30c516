package codec

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/reedsolomon"
	"github.com/zeebo/blake3"
)

// Decoder decodes the segments of one file. It is safe for concurrent use.
type Decoder struct {
	l    *Layout
	aead cipher.AEAD
	rs   reedsolomon.Encoder
	pool sync.Pool // *decWorker
	bufs sync.Pool // *segBuf

	mu    sync.Mutex
	index []map[ShardID]int // per segment: shard ID → shard index
}

// NewDecoder returns a decoder for the file described by l under key.
func NewDecoder(l *Layout, key Key) (*Decoder, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	aead, err := newSegmentAEAD(key, l.Salt)
	if err != nil {
		return nil, err
	}
	rs, err := newRS(l.K, l.M)
	if err != nil {
		return nil, err
	}
	return &Decoder{l: l, aead: aead, rs: rs, index: make([]map[ShardID]int, len(l.Segments))}, nil
}

// Layout returns the layout the decoder was made for.
func (d *Decoder) Layout() *Layout { return d.l }

// indexOf returns the shard index of id in segment seg, or -1.
func (d *Decoder) indexOf(seg int, id ShardID) int {
	// The per-segment maps are built lazily: a ranged read of a huge file
	// touches only a few segments.
	m := d.segIndex(seg)
	if i, ok := m[id]; ok {
		return i
	}
	return -1
}

func (d *Decoder) segIndex(seg int) map[ShardID]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.index[seg]
	if m == nil {
		m = make(map[ShardID]int, d.l.Total())
		for i, id := range d.l.Segments[seg].IDs {
			m[id] = i
		}
		d.index[seg] = m
	}
	return m
}

// VerifyShard checks that shard is one of segment seg's shards: its bytes
// hash to an ID the layout lists for that segment, and its header agrees
// with the layout. It returns the shard's index in the segment.
func (d *Decoder) VerifyShard(seg int, shard []byte) (int, error) {
	if seg < 0 || seg >= len(d.l.Segments) {
		return -1, fmt.Errorf("codec: segment %d out of range (file has %d)", seg, len(d.l.Segments))
	}
	return d.verify(seg, shard, IDOf(shard))
}

func (d *Decoder) verify(seg int, shard []byte, id ShardID) (int, error) {
	idx := d.indexOf(seg, id)
	if idx < 0 {
		return -1, fmt.Errorf("%w: segment %d has no shard %s", ErrBadShard, seg, id.Short())
	}
	h, err := ParseHeader(shard)
	if err != nil {
		return -1, err
	}
	// The ID covers the header, so a listed ID implies the header the
	// encoder wrote; checking anyway keeps a bad layout from misleading us.
	info := &d.l.Segments[seg]
	if int(h.Index) != idx || h.Segment != uint64(seg) || int(h.K) != d.l.K || int(h.M) != d.l.M || int(h.CipherLen) != info.CipherLen {
		return -1, formatErr("shard %s header disagrees with the layout", id.Short())
	}
	return idx, nil
}

// decWorker holds reusable decode state.
type decWorker struct {
	hasher *blake3.Hasher
	dec    *decompressor
}

func (d *Decoder) getWorker() (*decWorker, error) {
	if w, ok := d.pool.Get().(*decWorker); ok {
		return w, nil
	}
	dec, err := newDecompressor()
	if err != nil {
		return nil, err
	}
	return &decWorker{hasher: blake3.New(), dec: dec}, nil
}

// DecodeSegment verifies the given shards of segment seg (in any order,
// missing, duplicated, corrupt or foreign ones included), rebuilds the
// segment from any k good ones and returns its plaintext appended to dst.
// With fewer than k good shards it returns a *TooFewShardsError.
func (d *Decoder) DecodeSegment(dst []byte, seg int, shards [][]byte) ([]byte, error) {
	out, _, err := d.decode(dst, seg, shards, nil, false)
	return out, err
}

// segBuf is a pooled buffer holding one segment's joined ciphertext.
type segBuf struct{ b []byte }

// decode is DecodeSegment. With owned set (and dst nil) a stored segment's
// plaintext is returned in place inside the pooled buffer it was decrypted
// in, and the caller gives the buffer back with d.bufs.Put when done;
// otherwise the result is appended to dst and buf is nil. ids, when not
// nil, holds the IDs a fetcher already verified shards[i] against (zero:
// not verified); those shards are not hashed again.
func (d *Decoder) decode(dst []byte, seg int, shards [][]byte, ids []ShardID, owned bool) (out []byte, buf *segBuf, err error) {
	if seg < 0 || seg >= len(d.l.Segments) {
		return nil, nil, fmt.Errorf("codec: segment %d out of range (file has %d)", seg, len(d.l.Segments))
	}
	w, err := d.getWorker()
	if err != nil {
		return nil, nil, err
	}
	defer d.pool.Put(w)

	l := d.l
	info := &l.Segments[seg]
	payloads := make([][]byte, l.Total())
	good, bad := 0, 0
	for i, s := range shards {
		if s == nil {
			continue
		}
		if good >= l.K {
			break // enough: the rest need not be hashed
		}
		var id ShardID
		if ids != nil && ids[i] != (ShardID{}) {
			id = ids[i]
		} else {
			w.hasher.Reset()
			w.hasher.Write(s)
			w.hasher.Sum(id[:0])
		}
		idx, err := d.verify(seg, s, id)
		if err != nil {
			bad++
			continue
		}
		if payloads[idx] != nil {
			continue // duplicate
		}
		payloads[idx] = s[HeaderSize:]
		good++
	}
	if good < l.K {
		return nil, nil, &TooFewShardsError{Segment: uint64(seg), Good: good, Bad: bad, Need: l.K}
	}
	// The data shards are laid out (or rebuilt) straight into one buffer,
	// which is then the contiguous ciphertext: no second copy, no buffers
	// for the rebuilt shards.
	shardLen := (info.CipherLen + l.K - 1) / l.K
	sb, _ := d.bufs.Get().(*segBuf)
	if sb == nil {
		sb = new(segBuf)
	}
	if cap(sb.b) < l.K*shardLen {
		sb.b = make([]byte, l.K*shardLen)
	}
	ct := sb.b[:l.K*shardLen]
	slots := make([][]byte, l.K)
	missingData := false
	for i := range l.K {
		slots[i] = ct[i*shardLen : (i+1)*shardLen : (i+1)*shardLen]
		if payloads[i] == nil {
			missingData = true
			payloads[i] = slots[i][:0]
			continue
		}
		copy(slots[i], payloads[i])
		payloads[i] = slots[i]
	}
	if missingData {
		if err := d.rs.ReconstructData(payloads); err != nil {
			d.bufs.Put(sb)
			return nil, nil, fmt.Errorf("codec: segment %d: reed-solomon: %w", seg, err)
		}
		for i := range l.K {
			if &payloads[i][0] != &slots[i][0] {
				copy(slots[i], payloads[i]) // the coder chose its own buffer
			}
		}
	}
	ct = ct[:info.CipherLen]
	nonce := segmentNonce(uint64(seg), seg == len(l.Segments)-1)
	pt, err := d.aead.Open(ct[:0], nonce[:], ct, []byte(segmentAAD))
	if err != nil {
		d.bufs.Put(sb)
		return nil, nil, fmt.Errorf("%w: segment %d", ErrAuth, seg)
	}
	if owned && dst == nil && len(pt) > 0 && pt[0] == modeStored {
		if len(pt)-1 != l.PlainLen(seg) {
			d.bufs.Put(sb)
			return nil, nil, fmt.Errorf("codec: segment %d: %w", seg, formatErr("segment decodes to %d bytes, want %d", len(pt)-1, l.PlainLen(seg)))
		}
		return pt[1:], sb, nil
	}
	out, err = w.dec.decompress(dst, pt, l.PlainLen(seg))
	d.bufs.Put(sb)
	if err != nil {
		return nil, nil, fmt.Errorf("codec: segment %d: %w", seg, err)
	}
	return out, nil, nil
}

// Fetcher supplies the shards of a segment for decoding. It may return any
// subset, in any order; returning at least k good ones is its job, and
// Decoder.VerifyShard lets it check candidates before returning them.
type Fetcher interface {
	FetchSegment(ctx context.Context, seg int, info SegmentInfo) ([][]byte, error)
}

// VerifiedShard is a shard its fetcher has already checked: Data hashes to
// ID (the shard protocol verifies every byte it receives against the ID it
// asked for). The decoder still checks that ID belongs to the segment and
// that the header agrees with the layout, but does not hash Data again.
type VerifiedShard struct {
	ID   ShardID
	Data []byte
}

// VerifiedFetcher is a Fetcher whose shards arrive already verified
// against their IDs; NewReader then uses FetchVerified instead of
// FetchSegment. A fetcher that returns a VerifiedShard whose Data does
// not hash to its ID defeats the decoder's integrity check of that shard
// (the AEAD still rejects a wrong segment).
type VerifiedFetcher interface {
	Fetcher
	FetchVerified(ctx context.Context, seg int, info SegmentInfo) ([]VerifiedShard, error)
}

// FetcherFunc adapts a function to Fetcher.
type FetcherFunc func(ctx context.Context, seg int, info SegmentInfo) ([][]byte, error)

// FetchSegment calls f.
func (f FetcherFunc) FetchSegment(ctx context.Context, seg int, info SegmentInfo) ([][]byte, error) {
	return f(ctx, seg, info)
}

// ReaderOption configures NewReader.
type ReaderOption func(*readerOpts)

type readerOpts struct{ ahead int }

// WithReadAhead sets how many segments are fetched and decoded in parallel
// ahead of the reader (default GOMAXPROCS, at least 2).
func WithReadAhead(n int) ReaderOption {
	return func(o *readerOpts) { o.ahead = max(1, n) }
}

// NewReader returns a reader of bytes [off, off+n) of the file (n < 0 means
// to the end). Only the segments covering the range are fetched; they are
// fetched and decoded in parallel and delivered in order. Close stops the
// work in flight and waits for it.
func (d *Decoder) NewReader(ctx context.Context, f Fetcher, off, n int64, opts ...ReaderOption) (io.ReadCloser, error) {
	o := readerOpts{ahead: max(2, runtime.GOMAXPROCS(0))}
	for _, opt := range opts {
		opt(&o)
	}
	if off < 0 || off > d.l.Size {
		return nil, fmt.Errorf("codec: read offset %d outside file of %d bytes", off, d.l.Size)
	}
	if n < 0 || off+n > d.l.Size {
		n = d.l.Size - off
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &segReader{d: d, f: f, ctx: ctx, cancel: cancel, off: off, remaining: n}
	if n == 0 {
		return r, nil
	}
	first, last := d.l.SegmentRange(off, n)
	r.skip = int(off - int64(first)*int64(d.l.SegmentSize))
	r.results = make(chan *segResult, o.ahead)
	r.wg.Add(1)
	go r.schedule(first, last, o.ahead)
	return r, nil
}

type segResult struct {
	plain []byte
	buf   *segBuf // holds plain when not nil; back to the pool once read
	err   error
	ready chan struct{}
}

type segReader struct {
	d         *Decoder
	f         Fetcher
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	results   chan *segResult
	cur       []byte
	curBuf    *segBuf // the pooled buffer cur lies in, if any
	skip      int     // bytes to drop from the first segment
	off       int64
	remaining int64
	err       error
}

// schedule starts one goroutine per segment, at most ahead at a time, and
// queues their results in order.
func (r *segReader) schedule(first, last, ahead int) {
	defer r.wg.Done()
	defer close(r.results)
	sem := make(chan struct{}, ahead)
	for seg := first; seg <= last; seg++ {
		res := &segResult{ready: make(chan struct{})}
		select {
		case sem <- struct{}{}:
		case <-r.ctx.Done():
			return
		}
		select {
		case r.results <- res:
		case <-r.ctx.Done():
			<-sem
			return
		}
		r.wg.Add(1)
		go func(seg int) {
			defer r.wg.Done()
			defer func() { <-sem }()
			defer close(res.ready)
			shards, ids, err := r.fetch(seg)
			if err != nil {
				res.err = fmt.Errorf("codec: fetch segment %d: %w", seg, err)
				return
			}
			res.plain, res.buf, res.err = r.d.decode(nil, seg, shards, ids, true)
		}(seg)
	}
}

// fetch gets segment seg's shards, with the IDs they were verified against
// when the fetcher verifies.
func (r *segReader) fetch(seg int) ([][]byte, []ShardID, error) {
	vf, ok := r.f.(VerifiedFetcher)
	if !ok {
		shards, err := r.f.FetchSegment(r.ctx, seg, r.d.l.Segments[seg])
		return shards, nil, err
	}
	vs, err := vf.FetchVerified(r.ctx, seg, r.d.l.Segments[seg])
	if err != nil {
		return nil, nil, err
	}
	shards, ids := make([][]byte, len(vs)), make([]ShardID, len(vs))
	for i, v := range vs {
		shards[i], ids[i] = v.Data, v.ID
	}
	return shards, ids, nil
}

func (r *segReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for len(r.cur) == 0 {
		if r.curBuf != nil {
			r.d.bufs.Put(r.curBuf)
			r.curBuf = nil
		}
		if r.remaining == 0 {
			r.err = io.EOF
			return 0, io.EOF
		}
		res, ok := <-r.results
		if !ok {
			r.err = r.ctx.Err()
			if r.err == nil {
				r.err = io.ErrUnexpectedEOF
			}
			return 0, r.err
		}
		select {
		case <-res.ready:
		case <-r.ctx.Done():
			r.err = r.ctx.Err()
			return 0, r.err
		}
		if res.err != nil {
			r.err = res.err
			return 0, r.err
		}
		r.cur, r.curBuf = res.plain[r.skip:], res.buf
		r.skip = 0
		if int64(len(r.cur)) > r.remaining {
			r.cur = r.cur[:r.remaining]
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	r.remaining -= int64(n)
	return n, nil
}

func (r *segReader) Close() error {
	r.cancel()
	r.wg.Wait()
	if r.err == nil || errors.Is(r.err, io.EOF) {
		r.err = errors.New("codec: read after close")
	}
	return nil
}
