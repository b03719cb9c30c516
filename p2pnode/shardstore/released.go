package shardstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
)

// Releases: the references owners deleted while the lease they held ran.
// A holder that answered such an owner's later audit with a signed
// "not found" would sign what looks like evidence of a deletion inside the
// lease (karma's DeletedPart) although the owner asked for it: any account
// could frame an honest holder by storing, renewing, deleting and
// auditing. So the store remembers each release until the lease it ended
// would have ended, and the shard service answers that owner's audits of
// that shard without a signature (docs/design.md §6.6, §6.12). The
// releases are kept across restarts, in releasedFile.
const (
	releasedFile = "released"
	// MaxReleasesPerOwner bounds the releases kept per owner. Past it, the
	// release that ends first is dropped and the owner loses signed
	// not-found answers for every shard until it would have ended: an
	// owner can never get one signed by deleting more than the bound.
	MaxReleasesPerOwner = 1024
	// MaxReleases bounds the releases kept in all (about 100 bytes of
	// memory and 72 of file each): past it, a delete of a reference whose
	// lease still runs is refused, and the reference lapses with its
	// lease instead.
	MaxReleases = 1 << 18
	// releaseRecord is one line of releasedFile: owner ‖ shard ‖ until
	// (Unix ns, big-endian); a zero shard is an owner-wide release, an
	// until of zero withdraws the (owner, shard) release (the owner
	// stored the shard again).
	releaseRecord = OwnerSize + codec.IDSize + 8
)

type ownerReleases struct {
	shards map[codec.ShardID]time.Time
	all    time.Time // owner-wide, after the bound was passed
}

type releases struct {
	mu      sync.Mutex
	byOwner map[Owner]*ownerReleases
	records int // records in the file
	live    int // releases held in memory
}

// loadReleases reads releasedFile, keeping what has not ended by now,
// and rewrites it without the rest when that drops anything.
func (d *Disk) loadReleases(now time.Time) error {
	d.rel.byOwner = map[Owner]*ownerReleases{}
	f, err := d.root.Open(releasedFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	b, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return err
	}
	n := len(b) / releaseRecord // a torn last record is dropped
	for i := range n {
		r := b[i*releaseRecord : (i+1)*releaseRecord]
		var o Owner
		var id codec.ShardID
		copy(o[:], r[:OwnerSize])
		copy(id[:], r[OwnerSize:OwnerSize+codec.IDSize])
		until := time.Unix(0, int64(binary.BigEndian.Uint64(r[OwnerSize+codec.IDSize:])))
		d.rel.apply(o, id, until, now)
	}
	d.rel.records = n
	if d.rel.live < n {
		return d.compactReleases()
	}
	return nil
}

// apply adds one record to the releases in memory. The caller holds
// rel.mu or is loading.
func (r *releases) apply(o Owner, id codec.ShardID, until, now time.Time) (evicted bool, evictedUntil time.Time) {
	or := r.byOwner[o]
	if or == nil {
		or = &ownerReleases{shards: map[codec.ShardID]time.Time{}}
		r.byOwner[o] = or
	}
	switch {
	case id.IsZero():
		if until.After(or.all) {
			or.all = until
		}
	case until.UnixNano() == 0:
		if _, ok := or.shards[id]; ok {
			delete(or.shards, id)
			r.live--
		}
	case until.After(now):
		if old, ok := or.shards[id]; !ok {
			r.live++
		} else if old.After(until) {
			until = old
		}
		or.shards[id] = until
		if len(or.shards) > MaxReleasesPerOwner {
			var first codec.ShardID
			var at time.Time
			for s, u := range or.shards {
				if at.IsZero() || u.Before(at) {
					first, at = s, u
				}
			}
			delete(or.shards, first)
			r.live--
			if at.After(or.all) {
				or.all = at
			}
			evicted, evictedUntil = true, at
		}
	}
	if len(or.shards) == 0 && !or.all.After(now) {
		delete(r.byOwner, o)
	}
	return evicted, evictedUntil
}

func releaseBytes(o Owner, id codec.ShardID, until time.Time) []byte {
	b := make([]byte, 0, releaseRecord)
	b = append(b, o[:]...)
	b = append(b, id[:]...)
	var n int64
	if !until.IsZero() {
		n = until.UnixNano()
	}
	return binary.BigEndian.AppendUint64(b, uint64(n))
}

// release records that owner deleted its reference to id, whose lease ran
// until; nothing when it had ended. The record is synced before it counts.
func (d *Disk) release(owner Owner, id codec.ShardID, until time.Time) error {
	now := d.now()
	if !until.After(now) {
		return nil
	}
	d.rel.mu.Lock()
	defer d.rel.mu.Unlock()
	if d.rel.live >= MaxReleases {
		return fmt.Errorf("%w: %d deleted references remembered until their leases end; this one lapses with its lease", ErrQuotaExceeded, d.rel.live)
	}
	rec := releaseBytes(owner, id, until)
	evicted, at := d.rel.apply(owner, id, until, now)
	if evicted {
		rec = append(rec, releaseBytes(owner, codec.ShardID{}, at)...)
	}
	if err := d.writeSync(releasedFile, os.O_APPEND, rec); err != nil {
		return err
	}
	d.rel.records += len(rec) / releaseRecord
	if d.rel.records > 2*d.rel.live+1024 {
		return d.compactReleases()
	}
	return nil
}

// unrelease withdraws owner's release of id: it stores the shard again.
func (d *Disk) unrelease(owner Owner, id codec.ShardID) error {
	d.rel.mu.Lock()
	defer d.rel.mu.Unlock()
	or := d.rel.byOwner[owner]
	if or == nil {
		return nil
	}
	if _, ok := or.shards[id]; !ok {
		return nil
	}
	d.rel.apply(owner, id, time.Unix(0, 0), d.now())
	if err := d.writeSync(releasedFile, os.O_APPEND, releaseBytes(owner, id, time.Time{})); err != nil {
		return err
	}
	d.rel.records++
	return nil
}

// compactReleases rewrites releasedFile with the live releases only. The
// caller holds rel.mu or is loading.
func (d *Disk) compactReleases() error {
	now := d.now()
	var b []byte
	live := 0
	for o, or := range d.rel.byOwner {
		if or.all.After(now) {
			b = append(b, releaseBytes(o, codec.ShardID{}, or.all)...)
		}
		for id, u := range or.shards {
			if u.After(now) {
				b = append(b, releaseBytes(o, id, u)...)
				live++
			} else {
				delete(or.shards, id)
			}
		}
	}
	tmp := tmpDir + "/" + releasedFile
	if err := d.writeSync(tmp, os.O_TRUNC, b); err != nil {
		return err
	}
	if err := d.root.Rename(tmp, releasedFile); err != nil {
		return fmt.Errorf("rename %s: %w", releasedFile, err)
	}
	d.rel.records, d.rel.live = len(b)/releaseRecord, live
	return nil
}

// Released reports whether owner deleted its reference to id while its
// lease ran, and that lease would not have ended yet: a "not found" for
// that owner is then of its own making, and the shard service does not
// sign it.
func (d *Disk) Released(owner Owner, id codec.ShardID) bool {
	now := d.now()
	d.rel.mu.Lock()
	defer d.rel.mu.Unlock()
	or := d.rel.byOwner[owner]
	if or == nil {
		return false
	}
	return or.all.After(now) || or.shards[id].After(now)
}
