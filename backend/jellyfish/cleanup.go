package jellyfish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rclone/rclone/fs"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns/btree"
	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
)

// logGrace bounds how long replaced log objects (batches, checkpoint
// nodes) are kept for processes that loaded the namespace before: one that
// polls at least this often never needs them. File contents are kept for
// the longer retention window (cleanup_grace).
const logGrace = 24 * time.Hour

// cleaner remembers what this device let go, for CleanUp: contents no
// entry refers to any more (deleted or overwritten files, replaced pack
// objects) and log objects no checkpoint of this device needs (replaced
// checkpoint nodes, checkpoints never published). It is kept in the
// device slot between processes (cleanupstate.go).
type cleaner struct {
	now   func() time.Time
	mu    sync.Mutex
	unref []unrefContent
	nodes []unrefContent
	// saved is the state as last read or written (JSON); saveMu
	// serializes the writes.
	saved  []byte
	saveMu sync.Mutex
}

// unrefContent is something let go, and when: an entry's content (a
// reference, direct or indirect) or a log object's encoded reference.
type unrefContent struct {
	content []byte
	when    time.Time
}

// replaced is called for each committed entry with what its path showed
// before: contents the path no longer shows become candidates.
func (c *cleaner) replaced(old, cur *ns.Entry) {
	if old == nil || len(old.Content) == 0 || old.Content[0] == packedTag || (cur != nil && bytes.Equal(old.Content, cur.Content)) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unref = append(c.unref, unrefContent{old.Content, c.now()})
}

// garbage is called with log objects the log stopped needing.
func (c *cleaner) garbage(refs [][]byte) {
	if len(refs) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for _, r := range refs {
		c.nodes = append(c.nodes, unrefContent{r, now})
	}
}

// letGo adds an object of its own to the candidates.
func (c *cleaner) letGo(ref *ObjRef) {
	b, err := ref.Marshal()
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unref = append(c.unref, unrefContent{b, c.now()})
}

// take removes and returns the candidates of list older than grace at now.
func take(list *[]unrefContent, grace time.Duration, now time.Time) []unrefContent {
	var due []unrefContent
	keep := (*list)[:0:0]
	for _, u := range *list {
		if now.Sub(u.when) >= grace {
			due = append(due, u)
		} else {
			keep = append(keep, u)
		}
	}
	*list = keep
	return due
}

// clockDoubter is the optional ability of a network to tell that the
// session's clock is in doubt (timeproto.Corrected.InDoubt).
type clockDoubter interface{ ClockInDoubt() bool }

var _ clockDoubter = (*clientNet)(nil)

// errCleanupClockInDoubt is why cleanup deleted nothing.
var errCleanupClockInDoubt = errors.New("jellyfish: cleanup held: the network's clocks are more than a month from this machine's, and the retention window is measured on it; set this machine's clock right")

// cleanUp deletes the shards of contents no live entry refers to, once
// they have been unreferenced for at least grace (the retention window: a
// wrong-way sync can be undone from the log until then, and a process that
// loaded the namespace earlier may still read them); it rewrites packs
// that are mostly empty, collects this device's old log batches and the
// checkpoint nodes no device's checkpoint uses. A shard still referenced
// by any live entry (a server-side copy shares shards) is kept. Nothing
// is deleted while the network says the clock is in doubt.
func (s *session) cleanUp(ctx context.Context, grace time.Duration) error {
	if err := s.flush(ctx); err != nil {
		return err
	}
	if d, ok := s.net.(clockDoubter); ok && d.ClockInDoubt() {
		// The retention window is measured on this clock: one more than a
		// month ahead would end every window at once, and with them the
		// undo of every recent deletion.
		return errCleanupClockInDoubt
	}
	// Repacked packs are published before their old objects can go.
	repacked, repackErr := s.repack(ctx, grace)
	if repacked > 0 {
		fs.Infof(nil, "jellyfish: cleanup repacked %d packs", repacked)
		if err := s.flush(ctx); err != nil {
			return errors.Join(repackErr, err)
		}
	}
	errs := []error{repackErr}
	s.clean.mu.Lock()
	cands := take(&s.clean.unref, grace, s.now())
	waiting := len(s.clean.unref)
	s.clean.mu.Unlock()
	freed := 0
	if len(cands) > 0 {
		live, err := s.referenced(ctx)
		if err != nil {
			// Nothing is deleted without knowing what is live.
			s.clean.mu.Lock()
			s.clean.unref = append(cands, s.clean.unref...)
			s.clean.mu.Unlock()
			return errors.Join(repackErr, fmt.Errorf("jellyfish: cleanup: %w", err))
		}
		var n int
		n, err = s.deleteUnreferenced(ctx, cands, live)
		freed += n
		errs = append(errs, err)
	}
	fs.Infof(nil, "jellyfish: cleanup freed %d shards; %d contents wait for their retention period", freed, waiting)
	batches, err := s.collectLog(ctx, min(grace, logGrace))
	if err != nil {
		errs = append(errs, err)
	}
	if batches > 0 {
		fs.Infof(nil, "jellyfish: cleanup collected %d old log batches of this device", batches)
	}
	nodes, err := s.collectNodes(ctx, min(grace, logGrace))
	if err != nil {
		errs = append(errs, err)
	}
	if nodes > 0 {
		fs.Infof(nil, "jellyfish: cleanup deleted %d file list objects no checkpoint uses", nodes)
	}
	if err := s.saveCleanupState(); err != nil {
		errs = append(errs, fmt.Errorf("save cleanup state: %w", err))
	}
	return errors.Join(uniqueErrs(errs)...)
}

// deleteUnreferenced deletes the shards of the candidates that no live
// entry or pack uses, and returns how many it deleted.
func (s *session) deleteUnreferenced(ctx context.Context, cands []unrefContent, live map[codec.ShardID]bool) (int, error) {
	var errs []error
	freed := 0
	done := map[shardLocation]bool{} // an object let go by several packs is deleted once
	for _, u := range cands {
		objs, err := s.objectsOf(ctx, u.content)
		if err != nil {
			fs.Debugf(nil, "jellyfish: cleanup: %v", err)
		}
		for _, ref := range objs {
			for _, sh := range ref.Shards() {
				if live[sh.ID] || done[sh] {
					continue
				}
				done[sh] = true
				// A shard already gone (deleted by an earlier run that did
				// not get to save its state) is what cleanup wants.
				if err := s.store.shards.Delete(ctx, sh.Holder, sh.ID); err != nil && !errors.Is(err, shardproto.ErrNotFound) {
					errs = append(errs, err)
					continue
				}
				freed++
			}
		}
	}
	return freed, errors.Join(uniqueErrs(errs)...)
}

// referenced returns the first shard of every object the namespace still
// uses: live entries' contents and packs' objects. It reads the whole
// namespace.
func (s *session) referenced(ctx context.Context) (map[codec.ShardID]bool, error) {
	live := map[codec.ShardID]bool{}
	mark := func(ref *ObjRef) {
		for _, sh := range ref.Shards() {
			live[sh.ID] = true
		}
	}
	err := s.contentObjects(ctx, mark)
	return live, err
}

// contentObjects calls fn with every object the file list's contents use:
// packs' objects and live entries' objects (conflicting versions too:
// every head counts; an indirect reference's stored reference and its
// object). It reads the whole namespace.
func (s *session) contentObjects(ctx context.Context, fn func(*ObjRef)) error {
	v := s.log.view()
	err := v.Packs(ctx, func(p ns.Pack) error {
		if ref, err := UnmarshalObjRef(p.Ref); err == nil {
			fn(ref)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return v.Walk(ctx, "", func(e ns.Entry) error {
		if len(e.Content) == 0 || e.Content[0] == packedTag {
			return nil
		}
		objs, err := s.objectsOf(ctx, e.Content)
		if err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
		for _, r := range objs {
			fn(r)
		}
		return nil
	})
}

// collectLog deletes this device's log batches that are no longer needed:
// every device's latest checkpoint covers them, and they are older than
// grace (a process that loaded the namespace before may still walk back
// through them). A batch naming the new collected mark is published, so
// later walks stop there.
func (s *session) collectLog(ctx context.Context, grace time.Duration) (int, error) {
	l := s.log
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.RLock()
	own := l.own
	l.mu.RUnlock()
	if own.cp == nil || own.tip == nil {
		return 0, nil
	}
	devs, err := l.heads.Devices(ctx)
	if err != nil {
		return 0, err
	}
	tips, err := l.readTips(ctx, devs)
	if err != nil {
		return 0, err
	}
	limit := own.cp.Seq
	for d, t := range tips {
		if d == s.device || t.batch == nil {
			continue
		}
		if t.batch.Checkpoint == nil {
			if t.head.Version == 1 {
				return 0, nil // an old device's flat checkpoint: keep the log until it moves on
			}
			continue // a device without a checkpoint loads from ours
		}
		limit = min(limit, t.batch.Checkpoint.Covers[s.device].Seq)
	}
	if limit <= own.collected {
		return 0, nil
	}
	// Walk back from the tip; batches get older on the way, so the first
	// one at or below the limit that is old enough marks the new boundary.
	t := tips[s.device]
	if t == nil {
		return 0, nil
	}
	bs, err := l.fetchBatches(ctx, t, own.collected)
	if err != nil {
		return 0, err
	}
	cutoff := uint64(s.now().Add(-grace).UnixMilli()) << 16
	newGC := uint64(0)
	for i := len(bs) - 1; i >= 0; i-- {
		b := bs[i]
		if b.Seq > limit {
			continue
		}
		newest := uint64(0)
		for _, e := range b.Entries {
			newest = max(newest, e.Stamp.HLC)
		}
		if newest <= cutoff {
			newGC = b.Seq
			break
		}
	}
	if newGC == 0 {
		return 0, nil
	}
	refs := map[uint64][]byte{own.seq: own.tip}
	for _, p := range own.prevs {
		refs[p.Seq] = p.Ref
	}
	for _, b := range bs {
		for _, p := range b.Prevs {
			refs[p.Seq] = p.Ref
		}
	}
	l.mu.Lock()
	l.own.collected = newGC
	l.mu.Unlock()
	// A batch (possibly with no change) names the new mark.
	if err := l.flushMarker(ctx); err != nil {
		l.mu.Lock()
		l.own.collected = own.collected
		l.mu.Unlock()
		return 0, err
	}
	n := 0
	for seq := own.collected + 1; seq <= newGC; seq++ {
		r := refs[seq]
		if r == nil {
			continue
		}
		ref, err := UnmarshalObjRef(r)
		if err != nil {
			continue
		}
		if err := s.store.Delete(ctx, ref); err != nil {
			fs.Debugf(nil, "jellyfish: collect batch %d: %v", seq, err)
		}
		s.meta.Forget(r)
		n++
	}
	return n, nil
}

// collectNodes deletes the checkpoint nodes this device let go once they
// are older than grace and no device's current checkpoint uses them (a
// device may have built its checkpoint on one loaded from this device).
func (s *session) collectNodes(ctx context.Context, grace time.Duration) (int, error) {
	s.clean.mu.Lock()
	due := take(&s.clean.nodes, grace, s.now())
	s.clean.mu.Unlock()
	if len(due) == 0 {
		return 0, nil
	}
	putBack := func() {
		s.clean.mu.Lock()
		s.clean.nodes = append(due, s.clean.nodes...)
		s.clean.mu.Unlock()
	}
	inUse, err := s.checkpointNodes(ctx)
	if err != nil {
		putBack()
		return 0, err
	}
	n := 0
	var errs []error
	for _, u := range due {
		if inUse[string(u.content)] {
			continue
		}
		ref, err := UnmarshalObjRef(u.content)
		if err != nil {
			continue
		}
		if err := s.store.Delete(ctx, ref); err != nil && !errors.Is(err, shardproto.ErrNotFound) {
			errs = append(errs, err)
		}
		s.meta.Forget(u.content)
		n++
	}
	return n, errors.Join(uniqueErrs(errs)...)
}

// checkpointNodes returns the references of every node of every device's
// current checkpoint and of this device's base. Trees share most nodes, so
// each is visited once.
func (s *session) checkpointNodes(ctx context.Context) (map[string]bool, error) {
	devs, err := s.log.heads.Devices(ctx)
	if err != nil {
		return nil, err
	}
	tips, err := s.log.readTips(ctx, devs)
	if err != nil {
		return nil, err
	}
	roots := map[string]bool{}
	for _, t := range tips {
		if t.batch != nil && t.batch.Checkpoint != nil {
			roots[string(t.batch.Checkpoint.Root)] = true
		}
	}
	s.log.mu.RLock()
	if s.log.baseCP != nil {
		roots[string(s.log.baseCP.Root)] = true
	}
	if s.log.own.cp != nil {
		roots[string(s.log.own.cp.Root)] = true
	}
	s.log.mu.RUnlock()
	seen := map[string]bool{}
	for root := range roots {
		if seen[root] {
			continue
		}
		t, err := btree.New(s.log.treeConfig(), []byte(root))
		if err != nil {
			return nil, err
		}
		err = walkNew(ctx, t, seen)
		if err != nil {
			return nil, err
		}
	}
	return seen, nil
}

// walkNew adds every node of t to seen, not descending into subtrees seen
// already (trees of one account share most of their nodes).
func walkNew(ctx context.Context, t *btree.Tree, seen map[string]bool) error {
	return t.Walk(ctx, func(ref []byte, level int) error {
		seen[string(ref)] = true
		return nil
	})
}

// providerSummary counts, for `backend status`, which nodes hold the
// account's live data and the weakest segment's redundancy. It reads the
// whole namespace.
func (s *session) providerSummary(ctx context.Context) (holders []string, files int, minHeld, k, total int, err error) {
	seen := map[peer.ID]bool{}
	minHeld = -1
	var refs []*ObjRef
	v := s.log.view()
	err = v.Walk(ctx, "", func(e ns.Entry) error {
		if e.Dir {
			return nil
		}
		files++
		if len(e.Content) == 0 || e.Content[0] == packedTag {
			return nil
		}
		r, err := s.objectOf(ctx, e.Content)
		if err == nil && r != nil {
			refs = append(refs, r)
		}
		return nil
	})
	if err != nil {
		return nil, 0, 0, 0, 0, err
	}
	err = v.Packs(ctx, func(p ns.Pack) error {
		if r, err := UnmarshalObjRef(p.Ref); err == nil {
			refs = append(refs, r)
		}
		return nil
	})
	for _, ref := range refs {
		for _, n := range ref.Nodes {
			seen[n] = true
		}
		held, kk := ref.Health()
		if minHeld < 0 || held < minHeld {
			minHeld, k, total = held, kk, ref.Layout.Total()
		}
	}
	for p := range seen {
		holders = append(holders, p.String())
	}
	sort.Strings(holders)
	return holders, files, minHeld, k, total, err
}
