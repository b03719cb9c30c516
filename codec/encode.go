package codec

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/reedsolomon"
	"github.com/zeebo/blake3"
	"golang.org/x/sync/errgroup"
)

// Segment is one encoded segment handed to an Encode sink. Its shards'
// payloads live in buffers the encoder reuses after Release; a sink that
// keeps shards past Release must copy them, and a sink that never calls
// Release simply leaves the buffers to the garbage collector.
type Segment struct {
	Index     uint64
	Last      bool
	PlainLen  int
	CipherLen int
	Shards    []Shard // index i is shard i; len k+m

	release func()
}

// Release returns the segment's buffers to the encoder. The segment must
// not be used afterwards.
func (s *Segment) Release() {
	if s.release != nil {
		s.release()
		s.release = nil
	}
	s.Shards = nil
}

// Encoder turns byte streams into shards. It is safe for concurrent use;
// each Encode call runs its own workers.
type Encoder struct {
	p       Params
	rs      reedsolomon.Encoder
	workers int
	rand    io.Reader // source of layout salts
	bufs    *bufList
}

// EncoderOption configures an Encoder.
type EncoderOption func(*Encoder) error

// WithWorkers sets how many segments are encoded in parallel (default
// GOMAXPROCS). Memory grows with it: about 2+m/k segment sizes per segment in flight.
func WithWorkers(n int) EncoderOption {
	return func(e *Encoder) error {
		if n < 1 {
			return fmt.Errorf("codec: %d workers: need at least one", n)
		}
		e.workers = n
		return nil
	}
}

// NewEncoder returns an encoder for p.
func NewEncoder(p Params, opts ...EncoderOption) (*Encoder, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	rs, err := newRS(p.K, p.M)
	if err != nil {
		return nil, err
	}
	e := &Encoder{p: p, rs: rs, workers: runtime.GOMAXPROCS(0), rand: rand.Reader}
	e.bufs = &bufList{cap: e.dataCap()}
	for _, o := range opts {
		if err := o(e); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Params returns the encoder's parameters.
func (e *Encoder) Params() Params { return e.p }

// newRS builds the Reed-Solomon coder. Segments are already encoded in
// parallel, so the coder's own goroutines only help wide codes on large
// shards; docs/benchmarks.md has the measurement behind these options.
func newRS(k, m int) (reedsolomon.Encoder, error) {
	if m == 0 {
		// Without parity there is nothing to compute; a nil coder marks it.
		return nil, nil
	}
	rs, err := reedsolomon.New(k, m)
	if err != nil {
		return nil, fmt.Errorf("codec: reed-solomon %d+%d: %w", k, m, err)
	}
	return rs, nil
}

// segBufs are the buffers of one segment in flight.
type segBufs struct {
	// in holds the mode byte then the plaintext, read straight from the
	// stream; stored segments are sealed in place here, so incompressible
	// data is never copied.
	in  []byte
	alt []byte // mode byte and compressed body, when compression pays
	par []byte // m parity payloads
}

// bufList hands out segment buffers. It is a sync.Pool so buffers survive
// from one Encode call to the next while the encoder is busy, yet an idle
// encoder's buffers go back to the garbage collector.
type bufList struct {
	pool sync.Pool
	cap  int
}

func (f *bufList) get() *segBufs {
	if b, ok := f.pool.Get().(*segBufs); ok {
		return b
	}
	return &segBufs{in: make([]byte, f.cap)}
}

func (f *bufList) put(b *segBufs) { f.pool.Put(b) }

// dataCap is the capacity a sealed segment needs: mode byte, the largest
// stored body, the tag and padding to a multiple of k.
func (e *Encoder) dataCap() int { return 1 + e.p.SegmentSize + tagSize + e.p.K }

type encJob struct {
	seg   uint64
	last  bool
	bufs  *segBufs
	n     int
	out   *Segment
	err   error
	ready chan struct{}
}

// Encode reads r to its end and encodes it segment by segment, calling sink
// once per segment in order from the calling goroutine. Segments are encoded
// in parallel, so memory stays bounded by the number of workers whatever the
// stream's length. It returns the file's Layout once every segment has been
// accepted by sink. If sink or r fails, Encode stops and returns that error.
func (e *Encoder) Encode(ctx context.Context, r io.Reader, key Key, sink func(*Segment) error) (*Layout, error) {
	l := &Layout{Params: e.p}
	if _, err := io.ReadFull(e.rand, l.Salt[:]); err != nil {
		return nil, fmt.Errorf("codec: salt: %w", err)
	}
	aead, err := newSegmentAEAD(key, l.Salt)
	if err != nil {
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan *encJob, e.workers)
	order := make(chan *encJob, e.workers)

	bufs := e.bufs
	g.Go(func() error {
		defer close(order)
		defer close(jobs)
		return e.readSegments(gctx, r, bufs, jobs, order)
	})
	for range e.workers {
		g.Go(func() error {
			w, err := e.newEncWorker(aead, bufs)
			if err != nil {
				return err
			}
			for j := range jobs {
				j.out, j.err = w.encode(j)
				close(j.ready)
			}
			return nil
		})
	}

	// The first error wins: a job's or the sink's here, the reader's or a
	// worker's from g.Wait. Either way the queue is drained so the reader
	// can finish.
	var firstErr error
	for j := range order {
		if firstErr != nil {
			continue
		}
		select {
		case <-j.ready:
		case <-gctx.Done():
			// Cancelled: g.Wait below says why.
			firstErr = errStopped
			continue
		}
		if j.err != nil {
			firstErr = j.err
			continue
		}
		seg := j.out
		l.Size += int64(seg.PlainLen)
		info := SegmentInfo{CipherLen: seg.CipherLen, IDs: make([]ShardID, len(seg.Shards))}
		for i := range seg.Shards {
			info.IDs[i] = seg.Shards[i].ID
		}
		l.Segments = append(l.Segments, info)
		if err := sink(seg); err != nil {
			firstErr = err
		}
	}
	werr := g.Wait()
	if firstErr == errStopped || (firstErr == nil && werr != nil) {
		firstErr = werr
		if firstErr == nil {
			firstErr = ctx.Err()
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return l, nil
}

// errStopped marks a sink loop that stopped because the group was cancelled.
var errStopped = errors.New("codec: encode stopped")

// readSegments cuts r into segments and queues them, looking one segment
// ahead so the last one is known before it is sealed.
func (e *Encoder) readSegments(ctx context.Context, r io.Reader, bufs *bufList, jobs, order chan<- *encJob) error {
	seg := e.p.SegmentSize
	next := bufs.get()
	n, rerr := io.ReadFull(r, next.in[1:1+seg])
	for index := uint64(0); ; index++ {
		cur, curN := next, n
		last := false
		switch rerr {
		case io.EOF, io.ErrUnexpectedEOF:
			last = true
		case nil:
			next = bufs.get()
			n, rerr = io.ReadFull(r, next.in[1:1+seg])
			if rerr == io.EOF {
				last = true
				bufs.put(next)
			}
		default:
			return fmt.Errorf("codec: read segment %d: %w", index, rerr)
		}
		j := &encJob{seg: index, last: last, bufs: cur, n: curN, ready: make(chan struct{})}
		for _, ch := range []chan<- *encJob{order, jobs} {
			select {
			case ch <- j:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if last {
			return nil
		}
	}
}

// encWorker holds one worker's reusable state.
type encWorker struct {
	e      *Encoder
	bufs   *bufList
	aead   cipher.AEAD
	comp   *compressor
	hasher *blake3.Hasher
}

func (e *Encoder) newEncWorker(aead cipher.AEAD, bufs *bufList) (*encWorker, error) {
	comp, err := newCompressor(e.p.Compression)
	if err != nil {
		return nil, err
	}
	return &encWorker{e: e, bufs: bufs, aead: aead, comp: comp, hasher: blake3.New()}, nil
}

// encode compresses, seals, erasure-codes and hashes one segment.
func (w *encWorker) encode(j *encJob) (*Segment, error) {
	p := w.e.p
	b := j.bufs
	payload := b.in[:1+j.n]
	payload[0] = modeStored
	if out, ok := w.comp.tryCompress(b.alt[:0], payload[1:]); ok {
		b.alt = out[:0]
		payload = out
	}
	nonce := segmentNonce(j.seg, j.last)
	sealed := w.aead.Seal(payload[:0], nonce[:], payload, []byte(segmentAAD))
	if len(sealed) > 1<<32-1 {
		return nil, fmt.Errorf("codec: segment %d too large", j.seg)
	}
	cipherLen := len(sealed)
	shardLen := (cipherLen + p.K - 1) / p.K
	if cap(sealed) < p.K*shardLen {
		sealed = append(sealed, make([]byte, p.K*shardLen-cipherLen)...)
	}
	data := sealed[:p.K*shardLen]
	clear(data[cipherLen:])
	if need := p.M * shardLen; cap(b.par) < need {
		b.par = make([]byte, need, p.M*((w.e.dataCap()+p.K-1)/p.K+1))
	}
	par := b.par[:p.M*shardLen]

	payloads := make([][]byte, p.Total())
	for i := range p.K {
		payloads[i] = data[i*shardLen : (i+1)*shardLen : (i+1)*shardLen]
	}
	for i := range p.M {
		payloads[p.K+i] = par[i*shardLen : (i+1)*shardLen : (i+1)*shardLen]
	}
	if w.e.rs != nil && shardLen > 0 {
		if err := w.e.rs.Encode(payloads); err != nil {
			return nil, fmt.Errorf("codec: segment %d: reed-solomon: %w", j.seg, err)
		}
	}
	seg := &Segment{
		Index:     j.seg,
		Last:      j.last,
		PlainLen:  j.n,
		CipherLen: cipherLen,
		Shards:    make([]Shard, p.Total()),
	}
	for i := range seg.Shards {
		s := &seg.Shards[i]
		s.Header = Header{
			Version: FormatVersion, K: uint8(p.K), M: uint8(p.M), Index: uint8(i),
			Segment: j.seg, CipherLen: uint32(cipherLen), PayloadLen: uint32(shardLen),
		}
		s.Payload = payloads[i]
		s.seal(w.hasher)
	}
	seg.release = func() { w.bufs.put(b) }
	return seg, nil
}
