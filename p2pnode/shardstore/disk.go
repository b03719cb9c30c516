package shardstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/zeebo/blake3"
)

const (
	tmpDir    = "tmp"
	shardsDir = "shards"
	treeExt   = ".tree"
	metaExt   = ".meta"
)

// Disk is the local shard store of a provider node. It is safe for
// concurrent use. Create it with New and release it with Close.
type Disk struct {
	root  *os.Root
	cfg   config
	quota int64
	locks keyLock
	puts  putCounter
	syncs atomic.Int64 // fsyncs issued (files and directories), for tests and benchmarks

	mu       sync.Mutex // guards everything below
	closed   bool
	index    map[codec.ShardID]*meta
	used     int64        // bytes of committed shards
	res      reservations // bytes reserved by puts in flight
	perOwner map[Owner]int64
	// groupOf and groupBytes place owners in the groups of their
	// allowances (Allowance.Group; absent is group "") and sum per group
	// what its owners reference and reserve.
	groupOf    map[Owner]string
	groupBytes map[string]int64

	rel releases // references owners deleted while their leases ran (released.go)
}

// New opens (creating if needed) the shard store in dir. It removes
// temporary files and incomplete shards left by a crash and loads the
// metadata of every shard. The store's quota comes from WithTier (default
// tier 0) or WithQuotaBytes; a store already holding more than its quota
// opens, but accepts no new shard until it is back under.
func New(dir string, opts ...Option) (*Disk, error) {
	cfg := config{clock: time.Now, maxShardSize: DefaultMaxShardSize, maxLease: DefaultMaxLease, share: DefaultReservationShare}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("shardstore: %w", err)
		}
	}
	quota := cfg.quota
	if !cfg.quotaSet {
		quota = TierBytes(cfg.tier)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("shardstore: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("shardstore: %w", err)
	}
	d := &Disk{
		root:       root,
		cfg:        cfg,
		quota:      quota,
		locks:      keyLock{m: make(map[codec.ShardID]*lockEntry)},
		index:      make(map[codec.ShardID]*meta),
		res:        newReservations(),
		perOwner:   make(map[Owner]int64),
		groupOf:    make(map[Owner]string),
		groupBytes: make(map[string]int64),
	}
	if err := d.load(); err != nil {
		root.Close()
		return nil, fmt.Errorf("shardstore: open %s: %w", dir, err)
	}
	return d, nil
}

// Close releases the store. Operations after Close fail with ErrClosed;
// files already open (readers returned by Get) stay readable.
func (d *Disk) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	return d.root.Close()
}

// shardPath returns the names of a shard's files. They derive only from
// the binary ID, never from caller-supplied text.
func shardPath(id codec.ShardID) (dir, data, tree, metaName string) {
	h := id.String()
	dir = path.Join(shardsDir, h[:2])
	data = path.Join(dir, h)
	return dir, data, data + treeExt, data + metaExt
}

// load prepares the directory layout, empties tmp/, drops incomplete
// shards and builds the index.
func (d *Disk) load() error {
	if err := d.root.RemoveAll(tmpDir); err != nil {
		return fmt.Errorf("clean %s: %w", tmpDir, err)
	}
	if err := d.root.Mkdir(tmpDir, 0o700); err != nil {
		return err
	}
	if err := mkdirNoLink(d.root, shardsDir); err != nil {
		return err
	}
	if err := d.loadReleases(d.now()); err != nil {
		return fmt.Errorf("%s: %w", releasedFile, err)
	}
	for i := 0; i < 256; i++ {
		sub := path.Join(shardsDir, fmt.Sprintf("%02x", i))
		if err := mkdirNoLink(d.root, sub); err != nil {
			return err
		}
		if err := d.loadDir(sub); err != nil {
			return err
		}
	}
	return d.syncDir(shardsDir)
}

// mkdirNoLink creates name if missing and insists it is a real directory,
// not a symbolic link planted in its place.
func mkdirNoLink(root *os.Root, name string) error {
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return root.Mkdir(name, 0o700)
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory (mode %v)", name, fi.Mode())
	}
	return nil
}

type pieces struct{ data, tree, meta fs.FileInfo }

func (d *Disk) loadDir(dir string) error {
	f, err := d.root.Open(dir)
	if err != nil {
		return err
	}
	ents, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return err
	}
	found := make(map[codec.ShardID]*pieces)
	for _, e := range ents {
		name := e.Name()
		base, ext, _ := strings.Cut(name, ".")
		id, err := codec.ParseShardID(base)
		if err != nil || !strings.HasPrefix(base, path.Base(dir)) || (ext != "" && "."+ext != treeExt && "."+ext != metaExt) {
			continue // not ours: leave it alone
		}
		full := path.Join(dir, name)
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			// A link or device under a shard's name is never ours.
			if err := d.root.Remove(full); err != nil {
				return fmt.Errorf("remove foreign %s: %w", full, err)
			}
			continue
		}
		p := found[id]
		if p == nil {
			p = &pieces{}
			found[id] = p
		}
		switch "." + ext {
		case ".":
			p.data = fi
		case treeExt:
			p.tree = fi
		case metaExt:
			p.meta = fi
		}
	}
	for id, p := range found {
		m, ok := d.loadShard(id, p)
		if !ok {
			_, data, tree, mn := shardPath(id)
			for _, n := range []string{mn, data, tree} {
				if err := d.root.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("remove incomplete %s: %w", n, err)
				}
			}
			continue
		}
		if p.tree != nil && p.tree.Size() != int64(treeFileSize(m.size)) {
			// A torn tree file or one of an older format: the next
			// proof builds the tree again.
			_, _, tree, _ := shardPath(id)
			if err := d.root.Remove(tree); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove stale %s: %w", tree, err)
			}
		}
		d.index[id] = m
		d.used += m.size
		for o := range m.owners {
			d.charge(o, m.size)
		}
	}
	return nil
}

// loadShard reports whether a shard's data and metadata form a committed
// shard. The tree file is a cache and plays no part.
func (d *Disk) loadShard(id codec.ShardID, p *pieces) (*meta, bool) {
	if p.data == nil || p.meta == nil || p.meta.Size() > metaHeaderSize+MaxOwners*metaOwnerSize+4 {
		return nil, false
	}
	_, _, _, mn := shardPath(id)
	b, err := d.root.ReadFile(mn)
	if err != nil {
		return nil, false
	}
	m, err := unmarshalMeta(b)
	if err != nil || p.data.Size() != m.size {
		return nil, false
	}
	return m, true
}

func (d *Disk) now() time.Time { return d.cfg.clock() }

func (d *Disk) checkOpen(op string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("%s: %w", op, ErrClosed)
	}
	return nil
}

func (d *Disk) checkLease(op string, lease time.Time) error {
	now := d.now()
	if !lease.After(now) {
		return fmtErr(op, ErrInvalid, "lease %v is not after now %v", lease.UTC(), now.UTC())
	}
	if lease.Sub(now) > d.cfg.maxLease {
		return fmtErr(op, ErrInvalid, "lease %v is more than %v ahead", lease.UTC(), d.cfg.maxLease)
	}
	return nil
}

// Put stores a shard for owner. It checks the size and lease, reserves
// quota space before reading r, then streams exactly size bytes to a
// temporary file while hashing them (holding one ChunkSize chunk, see
// PutMemory), refuses a root other than id and commits the shard
// atomically. When the shard is already held, r is not read:
// owner gains a reference and its lease is extended to lease. On any
// error nothing is stored and the reservation is released: a full quota
// fails with ErrQuotaExceeded, a full disk with ErrNoSpace, mismatching
// bytes with ErrIntegrity, a short body with io.ErrUnexpectedEOF.
//
// The reservation is charged to owner and to the source ctx names
// (ContextWithSource); a put that would take either past its share of the
// free space (WithReservationShare) fails with ErrBusy before r is read.
// Once reserved, the space stays the put's until it ends, so a put whose
// body arrives is never starved by others.
//
// A put that adds a reference owner does not hold yet is checked against
// the allowance ctx carries (ContextWithAllowance), counting the owner's
// puts in flight, and fails with an *AllowanceError (ErrOverAllowance)
// before r is read when it would pass it.
func (d *Disk) Put(ctx context.Context, owner Owner, id codec.ShardID, size int64, r io.Reader, lease time.Time) (err error) {
	const op = "shardstore: put"
	var committed *meta
	d.puts.begin()
	defer func() { d.puts.end(size, committed != nil, err) }()
	if size <= 0 {
		return fmtErr(op, ErrInvalid, "shard %s: size %d", id.Short(), size)
	}
	if size > d.cfg.maxShardSize {
		return fmtErr(op, ErrTooLarge, "shard %s: %d bytes, limit %d", id.Short(), size, d.cfg.maxShardSize)
	}
	if err := d.checkLease(op, lease); err != nil {
		return err
	}
	unlock, err := d.locks.lock(ctx, id)
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, id.Short(), err)
	}
	defer unlock()

	// Holding id's lock, the shard's entry and owners stay as read here
	// until Put ends; the allowance is looked up without the store's lock.
	m, held, err := d.entry(op, id)
	if err != nil {
		return err
	}
	var allow *Allowance
	if f := allowanceFuncOf(ctx); f != nil && (!held || !m.has(owner)) {
		a, err := f(ctx)
		if err != nil {
			return fmt.Errorf("%s %s: allowance: %w", op, id.Short(), err)
		}
		allow = &a
	}
	if held {
		if m.size != size {
			return fmtErr(op, ErrIntegrity, "shard %s is held with size %d, not %d", id.Short(), m.size, size)
		}
		return d.addRef(op, owner, id, lease, allow)
	}

	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return fmt.Errorf("%s: %w", op, ErrClosed)
	}
	free := d.quota - d.used - d.res.total
	if size > free {
		used, reserved := d.used, d.res.total
		d.mu.Unlock()
		return fmtErr(op, ErrQuotaExceeded, "shard %s needs %d bytes, %d of %d free (%d used, %d reserved)",
			id.Short(), size, max(free, 0), d.quota, used, reserved)
	}
	if allow != nil {
		if err := d.checkAllowance(owner, size, allow); err != nil {
			d.mu.Unlock()
			return fmt.Errorf("%s %s: %w", op, id.Short(), err)
		}
	}
	src := sourceOf(ctx)
	if err := d.res.admit(owner, src, size, d.cfg.reservationLimit(free)); err != nil {
		d.forgetIfEmpty(owner)
		d.mu.Unlock()
		return fmt.Errorf("%s %s: %w", op, id.Short(), err)
	}
	d.chargeReserved(owner, size)
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		// Commit first, so the owner's bytes never drop to zero between
		// the two and lose its group.
		if committed != nil {
			d.index[id] = committed
			d.used += size
			d.charge(owner, size)
		}
		d.res.release(owner, src, size)
		d.chargeReserved(owner, -size)
		d.mu.Unlock()
	}()

	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s: %w", op, id.Short(), err)
	}
	tmpData, err := d.receive(ctx, id, size, r)
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, id.Short(), err)
	}
	m = &meta{size: size, storedAt: d.now(), owners: map[Owner]time.Time{owner: lease}}
	if err := d.unrelease(owner, id); err != nil {
		d.root.Remove(tmpData)
		return fmt.Errorf("%s %s: withdraw a release: %w", op, id.Short(), err)
	}
	if err := d.commit(id, tmpData, m); err != nil {
		return fmt.Errorf("%s %s: %w", op, id.Short(), err)
	}
	committed = m
	return nil
}

// entry returns the index entry of id and whether the shard is held.
func (d *Disk) entry(op string, id codec.ShardID) (*meta, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, false, fmt.Errorf("%s: %w", op, ErrClosed)
	}
	m, ok := d.index[id]
	return m, ok, nil
}

func (m *meta) has(owner Owner) bool {
	_, ok := m.owners[owner]
	return ok
}

// addRef adds owner's reference to a held shard or extends its lease. A
// new reference is checked against allow (when not nil) and charged to
// owner before its record is written, so concurrent puts of one owner see
// each other. The caller holds id's lock.
func (d *Disk) addRef(op string, owner Owner, id codec.ShardID, lease time.Time, allow *Allowance) error {
	d.mu.Lock()
	m := d.index[id]
	old, had := m.owners[owner]
	if had && !lease.After(old) {
		d.mu.Unlock()
		return nil
	}
	if !had && len(m.owners) >= MaxOwners {
		d.mu.Unlock()
		return fmtErr(op, ErrQuotaExceeded, "shard %s already has %d owners", id.Short(), MaxOwners)
	}
	if !had {
		if allow != nil {
			if err := d.checkAllowance(owner, m.size, allow); err != nil {
				d.mu.Unlock()
				return fmt.Errorf("%s %s: %w", op, id.Short(), err)
			}
		}
		d.charge(owner, m.size)
	}
	next := m.clone()
	next.owners[owner] = lease
	d.mu.Unlock()
	if !had {
		if err := d.unrelease(owner, id); err != nil {
			d.mu.Lock()
			d.charge(owner, -m.size)
			d.mu.Unlock()
			return fmt.Errorf("%s %s: withdraw a release: %w", op, id.Short(), err)
		}
	}
	if err := d.writeMeta(id, next); err != nil {
		if !had {
			d.mu.Lock()
			d.charge(owner, -m.size)
			d.mu.Unlock()
		}
		return fmt.Errorf("%s %s: %w", op, id.Short(), err)
	}
	d.mu.Lock()
	d.index[id] = next
	d.mu.Unlock()
	return nil
}

func (m *meta) clone() *meta {
	c := &meta{size: m.size, storedAt: m.storedAt, owners: make(map[Owner]time.Time, len(m.owners)+1)}
	for o, l := range m.owners {
		c.owners[o] = l
	}
	return c
}

// commit takes the shard's synced temporary data file, renames it into
// place, writes the metadata record directly under its final name (create,
// write, fsync, close) and syncs the shard directory. The metadata record
// is the commit point: until it is complete and synced the shard is not
// committed, and a torn record fails its checksum, so the next open
// removes the shard, which was never acknowledged. On failure commit
// removes what it wrote, the temporary data file included.
func (d *Disk) commit(id codec.ShardID, tmpData string, m *meta) (err error) {
	dir, dataName, _, metaName := shardPath(id)
	placed := false
	defer func() {
		if err == nil {
			return
		}
		d.root.Remove(metaName)
		if placed {
			d.root.Remove(dataName)
		} else {
			d.root.Remove(tmpData)
		}
	}()
	if err := d.root.Rename(tmpData, dataName); err != nil {
		return fmt.Errorf("rename into place: %w", err)
	}
	placed = true
	if err := d.writeSync(metaName, os.O_TRUNC, m.marshal()); err != nil {
		return err
	}
	return d.syncDir(dir)
}

// writeMeta atomically replaces a shard's metadata record.
func (d *Disk) writeMeta(id codec.ShardID, m *meta) error {
	dir, _, _, metaName := shardPath(id)
	tmp := tmpName(id, metaExt)
	if err := d.writeSync(tmp, os.O_EXCL, m.marshal()); err != nil {
		d.root.Remove(tmp)
		return err
	}
	if err := d.root.Rename(tmp, metaName); err != nil {
		d.root.Remove(tmp)
		return fmt.Errorf("rename metadata: %w", err)
	}
	return d.syncDir(dir)
}

func tmpName(id codec.ShardID, ext string) string {
	var r [8]byte
	rand.Read(r[:])
	return path.Join(tmpDir, id.String()+"-"+hex.EncodeToString(r[:])+ext)
}

// writeSync creates name (with flag os.O_EXCL or os.O_TRUNC), writes b and
// syncs it. A full disk is reported as ErrNoSpace; the caller removes the
// file on error.
func (d *Disk) writeSync(name string, flag int, b []byte) error {
	f, err := d.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|flag, 0o600)
	if err != nil {
		return diskErr("create", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return diskErr("write", err)
	}
	d.syncs.Add(1)
	if err := f.Sync(); err != nil {
		f.Close()
		return diskErr("sync", err)
	}
	if err := f.Close(); err != nil {
		return diskErr("close", err)
	}
	return nil
}

func diskErr(op string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%s: %w: %w", op, ErrNoSpace, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func (d *Disk) syncDir(dir string) error {
	f, err := d.root.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	d.syncs.Add(1)
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

func (d *Disk) lookup(op string, id codec.ShardID) (*meta, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("%s: %w", op, ErrClosed)
	}
	m, ok := d.index[id]
	if !ok {
		return nil, fmt.Errorf("%s %s: %w", op, id.Short(), ErrNotFound)
	}
	return m, nil
}

// Stat describes a held shard, including every owner's lease.
func (d *Disk) Stat(ctx context.Context, id codec.ShardID) (Info, error) {
	m, err := d.lookup("shardstore: stat", id)
	if err != nil {
		return Info{}, err
	}
	return Info{ID: id, Size: m.size, StoredAt: m.storedAt, Lease: m.lease(), Refs: len(m.owners), Owners: m.sortedOwners()}, nil
}

// Get opens a held shard. The returned reader hashes the bytes as they are
// read and fails with ErrIntegrity at the end if the file no longer hashes
// to id (bit rot or tampering); the caller must Close it.
func (d *Disk) Get(ctx context.Context, id codec.ShardID) (io.ReadCloser, int64, error) {
	const op = "shardstore: get"
	m, err := d.lookup(op, id)
	if err != nil {
		return nil, 0, err
	}
	_, data, _, _ := shardPath(id)
	f, err := d.root.Open(data)
	if errors.Is(err, fs.ErrNotExist) {
		// Its record survived the shard's bytes (lost or removed under
		// the store): the shard is not held.
		return nil, 0, fmtErr(op, ErrNotFound, "shard %s: its data file is gone", id.Short())
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%s %s: %w", op, id.Short(), err)
	}
	return NewVerifyingReader(f, id, m.size), m.size, nil
}

// GetRange returns bytes [off, off+n) of a held shard. The bytes are read
// from the local disk and not re-verified; use Prove for verifiable bytes.
func (d *Disk) GetRange(ctx context.Context, id codec.ShardID, off, n int64) ([]byte, error) {
	const op = "shardstore: get range"
	m, err := d.lookup(op, id)
	if err != nil {
		return nil, err
	}
	if err := checkRange(op, id, off, n, m.size); err != nil {
		return nil, err
	}
	_, data, _, _ := shardPath(id)
	return d.readAt(op, id, data, off, n)
}

func checkRange(op string, id codec.ShardID, off, n, size int64) error {
	if off < 0 || n <= 0 || off > size || n > size-off {
		return fmtErr(op, ErrInvalid, "shard %s: range %d+%d outside %d bytes", id.Short(), off, n, size)
	}
	return nil
}

func (d *Disk) readAt(op string, id codec.ShardID, name string, off, n int64) ([]byte, error) {
	f, err := d.root.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, id.Short(), err)
	}
	defer f.Close()
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, id.Short(), err)
	}
	return buf, nil
}

// Prove returns the codec.Prove proof for bytes [off, off+n) of a held
// shard, built from its outboard tree and only the covering leaves. The
// first proof of a shard builds the tree from the stored bytes (failing
// with ErrIntegrity if they no longer hash to id) and caches it in the
// tree file; later proofs read the tree file (see ProveMemory).
func (d *Disk) Prove(ctx context.Context, id codec.ShardID, off, n int64) ([]byte, error) {
	const op = "shardstore: prove"
	m, err := d.lookup(op, id)
	if err != nil {
		return nil, err
	}
	if err := checkRange(op, id, off, n, m.size); err != nil {
		return nil, err
	}
	tree, err := d.tree(ctx, id, m.size)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, id.Short(), err)
	}
	_, data, _, _ := shardPath(id)
	start, end := codec.LeafSpan(off, n, m.size)
	covering, err := d.readAt(op, id, data, start, end-start)
	if err != nil {
		return nil, err
	}
	proof, err := codec.Prove(tree, covering, off, n)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, id.Short(), err)
	}
	return proof, nil
}

// Challenge answers a salted-hash audit of a held shard:
// BLAKE3-256(salt ‖ shard bytes), streamed from disk.
func (d *Disk) Challenge(ctx context.Context, id codec.ShardID, salt [32]byte) ([32]byte, error) {
	const op = "shardstore: challenge"
	var out [32]byte
	if _, err := d.lookup(op, id); err != nil {
		return out, err
	}
	_, data, _, _ := shardPath(id)
	f, err := d.root.Open(data)
	if err != nil {
		return out, fmt.Errorf("%s %s: %w", op, id.Short(), err)
	}
	defer f.Close()
	h := newChallengeHash(salt)
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return out, fmt.Errorf("%s %s: %w", op, id.Short(), err)
	}
	h.Sum(out[:0])
	return out, nil
}

func newChallengeHash(salt [32]byte) hash.Hash {
	h := blake3.New()
	h.Write(salt[:])
	return h
}

// ctxReader stops a long read when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Delete drops owner's reference to a shard and removes the shard once no
// reference is left (metadata first, so a crash leaves only orphans that
// the next open removes). ErrNotFound if owner holds no reference.
func (d *Disk) Delete(ctx context.Context, owner Owner, id codec.ShardID) error {
	const op = "shardstore: delete"
	unlock, err := d.locks.lock(ctx, id)
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, id.Short(), err)
	}
	defer unlock()
	m, err := d.lookup(op, id)
	if err != nil {
		return err
	}
	lease, ok := m.owners[owner]
	if !ok {
		return fmt.Errorf("%s %s: owner %s: %w", op, id.Short(), owner.Short(), ErrNotFound)
	}
	// The release is recorded first: a crash after it leaves a release
	// of a reference still held, which only costs the owner a signature.
	if err := d.release(owner, id, lease); err != nil {
		return fmt.Errorf("%s %s: record the release: %w", op, id.Short(), err)
	}
	next := m.clone()
	delete(next.owners, owner)
	if err := d.replace(id, m, next); err != nil {
		return fmt.Errorf("%s %s: %w", op, id.Short(), err)
	}
	return nil
}

// replace swaps a shard's metadata for next, removing the shard when next
// has no owner left, and updates the accounting. The caller holds id's lock.
func (d *Disk) replace(id codec.ShardID, old, next *meta) error {
	if len(next.owners) == 0 {
		dir, data, tree, metaName := shardPath(id)
		if err := d.root.Remove(metaName); err != nil {
			return err
		}
		// The shard is gone once its metadata is; leftovers are orphans.
		d.root.Remove(data)
		d.root.Remove(tree)
		d.syncDir(dir)
	} else if err := d.writeMeta(id, next); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for o := range old.owners {
		if _, kept := next.owners[o]; !kept {
			d.charge(o, -old.size)
		}
	}
	if len(next.owners) == 0 {
		delete(d.index, id)
		d.used -= old.size
	} else {
		d.index[id] = next
	}
	return nil
}

// GCStats reports what GC removed.
type GCStats struct {
	// Refs is the number of expired owner references dropped.
	Refs int
	// Shards and Bytes count the shards removed because no lease was left.
	Shards int
	Bytes  int64
}

// GC drops every owner reference whose lease expired at or before now and
// removes the shards left without one.
func (d *Disk) GC(ctx context.Context, now time.Time) (GCStats, error) {
	const op = "shardstore: gc"
	var st GCStats
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return st, fmt.Errorf("%s: %w", op, ErrClosed)
	}
	var due []codec.ShardID
	for id, m := range d.index {
		for _, l := range m.owners {
			if !l.After(now) {
				due = append(due, id)
				break
			}
		}
	}
	d.mu.Unlock()
	for _, id := range due {
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("%s: %w", op, err)
		}
		if err := d.gcOne(ctx, id, now, &st); err != nil {
			return st, fmt.Errorf("%s %s: %w", op, id.Short(), err)
		}
	}
	return st, nil
}

func (d *Disk) gcOne(ctx context.Context, id codec.ShardID, now time.Time, st *GCStats) error {
	unlock, err := d.locks.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	d.mu.Lock()
	m, ok := d.index[id]
	d.mu.Unlock()
	if !ok {
		return nil
	}
	next := m.clone()
	for o, l := range m.owners {
		if !l.After(now) {
			delete(next.owners, o)
		}
	}
	dropped := len(m.owners) - len(next.owners)
	if dropped == 0 {
		return nil
	}
	if err := d.replace(id, m, next); err != nil {
		return err
	}
	st.Refs += dropped
	if len(next.owners) == 0 {
		st.Shards++
		st.Bytes += m.size
	}
	return nil
}

// Usage reports the store's space accounting.
type Usage struct {
	Quota    int64 // shared space in bytes
	Used     int64 // bytes of stored shards (each shard counted once)
	Reserved int64 // bytes reserved by puts in flight
	// ReservedByOwner and ReservedBySource split Reserved by the puts'
	// owners and by their sources (ContextWithSource); puts that named no
	// source count in ReservedByOwner only.
	ReservedByOwner  map[Owner]int64
	ReservedBySource map[netip.Prefix]int64
	Shards           int
	// PerOwner charges each owner the full size of every shard it
	// references; a shared shard is charged to each of its owners.
	PerOwner map[Owner]int64
	// PerGroup sums, per group of owners (Allowance.Group), what its
	// owners reference and reserve.
	PerGroup map[string]int64
}

// Usage returns a snapshot of the space accounting. Quota counts shard
// bytes; the outboard trees and metadata (under 0.5% more) are not charged.
func (d *Disk) Usage() Usage {
	d.mu.Lock()
	defer d.mu.Unlock()
	u := Usage{Quota: d.quota, Used: d.used, Reserved: d.res.total, Shards: len(d.index), PerOwner: maps.Clone(d.perOwner),
		ReservedByOwner: maps.Clone(d.res.byOwner), ReservedBySource: maps.Clone(d.res.bySource), PerGroup: maps.Clone(d.groupBytes)}
	return u
}

// For returns owner's view of the store, which satisfies Store and Auditee.
func (d *Disk) For(owner Owner) *View { return &View{d: d, owner: owner} }

// View is one owner's view of a Disk.
type View struct {
	d     *Disk
	owner Owner
}

var (
	_ Store   = (*View)(nil)
	_ Auditee = (*View)(nil)
	_ Auditee = (*Disk)(nil)
)

// Put stores a shard for the view's owner (see Disk.Put).
func (v *View) Put(ctx context.Context, id codec.ShardID, size int64, r io.Reader, lease time.Time) error {
	return v.d.Put(ctx, v.owner, id, size, r, lease)
}

// Get opens a shard (see Disk.Get).
func (v *View) Get(ctx context.Context, id codec.ShardID) (io.ReadCloser, int64, error) {
	return v.d.Get(ctx, id)
}

// GetRange reads a byte range of a shard (see Disk.GetRange).
func (v *View) GetRange(ctx context.Context, id codec.ShardID, off, n int64) ([]byte, error) {
	return v.d.GetRange(ctx, id, off, n)
}

// Stat describes a shard (see Disk.Stat).
func (v *View) Stat(ctx context.Context, id codec.ShardID) (Info, error) { return v.d.Stat(ctx, id) }

// Delete drops the view's owner's reference (see Disk.Delete).
func (v *View) Delete(ctx context.Context, id codec.ShardID) error {
	return v.d.Delete(ctx, v.owner, id)
}

// Renew extends the view's owner's leases (see Disk.Renew).
func (v *View) Renew(ctx context.Context, ids []codec.ShardID, until time.Time) ([]codec.ShardID, error) {
	return v.d.Renew(ctx, v.owner, ids, until)
}

// Challenge answers a salted-hash audit (see Disk.Challenge).
func (v *View) Challenge(ctx context.Context, id codec.ShardID, salt [32]byte) ([32]byte, error) {
	return v.d.Challenge(ctx, id, salt)
}

// Prove proves a byte range (see Disk.Prove).
func (v *View) Prove(ctx context.Context, id codec.ShardID, off, n int64) ([]byte, error) {
	return v.d.Prove(ctx, id, off, n)
}
