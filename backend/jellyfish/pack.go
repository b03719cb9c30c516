package jellyfish

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/rclone/rclone/fs"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/objref"
	"github.com/jellyfish-p2p/jellyfish/codec"
)

// Files larger than inline_max and no larger than pack_max are packed: their
// bytes are appended to the session's open pack, which is stored as one
// object once it reaches pack_size and at every flush, before the batch
// that refers to it. A sync of many small files is then a few objects, not
// k+m shards per file.

// defaultPackMax is the largest file packed by default.
const defaultPackMax = 1 << 20

// maxPackMax bounds pack_max: a packed file is read into memory.
const maxPackMax = 16 << 20

// defaultPackSize is the size at which an open pack is stored.
const defaultPackSize = 16 << 20

// packSegmentSize is the segment size of packs: reading one packed file
// fetches only the segments covering it.
const packSegmentSize = 1 << 20

// maxSealedPacks bounds the packs held in memory waiting for their upload;
// beyond it writes fail until uploads succeed again.
const maxSealedPacks = 4

// packedTag opens an entry's content that refers to bytes in a pack.
const packedTag = objref.TagMember

// member is a packed file's bytes: a range of a pack's original layout.
type member struct {
	pack   ns.PackID
	off, n int64
}

func (m member) marshal() []byte {
	return objref.Member{Pack: objref.PackID(m.pack), Off: m.off, N: m.n}.Marshal()
}

// parseMember decodes a packed entry's Content; ok is false when content
// is not a pack member.
func parseMember(content []byte) (m member, ok bool, err error) {
	if len(content) == 0 || content[0] != objref.TagMember {
		return m, false, nil
	}
	c, err := objref.Parse(content)
	if err != nil {
		return m, true, err
	}
	return member{ns.PackID(c.Member.Pack), c.Member.Off, c.Member.N}, true, nil
}

// packBuf is a pack being filled, or full and waiting for its upload.
type packBuf struct {
	id  ns.PackID
	buf []byte
}

// packer holds the packs not yet stored and the records of those stored
// but not yet published in a batch.
type packer struct {
	mu      sync.Mutex
	open    *packBuf
	sealed  []*packBuf
	records []ns.Pack

	uploadMu sync.Mutex // one upload pass at a time

	// liveSeen is, per pack of this device, the extents referred to when a
	// CleanUp last looked, and when: bytes are dropped only once they have
	// been unreferenced at two looks cleanup_grace apart.
	liveSeen map[ns.PackID]liveLook
}

type liveLook struct {
	rev  uint64
	when time.Time
	live []ns.Extent
}

// inMemory returns the packs not stored yet: the sealed ones and the open
// one. The caller holds p.mu.
func (p *packer) inMemory() []*packBuf {
	if p.open == nil {
		return p.sealed
	}
	return append(slices.Clip(p.sealed), p.open)
}

func newPackID() ns.PackID {
	var id ns.PackID
	rand.Read(id[:])
	return id
}

// packAdd appends data to the open pack and returns where it lies. The
// writer whose file fills a pack stores it; at most maxSealedPacks full
// packs wait in memory, beyond which writers wait for the uploads.
func (s *session) packAdd(ctx context.Context, data []byte) (member, error) {
	p := &s.packs
	p.mu.Lock()
	if len(p.sealed) >= maxSealedPacks {
		p.mu.Unlock()
		if err := s.storePacks(ctx, false); err != nil {
			return member{}, err
		}
		p.mu.Lock()
	}
	sealed := false
	if p.open != nil && len(p.open.buf) > 0 && len(p.open.buf)+len(data) > s.packSize() {
		p.sealed = append(p.sealed, p.open)
		p.open = nil
		sealed = true
	}
	if p.open == nil {
		p.open = &packBuf{id: newPackID(), buf: make([]byte, 0, min(s.packSize(), 1<<20))}
	}
	m := member{pack: p.open.id, off: int64(len(p.open.buf)), n: int64(len(data))}
	if need := len(p.open.buf) + len(data); need > cap(p.open.buf) {
		// Grow by doubling up to the pack size: append's gentler growth
		// for large slices copied a 16 MiB pack a dozen times.
		nb := make([]byte, len(p.open.buf), min(max(need, 2*cap(p.open.buf)), max(need, s.packSize())))
		copy(nb, p.open.buf)
		p.open.buf = nb
	}
	p.open.buf = append(p.open.buf, data...)
	p.mu.Unlock()
	// The writer that sealed a pack stores it, unless an upload is under
	// way (which takes the sealed packs in turn); the other writers go on
	// filling the next pack meanwhile.
	if sealed && p.uploadMu.TryLock() {
		err := s.storePacksLocked(ctx)
		p.uploadMu.Unlock()
		if err != nil {
			// The bytes stay in their pack, which a later flush stores.
			fs.Debugf(nil, "jellyfish: storing a full pack: %v (retried at the next flush)", err)
		}
	}
	return m, nil
}

// packSize returns pack_size, at most maxPackSize: packs are held in
// memory while they fill and wait for their upload (up to 1+maxSealedPacks
// of them), and repacking reads one back whole.
func (s *session) packSize() int {
	if s.opt.PackSize <= 0 {
		return defaultPackSize
	}
	return int(min(s.opt.PackSize, maxPackSize))
}

// maxPackSize bounds pack_size.
const maxPackSize = 64 << 20

// storePacks stores the sealed packs (and the open one, with sealOpen) as
// objects, records them in the tree and queues their records for the next
// batch. On error the packs not stored stay queued.
func (s *session) storePacks(ctx context.Context, sealOpen bool) error {
	p := &s.packs
	p.uploadMu.Lock()
	defer p.uploadMu.Unlock()
	p.mu.Lock()
	if sealOpen && p.open != nil && len(p.open.buf) > 0 {
		p.sealed = append(p.sealed, p.open)
		p.open = nil
	}
	p.mu.Unlock()
	return s.storePacksLocked(ctx)
}

// storePacksLocked stores the sealed packs; the caller holds uploadMu.
func (s *session) storePacksLocked(ctx context.Context) error {
	p := &s.packs
	for {
		p.mu.Lock()
		if len(p.sealed) == 0 {
			p.mu.Unlock()
			return nil
		}
		pb := p.sealed[0]
		p.mu.Unlock()
		rec, err := s.storePack(ctx, pb.id, pb.buf)
		if err != nil {
			return fmt.Errorf("store pack: %w", err)
		}
		p.mu.Lock()
		p.sealed = p.sealed[1:]
		p.records = append(p.records, rec)
		p.mu.Unlock()
		fs.Debugf(nil, "jellyfish: stored pack %s (%d bytes)", pb.id, len(pb.buf))
	}
}

// storePack stores data as the first revision of pack id and applies its
// record.
func (s *session) storePack(ctx context.Context, id ns.PackID, data []byte) (ns.Pack, error) {
	rb, err := s.putPackObject(ctx, data)
	if err != nil {
		return ns.Pack{}, err
	}
	rec := ns.Pack{ID: id, Device: s.device, Rev: 1, Size: int64(len(data)), Ref: rb}
	// Readers see it at once; the next batch publishes it.
	s.log.applyPending(rec)
	return rec, nil
}

// putPackObject stores data as a pack object and returns its encoded
// reference.
func (s *session) putPackObject(ctx context.Context, data []byte) ([]byte, error) {
	ref, err := s.store.Put(ctx, s.packEnc, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return ref.Marshal()
}

// takePackRecords returns the pack records waiting for a batch.
func (s *session) takePackRecords() []ns.Pack {
	s.packs.mu.Lock()
	defer s.packs.mu.Unlock()
	r := s.packs.records
	s.packs.records = nil
	return r
}

// restorePackRecords puts back records a failed flush did not publish.
func (s *session) restorePackRecords(r []ns.Pack) {
	s.packs.mu.Lock()
	defer s.packs.mu.Unlock()
	s.packs.records = append(r, s.packs.records...)
}

// openMember returns a reader of bytes [off, off+limit) of a packed file
// (limit < 0: to its end).
func (s *session) openMember(ctx context.Context, m member, off, limit int64) (io.ReadCloser, error) {
	if off > m.n {
		off = m.n
	}
	n := m.n - off
	if limit >= 0 && limit < n {
		n = limit
	}
	// A pack not stored yet is read from memory.
	s.packs.mu.Lock()
	for _, pb := range s.packs.inMemory() {
		if pb.id == m.pack && m.off+m.n <= int64(len(pb.buf)) {
			b := bytes.Clone(pb.buf[m.off+off : m.off+off+n])
			s.packs.mu.Unlock()
			return io.NopCloser(bytes.NewReader(b)), nil
		}
	}
	// A pack stored but not yet published in a batch: its record waits.
	var rec *ns.Pack
	for i := range s.packs.records {
		if r := &s.packs.records[i]; r.ID == m.pack && (rec == nil || r.Rev > rec.Rev) {
			c := *r
			rec = &c
		}
	}
	s.packs.mu.Unlock()
	if v, err := s.log.view().Pack(ctx, m.pack); err != nil {
		return nil, err
	} else if v != nil && (rec == nil || v.Rev > rec.Rev) {
		rec = v
	}
	if rec == nil {
		return nil, fmt.Errorf("jellyfish: pack %s is not in the file list", m.pack)
	}
	at, ok := rec.Locate(m.off, m.n)
	if !ok {
		return nil, fmt.Errorf("jellyfish: pack %s revision %d no longer holds bytes %d+%d", m.pack, rec.Rev, m.off, m.n)
	}
	ref, err := UnmarshalObjRef(rec.Ref)
	if err != nil {
		return nil, err
	}
	// Neighbouring files share segments: read through the segment cache,
	// so reading a folder of packed files fetches each segment once.
	l := ref.Layout
	buf := make([]byte, 0, n)
	for start, end := at+off, at+off+n; start < end; {
		seg := int(start / int64(l.SegmentSize))
		data, err := s.packSegs.get(segKey{m.pack, rec.Rev, seg}, func() ([]byte, error) {
			rc, err := s.store.Open(ctx, ref, int64(seg)*int64(l.SegmentSize), int64(l.PlainLen(seg)))
			if err != nil {
				return nil, err
			}
			defer rc.Close()
			b := make([]byte, l.PlainLen(seg))
			if _, err := io.ReadFull(rc, b); err != nil {
				return nil, err
			}
			return b, nil
		})
		if err != nil {
			return nil, err
		}
		lo := start - int64(seg)*int64(l.SegmentSize)
		hi := min(int64(len(data)), end-int64(seg)*int64(l.SegmentSize))
		if lo >= hi {
			return nil, fmt.Errorf("jellyfish: pack %s segment %d holds %d bytes, not byte %d", m.pack, seg, len(data), lo)
		}
		buf = append(buf, data[lo:hi]...)
		start += hi - lo
	}
	return io.NopCloser(bytes.NewReader(buf)), nil
}

// segCacheSize is how many decoded pack segments a session keeps (of at
// most packSegmentSize bytes each).
const segCacheSize = 16

// segKey names one decoded segment of one revision of a pack.
type segKey struct {
	pack ns.PackID
	rev  uint64
	seg  int
}

// segCache keeps the most recently used decoded pack segments, and makes
// concurrent readers of one segment share a single fetch.
type segCache struct {
	mu      sync.Mutex
	entries map[segKey]*segEntry
	lru     []segKey // least recently used first
}

type segEntry struct {
	ready chan struct{}
	data  []byte
	err   error
}

// get returns the segment key, loading it with load unless it is cached
// or being loaded. Failures are not cached.
func (c *segCache) get(key segKey, load func() ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[segKey]*segEntry{}
	}
	e := c.entries[key]
	if e != nil {
		c.touch(key)
		c.mu.Unlock()
		<-e.ready
		return e.data, e.err
	}
	e = &segEntry{ready: make(chan struct{})}
	c.entries[key] = e
	c.lru = append(c.lru, key)
	for len(c.lru) > segCacheSize {
		delete(c.entries, c.lru[0])
		c.lru = c.lru[1:]
	}
	c.mu.Unlock()
	e.data, e.err = load()
	close(e.ready)
	if e.err != nil {
		c.mu.Lock()
		if c.entries[key] == e {
			delete(c.entries, key)
			c.drop(key)
		}
		c.mu.Unlock()
	}
	return e.data, e.err
}

// touch moves key to the most recently used end. The caller holds c.mu.
func (c *segCache) touch(key segKey) {
	c.drop(key)
	c.lru = append(c.lru, key)
}

// drop removes key from the use order. The caller holds c.mu.
func (c *segCache) drop(key segKey) {
	for i, k := range c.lru {
		if k == key {
			c.lru = append(c.lru[:i], c.lru[i+1:]...)
			return
		}
	}
}

// packLive returns, per pack, the sorted distinct extents live entries
// refer to (conflicting versions included). It reads the whole namespace.
func (s *session) packLive(ctx context.Context) (map[ns.PackID][]ns.Extent, error) {
	live := map[ns.PackID][]ns.Extent{}
	err := s.log.view().Walk(ctx, "", func(e ns.Entry) error {
		if m, ok, err := parseMember(e.Content); ok && err == nil {
			live[m.pack] = append(live[m.pack], ns.Extent{Off: m.off, Len: m.n})
		}
		return nil
	})
	for id, xs := range live {
		live[id] = normalize(xs)
	}
	return live, err
}

// normalize sorts extents and merges duplicates and overlaps.
func normalize(xs []ns.Extent) []ns.Extent {
	sort.Slice(xs, func(i, j int) bool { return xs[i].Off < xs[j].Off })
	out := xs[:0]
	for _, x := range xs {
		if x.Len <= 0 {
			continue
		}
		if k := len(out) - 1; k >= 0 && x.Off <= out[k].Off+out[k].Len {
			out[k].Len = max(out[k].Len, x.Off+x.Len-out[k].Off)
			continue
		}
		out = append(out, x)
	}
	return out
}

// union merges two normalized extent lists.
func union(a, b []ns.Extent) []ns.Extent {
	return normalize(append(append([]ns.Extent(nil), a...), b...))
}

// current returns the extents of the pack's original layout its current
// object still holds.
func current(p *ns.Pack) []ns.Extent {
	if len(p.Ref) == 0 {
		return nil
	}
	if len(p.Map) == 0 {
		return []ns.Extent{{Off: 0, Len: p.Size}}
	}
	out := make([]ns.Extent, len(p.Map))
	for i, x := range p.Map {
		out[i] = ns.Extent{Off: x.Off, Len: x.Len}
	}
	return out
}

// intersect returns the parts of a (normalized) that lie inside b.
func intersect(a, b []ns.Extent) []ns.Extent {
	var out []ns.Extent
	for _, x := range a {
		for _, y := range b {
			lo, hi := max(x.Off, y.Off), min(x.Off+x.Len, y.Off+y.Len)
			if lo < hi {
				out = append(out, ns.Extent{Off: lo, Len: hi - lo})
			}
		}
	}
	return normalize(out)
}

func total(xs []ns.Extent) (n int64) {
	for _, x := range xs {
		n += x.Len
	}
	return n
}

// repack rewrites this device's packs: those in which at most half the
// bytes are still referred to, and those in small objects (holding under a
// quarter of pack_size), which are merged into shared objects when there
// are at least two such objects — a device that writes a few files now
// and then flushes a small pack each time. The bytes to keep are read
// back and stored as new objects of up to pack_size; each pack is
// republished with a map of where its bytes moved (several packs may
// share one object), or dropped when nothing is kept. Bytes are only
// dropped after being unreferenced at two looks at least grace apart, so
// a process that read the file list earlier, or a device whose copy of
// the file is not yet flushed, has that long to show its reference. The
// replaced objects become CleanUp candidates. It returns how many packs it
// rewrote.
func (s *session) repack(ctx context.Context, grace time.Duration) (int, error) {
	live, err := s.packLive(ctx)
	if err != nil {
		return 0, err
	}
	now := s.now()
	p := &s.packs
	smallPack := int64(s.packSize()) / 4
	var shrink, small []packWork
	smallObjects := map[string]bool{}
	// An object is small by what all the packs in it hold, so merged
	// objects past the threshold are left alone.
	var own []ns.Pack
	objBytes := map[string]int64{}
	err = s.log.view().Packs(ctx, func(rec ns.Pack) error {
		if rec.Device == s.device && len(rec.Ref) > 0 {
			own = append(own, rec)
			objBytes[string(rec.Ref)] += total(current(&rec))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, rec := range own {
		cur := current(&rec)
		liveNow := intersect(live[rec.ID], cur)
		p.mu.Lock()
		if p.liveSeen == nil {
			p.liveSeen = map[ns.PackID]liveLook{}
		}
		look, seen := p.liveSeen[rec.ID]
		if !seen || look.rev != rec.Rev {
			look = liveLook{rev: rec.Rev, when: now, live: liveNow}
			p.liveSeen[rec.ID] = look
		}
		aged := now.Sub(look.when) >= grace
		keep := cur
		if aged {
			keep = intersect(union(liveNow, look.live), cur)
			// This look replaces the old one unless the pack is rewritten
			// below, so bytes let go since then count from now, and bytes
			// dead at both looks stay droppable.
			p.liveSeen[rec.ID] = liveLook{rev: rec.Rev, when: now, live: liveNow}
		}
		p.mu.Unlock()
		switch w := (packWork{rec: rec, keep: keep}); {
		case aged && total(keep)*2 <= total(cur):
			shrink = append(shrink, w)
		case objBytes[string(rec.Ref)] < smallPack:
			small = append(small, w)
			smallObjects[string(rec.Ref)] = true
		}
	}
	work := shrink
	if len(smallObjects) >= 2 {
		work = append(work, small...)
	}
	var errs []error
	repacked := 0
	var group []packWork
	var groupBytes int64
	flush := func() {
		if len(group) == 0 {
			return
		}
		if err := s.rewritePacks(ctx, group); err != nil {
			errs = append(errs, err)
		} else {
			repacked += len(group)
		}
		group, groupBytes = nil, 0
	}
	for _, w := range work {
		if len(w.keep) == 0 {
			if err := s.rewritePacks(ctx, []packWork{w}); err != nil {
				errs = append(errs, err)
			} else {
				repacked++
			}
			continue
		}
		if n := total(w.keep); groupBytes > 0 && groupBytes+n > int64(s.packSize()) {
			flush()
		}
		group = append(group, w)
		groupBytes += total(w.keep)
	}
	flush()
	if repacked > 0 {
		p.mu.Lock()
		for _, w := range work {
			delete(p.liveSeen, w.rec.ID)
		}
		p.mu.Unlock()
	}
	return repacked, errors.Join(errs...)
}

// packWork is a pack to rewrite and the extents of it to keep.
type packWork struct {
	rec  ns.Pack
	keep []ns.Extent
}

// rewritePacks stores the kept extents of every pack of group in one new
// object and republishes each pack as its next revision pointing there
// (a pack keeping nothing is republished dropped).
func (s *session) rewritePacks(ctx context.Context, group []packWork) error {
	var buf []byte
	maps := make([][]ns.Extent, len(group))
	// Packs sharing an old object come one after the other, so only the
	// object last read is held.
	slices.SortStableFunc(group, func(a, b packWork) int { return bytes.Compare(a.rec.Ref, b.rec.Ref) })
	var lastRef, data []byte
	olds := map[string]*ObjRef{} // old objects let go, once each
	for i, w := range group {
		old, err := UnmarshalObjRef(w.rec.Ref)
		if err != nil {
			return fmt.Errorf("repack %s: %w", w.rec.ID, err)
		}
		olds[string(w.rec.Ref)] = old
		if len(w.keep) == 0 {
			continue
		}
		if !bytes.Equal(lastRef, w.rec.Ref) {
			rc, err := s.store.Open(ctx, old, 0, -1)
			if err != nil {
				return fmt.Errorf("repack %s: %w", w.rec.ID, err)
			}
			data, err = io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return fmt.Errorf("repack %s: %w", w.rec.ID, err)
			}
			lastRef = w.rec.Ref
		}
		for _, x := range w.keep {
			at, ok := w.rec.Locate(x.Off, x.Len)
			if !ok || at+x.Len > int64(len(data)) {
				return fmt.Errorf("repack %s: extent %d+%d not in revision %d", w.rec.ID, x.Off, x.Len, w.rec.Rev)
			}
			maps[i] = append(maps[i], ns.Extent{Off: x.Off, Len: x.Len, At: int64(len(buf))})
			buf = append(buf, data[at:at+x.Len]...)
		}
	}
	var rb []byte
	if len(buf) > 0 {
		var err error
		if rb, err = s.putPackObject(ctx, buf); err != nil {
			return fmt.Errorf("repack: %w", err)
		}
	}
	var recs []ns.Pack
	for i, w := range group {
		next := ns.Pack{ID: w.rec.ID, Device: s.device, Rev: w.rec.Rev + 1, Size: w.rec.Size}
		if len(maps[i]) > 0 {
			next.Ref, next.Map = rb, maps[i]
		}
		recs = append(recs, next)
		fs.Debugf(nil, "jellyfish: repacked %s: kept %d of %d bytes", w.rec.ID, total(w.keep), total(current(&w.rec)))
	}
	s.packs.mu.Lock()
	s.packs.records = append(s.packs.records, recs...)
	s.packs.mu.Unlock()
	for _, old := range olds {
		s.clean.letGo(old)
	}
	return nil
}

// packsStored returns the bytes the stored packs' shards occupy (an object
// shared by several packs counted once) and how many packs and objects
// there are. It reads every pack record.
func (s *session) packsStored(ctx context.Context) (bytes int64, packs, objects int, err error) {
	seen := map[string]bool{}
	err = s.log.view().Packs(ctx, func(p ns.Pack) error {
		if len(p.Ref) == 0 {
			return nil
		}
		packs++
		if seen[string(p.Ref)] {
			return nil
		}
		seen[string(p.Ref)] = true
		if ref, err := UnmarshalObjRef(p.Ref); err == nil {
			bytes += ref.StoredBytes()
			objects++
		}
		return nil
	})
	return bytes, packs, objects, err
}

// packEncoder returns the encoder of packs: the file parameters with
// segments of packSegmentSize, whatever the files' segment size, so a
// pack's reference stays under a few hundred KiB (64 segments at most)
// and fits a checkpoint node.
func packEncoder(p codec.Params) (*codec.Encoder, error) {
	p.SegmentSize = packSegmentSize
	return codec.NewEncoder(p)
}

// packStatus summarizes packs for `backend status`: how many are stored,
// the bytes their shards occupy and the bytes waiting in memory.
func (s *session) packStatus(ctx context.Context) map[string]int64 {
	s.packs.mu.Lock()
	waiting := int64(0)
	for _, pb := range s.packs.inMemory() {
		waiting += int64(len(pb.buf))
	}
	s.packs.mu.Unlock()
	storedBytes, packs, objects, _ := s.packsStored(ctx)
	return map[string]int64{"stored": int64(packs), "objects": int64(objects), "stored_bytes": storedBytes, "waiting_bytes": waiting}
}
