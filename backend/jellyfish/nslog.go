package jellyfish

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rclone/rclone/fs"
	"golang.org/x/sync/errgroup"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/journal"
	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns/btree"
	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/objref"
)

// metaStore keeps the namespace's own objects — log batches and checkpoint
// nodes — and hands back their encoded references. The real one stores
// them as objects of the metadata redundancy, with a local copy in the
// device slot (so Get of an object this device wrote or read is local).
type metaStore interface {
	Put(ctx context.Context, data []byte) (ref []byte, err error)
	Get(ctx context.Context, ref []byte) ([]byte, error)
	// Forget drops the local copy of an object this device no longer
	// needs (it stays on the network until it is deleted).
	Forget(ref []byte)
}

// headStore reads and publishes the heads of the account's devices.
type headStore interface {
	// Devices lists the account's devices.
	Devices(ctx context.Context) ([]ns.DeviceID, error)
	// Read returns a device's head, or nil if it has none.
	Read(ctx context.Context, dev ns.DeviceID) (*ns.Head, error)
	// Publish signs and stores this device's head.
	Publish(ctx context.Context, h *ns.Head) error
	// Local returns the head this device last published as kept locally,
	// or nil.
	Local() *ns.Head
}

// journalWriter is what the log needs of the journal (package journal);
// a nil one keeps no journal.
type journalWriter interface {
	Write(es []ns.Entry, data []journal.Data) (journal.Ticket, error)
	Sync(t journal.Ticket) error
	Rotate() (uint64, error)
	DropThrough(seg uint64) error
}

// logConfig tunes the namespace log.
type logConfig struct {
	// checkpointEvery is how many batches a device writes between
	// checkpoints.
	checkpointEvery int
	// batchBytes bounds the entries of one batch (encoded, roughly), so a
	// batch is one segment and its reference small.
	batchBytes int
	// maxLogLayer: a log layer holding more paths than this is folded
	// into a checkpoint at the next flush that stores anything.
	maxLogLayer int
	// nodeSize is the target size of checkpoint nodes.
	nodeSize int
	// cacheNodes is the number of decoded checkpoint nodes kept.
	cacheNodes int
}

func (c *logConfig) defaults() {
	if c.checkpointEvery <= 0 {
		c.checkpointEvery = 32
	}
	if c.batchBytes <= 0 {
		c.batchBytes = 1 << 20
	}
	if c.maxLogLayer <= 0 {
		c.maxLogLayer = 200_000
	}
	if c.nodeSize <= 0 {
		c.nodeSize = btree.DefaultTargetNodeSize
	}
	if c.cacheNodes == 0 {
		c.cacheNodes = 4096
	}
}

// ownLog is this device's own log as far as it is published.
type ownLog struct {
	seq   uint64 // newest batch
	hlc   uint64 // newest stamp in it
	tip   []byte // reference of batch seq
	prevs []ns.BatchRef
	// cp is the device's latest checkpoint, repeated in each batch.
	cp        *ns.CheckpointRef
	collected uint64
}

// sinceCheckpoint returns how many batches the device wrote since its
// checkpoint.
func (o *ownLog) sinceCheckpoint() uint64 {
	if o.cp == nil {
		return o.seq
	}
	return o.seq - min(o.seq, o.cp.Seq)
}

// nsLog is the namespace as this device sees it, and this device's log:
// it loads the namespace (a checkpoint, then the batches written since),
// polls other devices' heads, takes this device's changes (commit) and
// stores them (flush), folding the log into a new checkpoint now and then.
//
// The namespace is three parts (ns.View): the checkpoint it was loaded
// from or last wrote (base, a tree read on demand), the log layer (the
// batches of every device applied since, this device's flushed ones
// included) and the pending layer (changes not flushed yet).
type nsLog struct {
	device  ns.DeviceID
	meta    metaStore
	heads   headStore
	journal journalWriter
	clock   *ns.Clock
	now     func() time.Time
	cfg     logConfig

	mu      sync.RWMutex // guards the fields below
	base    *btree.Tree  // nil: no checkpoint
	baseCP  *ns.CheckpointRef
	logL    *ns.Tree
	pend    *ns.Tree
	pending []ns.Entry
	// applied is, per device, how far its log is in base and logL.
	applied map[ns.DeviceID]ns.Cover
	own     ownLog
	// upgrade: the namespace was loaded from the flat format; the next
	// flush writes a checkpoint.
	upgrade bool
	// restored is this device's head as kept in its slot, when load found
	// the network without it (or with an older one): the session publishes
	// it again.
	restored *ns.Head
	// changed is called with the paths whose entries changed (ChangeNotify).
	changed func(paths []string)
	// onCommit is called with a committed entry and what its path showed
	// before (the old contents go to CleanUp).
	onReplace func(old, new *ns.Entry)
	// onGarbage receives references of objects the log stopped needing:
	// replaced checkpoint nodes and checkpoints not published.
	onGarbage func(refs [][]byte)
	// closed: the session was shut down; commits are refused.
	closed bool
	// forked: another copy of this slot published this device's head;
	// nothing more is flushed (see checkNotForked).
	forked bool
	// doubt is the last flush if its head's put failed: the head may
	// have reached the network all the same (see unsureFlush).
	doubt *unsureFlush
	// schedule starts a flush after a delay (unless one is due sooner).
	schedule func(time.Duration)
	// beforePublish, if set, is called before a flush stores anything it
	// will publish; an error stops the flush (the changes stay pending).
	// The session makes sure there that the account record lists this
	// device: batches of a device not listed are read by nobody.
	beforePublish func(context.Context) error

	// found are holders of shards named in batches fetched but not yet
	// applied (a device's batches are applied once all are fetched): an
	// earlier batch whose shards repair moved may be readable through a
	// later one's locations.
	foundMu sync.Mutex
	found   map[ns.ShardID][][]byte

	flushMu sync.Mutex // one flush at a time
	pollMu  sync.Mutex // one poll (or checkpoint) at a time
	// baseWas is the root the checkpoint being written was built on;
	// guarded by flushMu.
	baseWas []byte
	// wantCP: the flush under way writes a checkpoint whatever its
	// cadence says (flushCheckpoint); guarded by flushMu.
	wantCP bool
	// listed is the account record's device list as the last load or
	// poll read it; guarded by pollMu.
	listed []ns.DeviceID
}

func newNSLog(dev ns.DeviceID, meta metaStore, heads headStore, clock *ns.Clock, cfg logConfig) *nsLog {
	cfg.defaults()
	return &nsLog{
		device: dev, meta: meta, heads: heads, clock: clock, now: time.Now, cfg: cfg,
		logL: ns.NewTree(), pend: ns.NewTree(), applied: map[ns.DeviceID]ns.Cover{},
		changed: func([]string) {}, onReplace: func(_, _ *ns.Entry) {}, onGarbage: func([][]byte) {},
		schedule: func(time.Duration) {},
	}
}

// view returns the namespace as this device sees it now.
func (l *nsLog) view() ns.View {
	l.mu.RLock()
	defer l.mu.RUnlock()
	v := ns.View{Layers: []*ns.Tree{l.logL, l.pend}}
	if l.base != nil {
		v.Base = l.base
	}
	return v
}

// treeConfig returns the configuration of checkpoint trees.
func (l *nsLog) treeConfig() btree.Config {
	return btree.Config{
		Store:          nodeStore{l.meta},
		TargetNodeSize: l.cfg.nodeSize,
		Summarize:      func(k, v []byte) btree.Summary { return btree.Summary(summarize(k, v)) },
		CacheNodes:     l.cfg.cacheNodes,
	}
}

// nodeStore stores checkpoint nodes as metadata objects.
type nodeStore struct{ m metaStore }

func (s nodeStore) Put(ctx context.Context, node []byte) ([]byte, error) { return s.m.Put(ctx, node) }
func (s nodeStore) Get(ctx context.Context, ref []byte) ([]byte, error) {
	b, err := s.m.Get(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("jellyfish: a node of the file list's checkpoint is unreadable: %w", err)
	}
	return b, nil
}

// deviceTip is a device's head and the batch it points at.
type deviceTip struct {
	head  *ns.Head
	batch *ns.Batch // nil for a device without batches
	// err: the newest batch could not be read (readTipsPartial).
	err error
}

// collected returns how far the device's log was collected.
func (t *deviceTip) collected() uint64 {
	if t.head.Version == 1 {
		return t.head.GCSeq
	}
	if t.batch != nil {
		return t.batch.Collected
	}
	return 0
}

// readHeads reads the head of every device in devs, in parallel: nil for
// a device without one.
func (l *nsLog) readHeads(ctx context.Context, devs []ns.DeviceID) ([]*ns.Head, error) {
	heads := make([]*ns.Head, len(devs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, d := range devs {
		g.Go(func() error {
			h, err := l.heads.Read(gctx, d)
			if err != nil {
				return fmt.Errorf("jellyfish: head of device %s: %w", d, err)
			}
			if h != nil && h.Device == d {
				heads[i] = h
			}
			return nil
		})
	}
	return heads, g.Wait()
}

// readTips reads the head and newest batch of every device in devs.
func (l *nsLog) readTips(ctx context.Context, devs []ns.DeviceID) (map[ns.DeviceID]*deviceTip, error) {
	tips, failed, err := l.readTipsPartial(ctx, devs)
	if err != nil {
		return nil, err
	}
	for _, t := range failed {
		return nil, t.err
	}
	return tips, nil
}

// readTipsPartial is readTips that goes on past devices whose newest batch
// cannot be read: those are returned apart, with their head and the error
// (their batch's shards may be found later, at holders recorded in other
// devices' batches).
func (l *nsLog) readTipsPartial(ctx context.Context, devs []ns.DeviceID) (tips, failed map[ns.DeviceID]*deviceTip, err error) {
	heads, err := l.readHeads(ctx, devs)
	if err != nil {
		return nil, nil, err
	}
	all := make([]*deviceTip, len(devs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range devs {
		h := heads[i]
		if h == nil {
			continue
		}
		g.Go(func() error {
			t := &deviceTip{head: h}
			all[i] = t
			if h.Tip != nil {
				t.err = l.readTip(gctx, t)
			}
			return nil
		})
	}
	_ = g.Wait()
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	tips, failed = map[ns.DeviceID]*deviceTip{}, map[ns.DeviceID]*deviceTip{}
	for i, t := range all {
		switch {
		case t == nil:
		case t.err != nil:
			failed[devs[i]] = t
		default:
			tips[devs[i]] = t
		}
	}
	return tips, failed, nil
}

// readTip reads the batch t's head points at into t.batch.
func (l *nsLog) readTip(ctx context.Context, t *deviceTip) error {
	d := t.head.Device
	b, err := l.readBatch(ctx, t.head.Tip)
	if err != nil {
		return fmt.Errorf("jellyfish: newest batch of device %s: %w", d, err)
	}
	if b.Device != d || b.Seq != t.head.BatchSeq {
		return fmt.Errorf("jellyfish: head of device %s points at batch %d of %s", d, b.Seq, b.Device)
	}
	t.batch = b
	return nil
}

func (l *nsLog) readBatch(ctx context.Context, ref []byte) (*ns.Batch, error) {
	data, err := l.meta.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	return ns.DecodeBatch(data)
}

// chooseBase returns the published checkpoint from which the namespace is
// cheapest to load: the fewest batches to read after it, and none of them
// collected. It returns nil if no device has one that works.
//
// The log of a device without a head in tips (one retired from the
// account record) is read from checkpoints only: a checkpoint that holds
// less of it than another does is passed over while a complete one works
// (see complete).
func chooseBase(tips map[ns.DeviceID]*deviceTip, self ns.DeviceID) *ns.CheckpointRef {
	var best *ns.CheckpointRef
	var bestCost uint64
	bestOwn, bestComplete := false, false
	need := absentCovers(tips)
	for d, t := range tips {
		if t.batch == nil || t.batch.Checkpoint == nil {
			continue
		}
		cp := t.batch.Checkpoint
		full := complete(cp, need)
		if bestComplete && !full {
			continue
		}
		cost, ok := uint64(0), true
		for e, et := range tips {
			from := cp.Covers[e].Seq
			if et.head.BatchSeq > from {
				cost += et.head.BatchSeq - from
				if et.collected() > from {
					ok = false // the batches after it are gone
				}
			}
		}
		if !ok {
			continue
		}
		own := d == self
		if best == nil || (full && !bestComplete) || cost < bestCost || (cost == bestCost && own && !bestOwn) {
			best, bestCost, bestOwn, bestComplete = cp, cost, own, full
		}
	}
	if best != nil && !bestComplete {
		fs.Logf(nil, "jellyfish: no checkpoint holds all of the retired devices' logs that some checkpoint holds: loading from the cheapest")
	}
	return best
}

// absentCovers returns, for each device some checkpoint in tips covers but
// that has no head in tips, the furthest any of those checkpoints holds
// its log: nobody reads such a device's batches, so a checkpoint that
// holds less of them misses changes.
func absentCovers(tips map[ns.DeviceID]*deviceTip) map[ns.DeviceID]uint64 {
	need := map[ns.DeviceID]uint64{}
	for _, t := range tips {
		if t.batch == nil || t.batch.Checkpoint == nil {
			continue
		}
		for e, c := range t.batch.Checkpoint.Covers {
			if _, listed := tips[e]; !listed && c.Seq > need[e] {
				need[e] = c.Seq
			}
		}
	}
	return need
}

// complete reports whether cp holds the logs of absent devices as far as
// need says any checkpoint does.
func complete(cp *ns.CheckpointRef, need map[ns.DeviceID]uint64) bool {
	for e, seq := range need {
		if cp.Covers[e].Seq < seq {
			return false
		}
	}
	return true
}

// fetchBatches returns device t's batches after seq from up to its tip,
// oldest first. Each batch names the earlier ones back to the device's
// checkpoint, so most of them are fetched at once.
func (l *nsLog) fetchBatches(ctx context.Context, t *deviceTip, from uint64) ([]*ns.Batch, error) {
	if t.batch == nil || t.head.BatchSeq <= from {
		return nil, nil
	}
	got := map[uint64]*ns.Batch{t.batch.Seq: t.batch}
	oldest := t.batch
	for oldest.Seq > from+1 {
		var refs []ns.BatchRef
		for _, p := range oldest.Prevs {
			if p.Seq > from {
				if _, ok := got[p.Seq]; !ok {
					refs = append(refs, p)
				}
			}
		}
		if len(refs) == 0 && len(oldest.Prev) > 0 && oldest.PrevSeq > from {
			refs = []ns.BatchRef{{Seq: oldest.PrevSeq, Ref: oldest.Prev}}
		}
		if len(refs) == 0 {
			return nil, fmt.Errorf("jellyfish: batch %d of device %s does not lead back to batch %d", oldest.Seq, t.head.Device, from+1)
		}
		bs := make([]*ns.Batch, len(refs))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(8)
		for i, r := range refs {
			g.Go(func() error {
				b, err := l.readBatch(gctx, r.Ref)
				if err != nil {
					return fmt.Errorf("batch %d: %w", r.Seq, err)
				}
				if b.Seq != r.Seq || b.Device != t.head.Device {
					return fmt.Errorf("batch %d of device %s is batch %d of %s", r.Seq, t.head.Device, b.Seq, b.Device)
				}
				bs[i] = b
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			// Try the unread ones again one by one, newest first, each
			// with the holders the batches fetched so far name: a later
			// batch may say where repair put an earlier one's shards.
			for _, b := range bs {
				if b != nil {
					got[b.Seq] = b
				}
			}
			var missing []ns.BatchRef
			for i, r := range refs {
				if bs[i] == nil {
					missing = append(missing, r)
				}
			}
			slices.SortFunc(missing, func(a, b ns.BatchRef) int { return cmp.Compare(b.Seq, a.Seq) })
			for pass := 0; pass < 2 && len(missing) > 0; pass++ {
				l.noteLocations(got)
				var still []ns.BatchRef
				for _, r := range missing {
					b, rerr := l.readBatch(ctx, r.Ref)
					if rerr != nil || b.Seq != r.Seq || b.Device != t.head.Device {
						still = append(still, r)
						continue
					}
					got[b.Seq] = b
					l.noteLocations(map[uint64]*ns.Batch{b.Seq: b})
				}
				missing = still
			}
			if len(missing) > 0 {
				return nil, err
			}
			for i, r := range refs {
				bs[i] = got[r.Seq]
			}
		}
		for _, b := range bs {
			got[b.Seq] = b
			if b.Seq < oldest.Seq {
				oldest = b
			}
		}
	}
	out := make([]*ns.Batch, 0, len(got))
	for s := from + 1; s <= t.head.BatchSeq; s++ {
		b := got[s]
		if b == nil {
			return nil, fmt.Errorf("jellyfish: batch %d of device %s is missing", s, t.head.Device)
		}
		out = append(out, b)
	}
	return out, nil
}

// applyBatch applies a batch to the log layer and returns the paths it
// wrote at: whether or not what a path shows changed, a new head may be a
// conflict to resolve (a losing concurrent write leaves the shown entry
// as it was). The caller holds pollMu.
func (l *nsLog) applyBatch(b *ns.Batch) []string {
	for _, p := range b.Packs {
		l.logL.ApplyPack(p)
	}
	for _, loc := range b.Locations {
		l.logL.ApplyLocation(loc.Shard, loc.Holder)
	}
	paths := make([]string, 0, len(b.Entries))
	for _, e := range b.Entries {
		l.logL.Apply(e)
		paths = append(paths, e.Path)
		l.clock.Observe(e.Stamp.HLC)
	}
	return paths
}

// load reads the namespace: the best published checkpoint (or the flat
// checkpoints of the version 1 format), then every device's batches after
// it. It returns the paths the batches touched, for conflict checks.
func (l *nsLog) load(ctx context.Context) ([]string, error) {
	l.pollMu.Lock()
	defer l.pollMu.Unlock()
	devs, err := l.heads.Devices(ctx)
	if err != nil {
		return nil, fmt.Errorf("jellyfish: account record: %w", err)
	}
	// A device whose newest batch cannot be read now may be readable
	// once other devices' batches are applied: repair records where it
	// put the batch's rebuilt shards in the repairing device's log.
	tips, failed, err := l.readTipsPartial(ctx, devs)
	if err != nil {
		return nil, err
	}
	if lh := l.heads.Local(); lh != nil && failed[l.device] == nil && (tips[l.device] == nil || lh.BatchSeq > tips[l.device].head.BatchSeq) {
		// The network forgot this device's head (expired while the device
		// was away) or holds an older one: continue from the slot's copy.
		t := &deviceTip{head: lh}
		if lh.Tip != nil {
			if t.batch, err = l.readBatch(ctx, lh.Tip); err != nil {
				// Its batches are gone too: the log goes on after them.
				fs.Logf(nil, "jellyfish: this device's newest batch %d is unreadable (%v); its log continues after it", lh.BatchSeq, err)
				t.head = &ns.Head{Version: lh.Version, Device: lh.Device, BatchSeq: lh.BatchSeq, HLC: lh.HLC}
			}
		}
		fs.Debugf(nil, "jellyfish: this device's head continues from its own copy at batch %d", lh.BatchSeq)
		tips[l.device] = t
		l.restored = t.head
	}
	cp := chooseBase(tips, l.device)
	var legacy []*deviceTip
	for _, t := range tips {
		if t.head.Version == 1 && t.head.Checkpoint != nil {
			legacy = append(legacy, t)
		}
	}
	applied := map[ns.DeviceID]ns.Cover{}
	logL := ns.NewTree()
	var base *btree.Tree
	upgrade := false
	switch {
	case cp != nil:
		if base, err = btree.New(l.treeConfig(), cp.Root); err != nil {
			return nil, err
		}
		for d, c := range cp.Covers {
			applied[d] = c
		}
	case len(legacy) > 0:
		// An account written before checkpoints were trees: one flat
		// checkpoint goes into the log layer (with the batches after it,
		// below), and the first flush folds it into a tree. One only, as
		// with trees: a flat checkpoint holds heads, not what they
		// replaced, so merging several could bring back a replaced entry.
		upgrade = true
		c, err := l.chooseFlat(ctx, legacy, tips)
		if err != nil {
			return nil, err
		}
		for _, p := range c.Packs {
			logL.ApplyPack(p)
		}
		for _, e := range c.Entries {
			logL.Apply(e)
			l.clock.Observe(e.Stamp.HLC)
		}
		for d, s := range c.Covers {
			applied[d] = ns.Cover{Seq: s} // stamps unknown: nothing is taken as covered
		}
	}
	l.mu.Lock()
	l.base, l.baseCP, l.logL, l.upgrade = base, cp, logL, upgrade
	l.mu.Unlock()
	var touched []string
	pending := maps(tips)
	for d, t := range failed {
		pending[d] = t
	}
	// Devices whose batches cannot be read are tried again after the
	// others, as long as each pass applies at least one device more.
	for len(pending) > 0 {
		var errs []error
		progress := false
		for _, d := range sortedDevices(pending) {
			t := pending[d]
			if t.batch == nil && t.head.Tip != nil {
				if err := l.readTip(ctx, t); err != nil {
					errs = append(errs, err)
					continue
				}
			}
			from := applied[d].Seq
			if t.collected() > from {
				return nil, fmt.Errorf("jellyfish: device %s collected its log up to batch %d, and no checkpoint holds it", d, t.collected())
			}
			bs, err := l.fetchBatches(ctx, t, from)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, b := range bs {
				touched = append(touched, l.applyBatch(b)...)
			}
			if t.head.BatchSeq >= from {
				applied[d] = ns.Cover{Seq: t.head.BatchSeq, HLC: t.head.HLC}
			}
			l.clock.Observe(t.head.HLC)
			if d == l.device {
				l.setOwn(t)
			}
			delete(pending, d)
			progress = true
		}
		if !progress {
			return nil, errors.Join(errs...)
		}
	}
	l.mu.Lock()
	l.applied = applied
	l.mu.Unlock()
	l.listed = devs
	return touched, nil
}

// chooseFlat reads the flat checkpoints of version 1 heads and returns the
// one from which the namespace is cheapest to load (the fewest batches
// after it, none of them collected).
func (l *nsLog) chooseFlat(ctx context.Context, legacy []*deviceTip, tips map[ns.DeviceID]*deviceTip) (*ns.Checkpoint, error) {
	var best *ns.Checkpoint
	var bestCost uint64
	for _, t := range legacy {
		data, err := l.meta.Get(ctx, t.head.Checkpoint)
		if err != nil {
			return nil, fmt.Errorf("jellyfish: checkpoint of device %s: %w", t.head.Device, err)
		}
		c, err := ns.DecodeCheckpoint(data)
		if err != nil {
			return nil, err
		}
		cost, ok := uint64(0), true
		for d, dt := range tips {
			from := c.Covers[d]
			if dt.head.BatchSeq > from {
				cost += dt.head.BatchSeq - from
				if dt.collected() > from {
					ok = false
				}
			}
		}
		if ok && (best == nil || cost < bestCost) {
			best, bestCost = c, cost
		}
	}
	if best == nil {
		return nil, errors.New("jellyfish: no checkpoint of the file list holds what the devices' logs no longer do")
	}
	return best, nil
}

// setOwn takes this device's log state from its published tip.
func (l *nsLog) setOwn(t *deviceTip) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.own = ownLog{seq: t.head.BatchSeq, hlc: t.head.HLC, tip: t.head.Tip}
	if t.batch != nil {
		l.own.prevs = t.batch.Prevs
		l.own.cp = t.batch.Checkpoint
		l.own.collected = t.batch.Collected
	}
	if t.head.Version == 1 {
		l.own.collected = t.head.GCSeq
		if t.batch != nil && len(t.batch.Prev) > 0 {
			l.own.prevs = []ns.BatchRef{{Seq: t.batch.PrevSeq, Ref: t.batch.Prev}}
		}
	}
}

// flushedHLC returns the newest stamp of device d's log this device has
// read (for d itself: published), 0 if none.
func (l *nsLog) flushedHLC(d ns.DeviceID) uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if d == l.device {
		return l.own.hlc
	}
	return l.applied[d].HLC
}

// poll applies what other devices published since the last poll and
// returns the paths whose entries changed. A device whose log was
// collected past what this device has read, or a log layer grown large,
// makes it reload from the best checkpoint (keeping pending changes).
func (l *nsLog) poll(ctx context.Context) ([]string, error) {
	devs, err := l.heads.Devices(ctx)
	if err != nil {
		return nil, err
	}
	l.pollMu.Lock()
	defer l.pollMu.Unlock()
	l.mu.RLock()
	applied := maps(l.applied)
	big := l.logL.Len() > l.cfg.maxLogLayer
	l.mu.RUnlock()
	// A device retired from the account record since the last look may
	// have written batches this device has not read yet: it reads them
	// this once (the checkpoint that let it be retired holds them too).
	var gone []ns.DeviceID
	for _, d := range l.listed {
		if d != l.device && !slices.Contains(devs, d) {
			gone = append(gone, d)
		}
	}
	l.listed = devs
	// Only the devices whose head moved have a new tip to read.
	var moved []ns.DeviceID
	look := append(slices.Clip(devs), gone...)
	heads, err := l.readHeads(ctx, look)
	if err != nil {
		return nil, err
	}
	for i, h := range heads {
		if h != nil && look[i] != l.device && h.BatchSeq > applied[look[i]].Seq {
			moved = append(moved, look[i])
		}
	}
	if len(moved) == 0 && !big {
		return nil, nil
	}
	if big {
		moved = devs // a reload considers every device's checkpoint
	}
	tips, err := l.readTips(ctx, moved)
	if err != nil {
		return nil, err
	}
	reload := big
	// A device listed and retired between two looks is known only from
	// the checkpoint that let it leave, which holds more of its log than
	// this device has read: its last batches are read from its head while
	// it has one, else from that checkpoint (a reload).
	var unseen []ns.DeviceID
	for _, t := range tips {
		if t.batch == nil || t.batch.Checkpoint == nil {
			continue
		}
		for e, c := range t.batch.Checkpoint.Covers {
			if _, ok := tips[e]; !ok && e != l.device && c.Seq > applied[e].Seq && !slices.Contains(devs, e) && !slices.Contains(unseen, e) {
				unseen = append(unseen, e)
			}
		}
	}
	for _, e := range unseen {
		got, err := l.readTips(ctx, []ns.DeviceID{e})
		if err != nil || got[e] == nil {
			fs.Debugf(nil, "jellyfish: retired device %s: its head cannot be read (%v): reloading from a checkpoint", e, err)
			reload = true
			continue
		}
		tips[e] = got[e]
	}
	for d, t := range tips {
		if d != l.device && t.head.BatchSeq > applied[d].Seq && t.collected() > applied[d].Seq {
			reload = true
		}
	}
	if reload {
		if len(tips) < len(devs) {
			if tips, err = l.readTips(ctx, devs); err != nil {
				return nil, err
			}
		}
		if cp := chooseBase(tips, l.device); cp != nil && covers(cp, applied, l.device) {
			return l.rebase(ctx, cp, tips)
		}
	}
	var changed []string
	for d, t := range tips {
		if d == l.device || t.head.BatchSeq <= applied[d].Seq {
			continue
		}
		bs, err := l.fetchBatches(ctx, t, applied[d].Seq)
		if err != nil {
			return changed, fmt.Errorf("jellyfish: log of device %s: %w", d, err)
		}
		for _, b := range bs {
			changed = append(changed, l.applyBatch(b)...)
		}
		l.clock.Observe(t.head.HLC)
		l.mu.Lock()
		l.applied[d] = ns.Cover{Seq: t.head.BatchSeq, HLC: t.head.HLC}
		l.mu.Unlock()
	}
	return changed, nil
}

// covers reports whether checkpoint cp holds everything applied holds of
// other devices' logs and everything this device published.
func covers(cp *ns.CheckpointRef, applied map[ns.DeviceID]ns.Cover, self ns.DeviceID) bool {
	for d, c := range applied {
		if cp.Covers[d].Seq < c.Seq && d != self {
			return false
		}
	}
	return true
}

// rebase replaces the base and the log layer with checkpoint cp and the
// batches after it; pending changes stay. The caller holds pollMu.
func (l *nsLog) rebase(ctx context.Context, cp *ns.CheckpointRef, tips map[ns.DeviceID]*deviceTip) ([]string, error) {
	base, err := btree.New(l.treeConfig(), cp.Root)
	if err != nil {
		return nil, err
	}
	logL := ns.NewTree()
	applied := map[ns.DeviceID]ns.Cover{}
	for d, c := range cp.Covers {
		applied[d] = c
	}
	var all []*ns.Batch
	for d, t := range tips {
		bs, err := l.fetchBatches(ctx, t, applied[d].Seq)
		if err != nil {
			return nil, err
		}
		all = append(all, bs...)
		if t.head.BatchSeq > applied[d].Seq {
			applied[d] = ns.Cover{Seq: t.head.BatchSeq, HLC: t.head.HLC}
		}
	}
	l.mu.Lock()
	old := l.logL
	l.base, l.baseCP, l.logL, l.applied = base, cp, logL, applied
	l.mu.Unlock()
	var changed []string
	for _, b := range all {
		changed = append(changed, l.applyBatch(b)...)
	}
	// Whatever the old layer held may have changed.
	changed = append(changed, old.TouchedUnder("")...)
	fs.Debugf(nil, "jellyfish: namespace reloaded from the checkpoint of %d covering %d devices", cp.Seq, len(cp.Covers))
	return changed, nil
}

// noteLocations remembers the locations the batches name (see found).
func (l *nsLog) noteLocations(bs map[uint64]*ns.Batch) {
	l.foundMu.Lock()
	defer l.foundMu.Unlock()
	if l.found == nil {
		l.found = map[ns.ShardID][][]byte{}
	}
	for _, b := range bs {
		for _, loc := range b.Locations {
			l.found[loc.Shard] = append(l.found[loc.Shard], loc.Holder)
		}
	}
}

// foundLocations returns the holders of id noted from fetched batches.
func (l *nsLog) foundLocations(id ns.ShardID) [][]byte {
	l.foundMu.Lock()
	defer l.foundMu.Unlock()
	return l.found[id]
}

// sortedDevices returns m's devices in order.
func sortedDevices(m map[ns.DeviceID]*deviceTip) []ns.DeviceID {
	out := make([]ns.DeviceID, 0, len(m))
	for d := range m {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b ns.DeviceID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

func maps[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// commitMode says what commit keeps of the entries it is given.
type commitMode int

const (
	// commitNew: a new write. It is stamped now and supersedes what this
	// device sees at its path.
	commitNew commitMode = iota
	// commitKeepBases: stamped now, but keeps the bases it carries (what
	// its writer saw): a conflict resolution, or a change adopted from
	// another slot's journal.
	commitKeepBases
	// commitRecovered: a change of this device read back from its own
	// journal: it keeps its stamp and bases.
	commitRecovered
)

// errClosed: the session was shut down (the process is exiting).
var errClosed = errors.New("jellyfish: shutting down: no more changes are accepted")

// commit applies entries to the namespace at once, so this process sees
// them, writes them to the journal and queues them for the next flush,
// which makes them visible to other processes and devices. It returns once
// the journal holds them on disk: from then on a crash loses nothing, the
// next process of the account on this machine stores them. data are the
// bytes of the packed files among the entries.
//
// Every entry is stamped here, in the order it is queued: a device's log
// is in stamp order, so the changes a flush stores are exactly those
// stamped up to its newest one.
func (l *nsLog) commit(ctx context.Context, entries []ns.Entry, data []journal.Data, mode commitMode) error {
	// What the paths show now: read before taking the lock, so a node
	// fetched from the network does not hold up other writers.
	v := l.view()
	olds := make([]*ns.Entry, len(entries))
	for i := range entries {
		old, err := v.Get(ctx, entries[i].Path)
		if err != nil {
			return err
		}
		olds[i] = old
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return errClosed
	}
	v = ns.View{Layers: []*ns.Tree{l.logL, l.pend}}
	if l.base != nil {
		v.Base = l.base
	}
	for i := range entries {
		e := &entries[i]
		switch mode {
		case commitNew:
			e.Stamp = ns.Stamp{HLC: l.clock.Next(), Device: l.device}
			hs, err := v.Heads(ctx, e.Path)
			if err != nil {
				l.mu.Unlock()
				return err
			}
			e.Bases = make([]ns.Stamp, len(hs))
			for j, h := range hs {
				e.Bases[j] = h.Stamp
			}
		case commitKeepBases:
			e.Stamp = ns.Stamp{HLC: l.clock.Next(), Device: l.device}
		case commitRecovered:
			l.clock.Observe(e.Stamp.HLC)
		}
	}
	var ticket journal.Ticket
	if l.journal != nil {
		var err error
		if ticket, err = l.journal.Write(entries, data); err != nil {
			l.mu.Unlock()
			return fmt.Errorf("jellyfish: journal: %w", err)
		}
	}
	paths := make([]string, len(entries))
	for i, e := range entries {
		l.pend.Apply(e)
		l.pending = append(l.pending, e)
		paths[i] = e.Path
	}
	l.schedule(flushDelay)
	l.mu.Unlock()
	for i := range entries {
		l.onReplace(olds[i], &entries[i])
	}
	l.changed(paths)
	if l.journal != nil {
		if err := l.journal.Sync(ticket); err != nil {
			// The change is applied and queued, so a later flush stores
			// it; only its durability across a crash is unsure.
			return fmt.Errorf("jellyfish: journal: %w", err)
		}
	}
	return nil
}

// applyPending makes a pack record stored but not yet published visible
// in the namespace of this process.
func (l *nsLog) applyPending(p ns.Pack) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	l.pend.ApplyPack(p)
}

// pendingCount returns the number of changes waiting for a flush (those
// of a flush whose head may not have been stored included).
func (l *nsLog) pendingCount() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	n := len(l.pending)
	if l.doubt != nil {
		n += len(l.doubt.entries)
	}
	return n
}

// pendingPaths returns the paths of the changes waiting for a flush.
func (l *nsLog) pendingPaths() []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var out []string
	if l.doubt != nil {
		for _, e := range l.doubt.entries {
			out = append(out, e.Path)
		}
	}
	for _, e := range l.pending {
		out = append(out, e.Path)
	}
	return out
}

// flushHooks connect a flush to the packs of small files: storePacks
// stores every pack not stored yet (before the batch that refers to its
// files) and returns the pack records to publish; restorePacks puts back
// records a failed flush did not publish.
type flushHooks struct {
	storePacks   func(ctx context.Context) ([]ns.Pack, error)
	restorePacks func([]ns.Pack)
	// locations returns holder records to publish (repair).
	locations func() []ns.Location
}

// flush stores the pending changes as log batches and republishes the
// device's head; every checkpointEvery batches it first folds the log
// layer into a new checkpoint, which the batches name. Until the head is
// stored, other processes see the previous state; if anything fails, the
// changes stay pending (and in the journal) and the error is returned.
func (l *nsLog) flush(ctx context.Context, hooks flushHooks) error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	return l.flushLocked(ctx, hooks, false)
}

// flushMarker publishes a batch even if nothing is pending, so that what
// batches carry (the collected mark) reaches readers. The caller holds
// flushMu.
func (l *nsLog) flushMarker(ctx context.Context) error {
	return l.flushLocked(ctx, flushHooks{}, true)
}

// flushCheckpoint flushes with a new checkpoint, even if nothing is
// pending: afterwards this device's published checkpoint holds every
// device's log as far as this device has applied it. It fails if the
// checkpoint could not be written.
func (l *nsLog) flushCheckpoint(ctx context.Context, hooks flushHooks) error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.wantCP = true
	defer func() { l.wantCP = false }()
	l.mu.RLock()
	before := l.own.cp
	l.mu.RUnlock()
	if err := l.flushLocked(ctx, hooks, true); err != nil {
		return err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.own.cp == nil || l.own.cp == before {
		return errors.New("jellyfish: the checkpoint could not be written")
	}
	return nil
}

// flushLocked is flush; with force it publishes a batch even if nothing is
// pending. The caller holds flushMu.
func (l *nsLog) flushLocked(ctx context.Context, hooks flushHooks, force bool) error {
	if err := l.settleDoubt(ctx); err != nil {
		if !errors.Is(err, errForked) {
			l.schedule(flushRetry)
		}
		return err
	}
	l.mu.Lock()
	pending := l.pending
	l.pending = nil
	own := l.own
	var segment uint64
	rotated := false
	if l.journal != nil && len(pending) > 0 {
		// Every record of the changes taken is in this segment or an
		// earlier one: once they are stored, those segments can go.
		var err error
		if segment, err = l.journal.Rotate(); err != nil {
			fs.Errorf(nil, "jellyfish: journal: %v", err)
		} else {
			rotated = true
		}
	}
	upgrade := l.upgrade
	bigLog := l.logL.Len() > l.cfg.maxLogLayer
	l.mu.Unlock()

	var packs []ns.Pack
	restore := func(err error) error {
		if hooks.restorePacks != nil {
			hooks.restorePacks(packs)
		}
		l.mu.Lock()
		l.pending = append(pending, l.pending...)
		if !errors.Is(err, errForked) {
			l.schedule(flushRetry)
		}
		l.mu.Unlock()
		return err
	}
	if hooks.storePacks != nil {
		var err error
		if packs, err = hooks.storePacks(ctx); err != nil {
			return restore(err)
		}
	}
	var locs []ns.Location
	if hooks.locations != nil {
		locs = hooks.locations()
	}
	due := l.wantCP || upgrade || own.sinceCheckpoint() >= uint64(l.cfg.checkpointEvery) || (bigLog && len(pending) > 0)
	if len(pending) == 0 && len(packs) == 0 && len(locs) == 0 && !upgrade && !force {
		return nil
	}
	if l.beforePublish != nil {
		if err := l.beforePublish(ctx); err != nil {
			return restore(err)
		}
	}
	if err := l.checkNotForked(ctx, &own, nil); err != nil {
		return restore(err)
	}
	var (
		newBase *btree.Tree
		newCP   *ns.CheckpointRef
		cpRes   btree.Result
	)
	if due {
		l.pollMu.Lock()
		defer l.pollMu.Unlock()
		var err error
		l.mu.RLock()
		l.baseWas = nil
		if l.baseCP != nil {
			l.baseWas = l.baseCP.Root
		}
		l.mu.RUnlock()
		if newBase, newCP, cpRes, err = l.writeCheckpoint(ctx, own.seq); err != nil {
			fs.Errorf(nil, "jellyfish: checkpoint skipped: %v", err)
			newBase, newCP = nil, nil
		}
	}
	cp := own.cp
	if newCP != nil {
		cp = newCP
	}
	// An entry the format cannot hold (refused at commit, so only a bug
	// makes one) must not block the changes behind it: it is dropped,
	// loudly, and the rest is stored.
	ok := pending[:0:0]
	for _, e := range pending {
		if err := ns.CheckEntry(&e); err != nil {
			fs.Errorf(nil, "jellyfish: %q cannot be stored and is dropped: %v", e.Path, err)
			continue
		}
		ok = append(ok, e)
	}
	batches := splitBatches(ok, packs, locs, l.cfg.batchBytes)
	if len(batches) == 0 {
		batches = []*ns.Batch{{}} // a checkpoint alone: a batch naming it
	}
	next := own
	var stored [][]byte
	for _, b := range batches {
		b.Device, b.Seq = l.device, next.seq+1
		b.Prevs = prevsFor(&next, cp)
		b.Checkpoint, b.Collected = cp, next.collected
		data, err := ns.EncodeBatch(b)
		if err != nil {
			l.onGarbage(stored)
			l.dropCheckpoint(cpRes)
			return restore(fmt.Errorf("encode log batch: %w", err))
		}
		ref, err := l.meta.Put(ctx, data)
		if err != nil {
			l.onGarbage(stored)
			l.dropCheckpoint(cpRes)
			return restore(fmt.Errorf("store log batch: %w", err))
		}
		stored = append(stored, ref)
		if next.tip != nil {
			next.prevs = append([]ns.BatchRef{{Seq: next.seq, Ref: next.tip}}, next.prevs...)
		}
		next.seq, next.tip = b.Seq, ref
		for _, e := range b.Entries {
			next.hlc = max(next.hlc, e.Stamp.HLC)
		}
	}
	next.cp = cp
	next.prevs = trimPrevs(next.prevs, cp)
	head := &ns.Head{Version: ns.HeadVersion, Device: l.device, BatchSeq: next.seq, HLC: next.hlc, Tip: next.tip}
	f := &unsureFlush{head: head, own: own, next: next, batches: batches, entries: ok,
		newCP: newCP, baseWas: l.baseWas, segment: segment, rotated: rotated}
	if err := l.heads.Publish(ctx, head); err != nil {
		// The batches are stored, and the head may be too: the put can
		// reach the network and its answers not reach this process.
		// Nothing of this flush is given up (a device that read the head
		// reads these batches); the next flush publishes the same head
		// again before anything else.
		l.mu.Lock()
		// The checkpoint written stays this process's own too: the
		// head names it, and the next checkpoint lets it go.
		l.doubt = f
		l.schedule(flushRetry)
		l.mu.Unlock()
		return fmt.Errorf("publish head: %w", err)
	}
	l.published(ctx, f, newBase, cpRes)
	return nil
}

// unsureFlush is a flush whose batches were stored and whose head's put
// failed. The put may have stored the head anyway (a timeout after the
// nodes took it, answers lost), and then other devices read these batches
// and name them as read: a later flush must neither write other batches of
// the same numbers nor hand these to cleanup. So the next flush first
// publishes this head again (settleDoubt), and only then takes what was
// committed since.
type unsureFlush struct {
	head      *ns.Head
	own, next ownLog // this device's log before and after it
	batches   []*ns.Batch
	entries   []ns.Entry // the changes the batches hold
	newCP     *ns.CheckpointRef
	baseWas   []byte // the root newCP was built on
	segment   uint64 // the journal segments up to this one hold entries
	rotated   bool
}

// settleDoubt publishes again the head of a flush that may not have been
// stored (l.doubt), then takes that flush as done. The caller holds
// flushMu.
func (l *nsLog) settleDoubt(ctx context.Context) error {
	l.mu.RLock()
	f := l.doubt
	l.mu.RUnlock()
	if f == nil {
		return nil
	}
	if err := l.checkNotForked(ctx, &f.own, f.head); err != nil {
		return err
	}
	if err := l.heads.Publish(ctx, f.head); err != nil {
		return fmt.Errorf("publish head: %w", err)
	}
	l.mu.Lock()
	l.doubt = nil
	l.mu.Unlock()
	// The base is not swapped for the checkpoint the head names: polls
	// since have applied other devices' batches onto the layers over
	// the base this process has, which still hold everything; the
	// checkpoint named is this device's own.cp all the same.
	l.published(ctx, f, nil, btree.Result{})
	fs.Debugf(nil, "jellyfish: the head of batch %d, whose put had failed, is published", f.head.BatchSeq)
	return nil
}

// published takes a flush whose head was stored into the namespace: its
// batches join the log layer, and with newBase (the checkpoint written by
// this flush, nil to keep the base) the base is swapped for the checkpoint.
func (l *nsLog) published(ctx context.Context, f *unsureFlush, newBase *btree.Tree, cpRes btree.Result) {
	l.mu.Lock()
	if newBase != nil {
		l.base, l.baseCP, l.logL = newBase, f.newCP, ns.NewTree()
		l.upgrade = false
	}
	for _, b := range f.batches {
		for _, p := range b.Packs {
			l.logL.ApplyPack(p)
		}
		for _, loc := range b.Locations {
			l.logL.ApplyLocation(loc.Shard, loc.Holder)
		}
		for _, e := range b.Entries {
			l.logL.Apply(e)
		}
	}
	// The pending layer keeps what was committed during the flush.
	l.pend = ns.NewTree()
	for _, e := range l.pending {
		l.pend.Apply(e)
	}
	l.own = f.next
	l.applied[l.device] = ns.Cover{Seq: f.next.seq, HLC: f.next.hlc}
	l.mu.Unlock()
	if f.newCP != nil {
		if newBase != nil {
			l.onGarbage(cpRes.Replaced)
		}
		if old := f.own.cp; old != nil && (f.baseWas == nil || !bytes.Equal(f.baseWas, old.Root)) {
			// The new checkpoint was built on another device's (after a
			// rebase), not on this device's last one: that one's nodes
			// are no longer this device's to keep.
			l.dropOldCheckpoint(ctx, old.Root, f.newCP.Root)
		}
	}
	if f.rotated {
		if err := l.journal.DropThrough(f.segment); err != nil {
			fs.Debugf(nil, "jellyfish: journal: %v", err)
		}
	}
	fs.Debugf(nil, "jellyfish: flushed %d changes as batches %d-%d of device %s", len(f.entries), f.own.seq+1, f.next.seq, l.device)
}

// errForked: another writer published this device's head.
var errForked = errors.New("jellyfish: another copy of this device slot (a restored backup, a cloned machine or a copied data dir) wrote as this device: this process stores nothing more; the next jellyfish command on this machine goes on as a new device and stores the changes kept in the journal")

// checkNotForked makes sure nobody else published this device's head
// since this device did (own is its log as published): the only writer of
// a head is its slot, so another one means the slot was copied, and
// publishing on would hide the other copy's batches, or this one's, from
// every device. Once forked, a process stores nothing more; its changes
// stay in the journal, and the next process of the slot takes a new
// device (slotDevice) and stores them as that device's.
//
// mine, if not nil, is a head this process is publishing again (see
// unsureFlush): finding it is no fork.
func (l *nsLog) checkNotForked(ctx context.Context, own *ownLog, mine *ns.Head) error {
	l.mu.RLock()
	forked := l.forked
	l.mu.RUnlock()
	if forked {
		return errForked
	}
	cur, err := l.heads.Read(ctx, l.device)
	if err != nil {
		return fmt.Errorf("read this device's head: %w", err)
	}
	if cur == nil || cur.BatchSeq < own.seq || cur.BatchSeq == own.seq && bytes.Equal(cur.Tip, own.tip) ||
		mine != nil && sameHead(cur, mine) {
		return nil
	}
	l.mu.Lock()
	l.forked = true
	l.mu.Unlock()
	fs.Errorf(nil, "jellyfish: this device's head is at batch %d, which this process did not publish (it is at %d)", cur.BatchSeq, own.seq)
	return errForked
}

// dropOldCheckpoint hands to cleanup the nodes of the checkpoint at old
// that the checkpoint at cur does not use (cleanup still checks every
// device's checkpoint before deleting any).
func (l *nsLog) dropOldCheckpoint(ctx context.Context, old, cur []byte) {
	keep := map[string]bool{}
	walk := func(root []byte, fn func(ref []byte)) error {
		t, err := btree.New(l.treeConfig(), root)
		if err != nil {
			return err
		}
		return t.Walk(ctx, func(ref []byte, _ int) error { fn(ref); return nil })
	}
	if err := walk(cur, func(r []byte) { keep[string(r)] = true }); err != nil {
		fs.Debugf(nil, "jellyfish: old checkpoint's nodes: %v", err)
		return
	}
	var drop [][]byte
	if err := walk(old, func(r []byte) {
		if !keep[string(r)] {
			drop = append(drop, bytes.Clone(r))
		}
	}); err != nil {
		fs.Debugf(nil, "jellyfish: old checkpoint's nodes: %v", err)
		return
	}
	l.onGarbage(drop)
}

// dropCheckpoint hands the nodes of a checkpoint that was written but not
// published to cleanup.
func (l *nsLog) dropCheckpoint(res btree.Result) {
	if len(res.Written) > 0 {
		l.onGarbage(res.Written)
	}
}

// prevsFor returns the earlier batches the next batch after o names: the
// previous one, and every one since checkpoint cp, at most ns's limit.
func prevsFor(o *ownLog, cp *ns.CheckpointRef) []ns.BatchRef {
	if o.tip == nil {
		return nil
	}
	all := append([]ns.BatchRef{{Seq: o.seq, Ref: o.tip}}, o.prevs...)
	return trimPrevs(all, cp)
}

// maxPrevs bounds the earlier batches a batch names (ns allows 64).
const maxPrevs = 64

// trimPrevs keeps the batches after checkpoint cp (at least the newest),
// at most maxPrevs, with no gaps.
func trimPrevs(prevs []ns.BatchRef, cp *ns.CheckpointRef) []ns.BatchRef {
	out := prevs[:0:0]
	for i, p := range prevs {
		if i > 0 && (p.Seq != prevs[i-1].Seq-1 || len(out) == maxPrevs || (cp != nil && p.Seq <= cp.Seq)) {
			break
		}
		out = append(out, p)
	}
	return out
}

// splitBatches cuts pack records, locations and entries into batches of
// about size bytes each (packs first, so a batch's files find their packs
// published in the same or an earlier batch).
func splitBatches(entries []ns.Entry, packs []ns.Pack, locs []ns.Location, size int) []*ns.Batch {
	var out []*ns.Batch
	cur, n := &ns.Batch{Locations: locs}, 40*len(locs)
	next := func(add int) {
		if n > 0 && n+add > size {
			out = append(out, cur)
			cur, n = &ns.Batch{}, 0
		}
		n += add
	}
	for _, p := range packs {
		next(64 + len(p.Ref) + 24*len(p.Map))
		cur.Packs = append(cur.Packs, p)
	}
	for _, e := range entries {
		next(entrySize(&e))
		cur.Entries = append(cur.Entries, e)
	}
	if len(cur.Entries) > 0 || len(cur.Packs) > 0 || len(cur.Locations) > 0 {
		out = append(out, cur)
	}
	return out
}

// entrySize estimates an entry's encoded size.
func entrySize(e *ns.Entry) int {
	return 48 + len(e.Path) + len(e.Hash) + len(e.Content) + len(e.Inline) + 24*len(e.Bases)
}

// writeCheckpoint folds the log layer into the base: the paths, packs and
// locations it touched are written into a new tree (copy on write, so the
// work is proportional to the layer, not to the namespace). ownSeq is this
// device's newest published batch, which the log layer holds. The caller
// holds pollMu, so the layer does not change meanwhile.
func (l *nsLog) writeCheckpoint(ctx context.Context, ownSeq uint64) (*btree.Tree, *ns.CheckpointRef, btree.Result, error) {
	l.mu.RLock()
	base, logL := l.base, l.logL
	coversMap := maps(l.applied)
	l.mu.RUnlock()
	coversMap[l.device] = ns.Cover{Seq: ownSeq, HLC: coversMap[l.device].HLC}
	covered := ns.Covered{}
	for d, c := range coversMap {
		covered[d] = c.HLC
	}
	v := ns.View{Layers: []*ns.Tree{logL}}
	if base != nil {
		v.Base = base
	}
	var muts []btree.Mutation
	for _, p := range logL.TouchedUnder("") {
		val, err := v.CheckpointValue(ctx, p, covered)
		if err != nil {
			return nil, nil, btree.Result{}, err
		}
		if val != nil {
			muts = append(muts, btree.Mutation{Key: ns.EntryKey(p), Value: val})
		}
	}
	for _, p := range logL.Packs() {
		merged, err := v.Pack(ctx, p.ID)
		if err != nil {
			return nil, nil, btree.Result{}, err
		}
		val, err := ns.EncodePack(merged)
		if err != nil {
			return nil, nil, btree.Result{}, err
		}
		muts = append(muts, btree.Mutation{Key: ns.PackKey(p.ID), Value: val})
	}
	for id := range logL.AllLocations() {
		hs, err := v.Locations(ctx, id)
		if err != nil {
			return nil, nil, btree.Result{}, err
		}
		val, err := ns.EncodeHolders(hs)
		if err != nil {
			return nil, nil, btree.Result{}, err
		}
		muts = append(muts, btree.Mutation{Key: ns.LocationKey(id), Value: val})
	}
	slices.SortFunc(muts, func(a, b btree.Mutation) int { return bytes.Compare(a.Key, b.Key) })
	if base == nil {
		var err error
		if base, err = btree.New(l.treeConfig(), nil); err != nil {
			return nil, nil, btree.Result{}, err
		}
	}
	start := time.Now()
	nb, res, err := base.Apply(ctx, muts)
	if err != nil {
		return nil, nil, btree.Result{}, err
	}
	if nb.Root() == nil {
		// An empty namespace still needs a checkpoint to name.
		if nb, res, err = emptyCheckpoint(ctx, base); err != nil {
			return nil, nil, btree.Result{}, err
		}
	}
	cp := &ns.CheckpointRef{Seq: ownSeq, Root: nb.Root(), Covers: coversMap}
	fs.Debugf(nil, "jellyfish: checkpoint of %d changes: %d nodes written, %d replaced, in %v", len(muts), len(res.Written), len(res.Replaced), time.Since(start).Round(time.Millisecond))
	return nb, cp, res, nil
}

// emptyCheckpoint returns a tree holding one placeholder key, so that an
// empty namespace still has a root to name.
func emptyCheckpoint(ctx context.Context, base *btree.Tree) (*btree.Tree, btree.Result, error) {
	return base.Apply(ctx, []btree.Mutation{{Key: []byte{'z'}, Value: []byte{0}}})
}

// sortDevices orders device IDs.
func sortDevices(ds []ns.DeviceID) {
	slices.SortFunc(ds, func(a, b ns.DeviceID) int { return cmp.Compare(string(a[:]), string(b[:])) })
}

// summarize is what a checkpoint item adds to its subtree's summary.
var summarize = ns.Summarizer(objref.StoredBytes, packStored)

// packStored returns pack p's share of the bytes its object occupies: all
// of them, or, for a pack repacked into an object shared with others, the
// part its kept extents make of the object, so shared objects count once.
func packStored(p *ns.Pack) int64 {
	ref, err := UnmarshalObjRef(p.Ref)
	if err != nil {
		return 0
	}
	stored := ref.StoredBytes()
	if len(p.Map) == 0 || ref.Layout.Size == 0 {
		return stored
	}
	return int64(float64(stored) * float64(total(p.Map)) / float64(ref.Layout.Size))
}

// usage returns the namespace's live files, their bytes, and the bytes its
// objects occupy on providers: the checkpoint's summary, corrected for
// what changed since, so it costs the same for any size of namespace.
func (l *nsLog) usage(ctx context.Context) (files, size, stored int64, err error) {
	v := l.view()
	var sum btree.Summary
	base, _ := v.Base.(*btree.Tree)
	if base != nil {
		if sum, err = base.Summary(ctx); err != nil {
			return 0, 0, 0, err
		}
	}
	sub := func(k []byte) error {
		if base == nil {
			return nil
		}
		val, ok, err := base.Get(ctx, k)
		if err != nil || !ok {
			return err
		}
		s := summarize(k, val)
		for i := range sum {
			sum[i] -= s[i]
		}
		return nil
	}
	addSum := func(s [4]uint64) {
		for i := range sum {
			sum[i] += s[i]
		}
	}
	seen := map[string]bool{}
	packs := map[ns.PackID]bool{}
	for _, layer := range v.Layers {
		for _, p := range layer.TouchedUnder("") {
			if seen[p] {
				continue
			}
			seen[p] = true
			if err := sub(ns.EntryKey(p)); err != nil {
				return 0, 0, 0, err
			}
			hs, err := v.Heads(ctx, p)
			if err != nil {
				return 0, 0, 0, err
			}
			if len(hs) > 0 {
				addSum(ns.EntrySummary(&hs[len(hs)-1], objref.StoredBytes))
			}
		}
		for _, p := range layer.Packs() {
			packs[p.ID] = true
		}
	}
	for id := range packs {
		if err := sub(ns.PackKey(id)); err != nil {
			return 0, 0, 0, err
		}
		p, err := v.Pack(ctx, id)
		if err != nil {
			return 0, 0, 0, err
		}
		if p != nil {
			addSum([4]uint64{ns.SumStored: uint64(packStored(p))})
		}
	}
	return int64(sum[ns.SumFiles]), int64(sum[ns.SumBytes]), int64(sum[ns.SumStored]), nil
}
