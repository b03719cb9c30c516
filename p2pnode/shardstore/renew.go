package shardstore

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
)

// Renew extends owner's leases on ids to until (a lease is never
// shortened). It returns the IDs owner holds no reference to; those are
// not renewed. until must lie in the future and within the maximum lease.
//
// The whole batch costs a fixed number of syncs, however many IDs it
// names: the new metadata records are written under tmp/ without a sync,
// made durable together (syncBatch), renamed over the old ones, and the
// renames made durable together, before Renew returns. A crash at any
// point leaves every record either the old one or the new one, both
// complete: a lease not yet made durable is the old lease, which the
// owner, who got no answer, renews again.
func (d *Disk) Renew(ctx context.Context, owner Owner, ids []codec.ShardID, until time.Time) ([]codec.ShardID, error) {
	const op = "shardstore: renew"
	if err := d.checkOpen(op); err != nil {
		return nil, err
	}
	if err := d.checkLease(op, until); err != nil {
		return nil, err
	}
	// Locks are taken in ID order, so two batches never wait on each other
	// in a cycle; every other operation holds one shard's lock at a time.
	sorted := slices.Clone(ids)
	slices.SortFunc(sorted, func(a, b codec.ShardID) int { return bytes.Compare(a[:], b[:]) })
	sorted = slices.Compact(sorted)
	unlocks := make([]func(), 0, len(sorted))
	defer func() {
		for _, unlock := range unlocks {
			unlock()
		}
	}()
	for _, id := range sorted {
		unlock, err := d.locks.lock(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		unlocks = append(unlocks, unlock)
	}
	absent := make(map[codec.ShardID]bool)
	var batch []renewal
	d.mu.Lock()
	for _, id := range sorted {
		m, ok := d.index[id]
		var old time.Time
		if ok {
			old, ok = m.owners[owner]
		}
		switch {
		case !ok:
			absent[id] = true
		case until.After(old):
			next := m.clone()
			next.owners[owner] = until
			batch = append(batch, renewal{id: id, next: next})
		}
	}
	d.mu.Unlock()
	// Missing IDs in the caller's order, each once.
	var missing []codec.ShardID
	for _, id := range ids {
		if absent[id] {
			missing = append(missing, id)
			delete(absent, id)
		}
	}
	if err := d.renewBatch(batch); err != nil {
		return missing, fmt.Errorf("%s: %w", op, err)
	}
	return missing, nil
}

// renewal is one metadata record a renew batch replaces.
type renewal struct {
	id      codec.ShardID
	next    *meta
	tmp     string
	renamed bool
}

// renewBatch replaces the metadata records of batch, whose shards' locks
// the caller holds: it writes them all under tmp/, syncs them at once,
// renames each over its shard's record and syncs the renames at once. The
// index takes every record that was renamed into place, even when a later
// step fails, so that it always says what the disk says.
func (d *Disk) renewBatch(batch []renewal) (err error) {
	if len(batch) == 0 {
		return nil
	}
	defer func() {
		d.mu.Lock()
		for _, r := range batch {
			if r.renamed {
				d.index[r.id] = r.next
			}
		}
		d.mu.Unlock()
		for _, r := range batch {
			if !r.renamed && r.tmp != "" {
				d.root.Remove(r.tmp)
			}
		}
	}()
	files := make([]string, 0, len(batch))
	for i := range batch {
		r := &batch[i]
		r.tmp = tmpName(r.id, metaExt)
		if err := d.write(r.tmp, os.O_EXCL, r.next.marshal()); err != nil {
			return err
		}
		files = append(files, r.tmp)
	}
	// The new records must be complete on disk before they replace the old
	// ones: a torn record under a shard's name would read as a put that
	// was never committed, and the next open would remove the shard.
	if err := d.syncBatch(files); err != nil {
		return err
	}
	dirs := make(map[string]bool)
	for i := range batch {
		r := &batch[i]
		dir, _, _, metaName := shardPath(r.id)
		if err := d.root.Rename(r.tmp, metaName); err != nil {
			return fmt.Errorf("rename metadata: %w", err)
		}
		r.renamed = true
		dirs[dir] = true
	}
	return d.syncBatch(slices.Sorted(maps.Keys(dirs)))
}

// write creates name (with flag os.O_EXCL or os.O_TRUNC) and writes b,
// without a sync. A full disk is reported as ErrNoSpace; the caller
// removes the file on error.
func (d *Disk) write(name string, flag int, b []byte) error {
	f, err := d.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|flag, 0o600)
	if err != nil {
		return diskErr("create", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return diskErr("write", err)
	}
	if err := f.Close(); err != nil {
		return diskErr("close", err)
	}
	return nil
}

// syncBatch makes the files or directories names durable. Where the
// system can flush the store's whole file system in one call (syncfs on
// Linux) that is one sync however many names there are; elsewhere each
// name is synced in turn.
func (d *Disk) syncBatch(names []string) error {
	if len(names) == 0 {
		return nil
	}
	if ok, err := d.syncFS(); ok {
		return err
	}
	for _, n := range names {
		if err := d.syncDir(n); err != nil {
			return err
		}
	}
	return nil
}
