package shardstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"lukechampine.com/blake3"
)

var (
	ownerA = Owner{1}
	ownerB = Owner{2}
	t0     = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
)

// fakeClock is a settable clock for lease tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func newShard(rng *rand.Rand, n int) ([]byte, codec.ShardID) {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b, codec.IDOf(b)
}

func openStore(t *testing.T, dir string, opts ...Option) *Disk {
	t.Helper()
	d, err := New(dir, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func put(t *testing.T, d *Disk, o Owner, shard []byte, id codec.ShardID, lease time.Time) {
	t.Helper()
	if err := d.Put(context.Background(), o, id, int64(len(shard)), bytes.NewReader(shard), lease); err != nil {
		t.Fatalf("Put %s: %v", id.Short(), err)
	}
}

// storeFiles lists every file (not directory) under dir, relative to it.
func storeFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assertEmpty checks that no shard, temp file or accounting is left.
func assertEmpty(t *testing.T, d *Disk, dir string) {
	t.Helper()
	if files := storeFiles(t, dir); len(files) != 0 {
		t.Fatalf("files left in store: %v", files)
	}
	u := d.Usage()
	if u.Used != 0 || u.Reserved != 0 || u.Shards != 0 || len(u.PerOwner) != 0 {
		t.Fatalf("usage not empty: %+v", u)
	}
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	clk := &fakeClock{now: t0}
	d := openStore(t, dir, WithClock(clk.Now), WithQuotaBytes(10<<20))
	rng := rand.New(rand.NewPCG(1, 1))
	ctx := context.Background()
	lease := t0.Add(time.Hour)
	shards := map[codec.ShardID][]byte{}
	var total int64
	for _, n := range []int{1, 1000, codec.LeafSize, codec.LeafSize + 1, 5*codec.LeafSize + 77, 300 << 10} {
		b, id := newShard(rng, n)
		put(t, d, ownerA, b, id, lease)
		shards[id] = b
		total += int64(n)
	}
	check := func(d *Disk) {
		t.Helper()
		for id, b := range shards {
			rc, size, err := d.Get(ctx, id)
			if err != nil || size != int64(len(b)) {
				t.Fatalf("Get %s: size %d err %v", id.Short(), size, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("Get %s: %d bytes, err %v", id.Short(), len(got), err)
			}
			off, n := int64(len(b))/3, int64(len(b))/2+1
			r, err := d.GetRange(ctx, id, off, n)
			if err != nil || !bytes.Equal(r, b[off:off+n]) {
				t.Fatalf("GetRange %s %d+%d: err %v", id.Short(), off, n, err)
			}
			info, err := d.Stat(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if info.ID != id || info.Size != int64(len(b)) || !info.Lease.Equal(lease) || !info.StoredAt.Equal(t0) ||
				info.Refs != 1 || len(info.Owners) != 1 || info.Owners[0].Owner != ownerA {
				t.Fatalf("Stat %s = %+v", id.Short(), info)
			}
		}
		u := d.Usage()
		if u.Used != total || u.Reserved != 0 || u.Shards != len(shards) || u.PerOwner[ownerA] != total || u.Quota != 10<<20 {
			t.Fatalf("Usage = %+v, want used %d", u, total)
		}
	}
	check(d)
	if _, err := d.GetRange(ctx, codec.IDOf([]byte("x")), 0, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetRange missing: %v", err)
	}
	for id, b := range shards {
		if _, err := d.GetRange(ctx, id, int64(len(b)), 1); !errors.Is(err, ErrInvalid) {
			t.Fatalf("range past end: %v", err)
		}
		break
	}
	// Everything survives a reopen.
	d.Close()
	if _, err := d.Stat(ctx, codec.ShardID{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Stat after Close: %v", err)
	}
	check(openStore(t, dir, WithClock(clk.Now), WithQuotaBytes(10<<20)))

	// Only names derived from shard IDs exist under shards/.
	re := regexp.MustCompile(`^shards/([0-9a-f]{2})/([0-9a-f]{64})(\.tree|\.meta)?$`)
	for _, f := range storeFiles(t, dir) {
		m := re.FindStringSubmatch(filepath.ToSlash(f))
		if m == nil || !strings.HasPrefix(m[2], m[1]) {
			t.Fatalf("unexpected file %q in store", f)
		}
	}
}

func TestPutRefusesBadBytes(t *testing.T) {
	dir := t.TempDir()
	d := openStore(t, dir, WithClock((&fakeClock{now: t0}).Now))
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(2, 2))
	b, id := newShard(rng, 50_000)
	bad := bytes.Clone(b)
	bad[len(bad)/2] ^= 1
	err := d.Put(ctx, ownerA, id, int64(len(bad)), bytes.NewReader(bad), t0.Add(time.Hour))
	if !errors.Is(err, ErrIntegrity) {
		t.Fatalf("mismatching bytes: err %v, want ErrIntegrity", err)
	}
	if _, err := d.Stat(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat after refused put: %v", err)
	}
	// A short body is refused too.
	err = d.Put(ctx, ownerA, id, int64(len(b)), bytes.NewReader(b[:len(b)-1]), t0.Add(time.Hour))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short body: %v", err)
	}
	// Bad sizes and leases never touch the disk.
	for _, c := range []struct {
		size  int64
		lease time.Time
		want  error
	}{
		{0, t0.Add(time.Hour), ErrInvalid},
		{-5, t0.Add(time.Hour), ErrInvalid},
		{DefaultMaxShardSize + 1, t0.Add(time.Hour), ErrTooLarge},
		{int64(len(b)), t0, ErrInvalid},
		{int64(len(b)), t0.Add(-time.Hour), ErrInvalid},
		{int64(len(b)), t0.Add(DefaultMaxLease + time.Hour), ErrInvalid},
	} {
		if err := d.Put(ctx, ownerA, id, c.size, bytes.NewReader(b), c.lease); !errors.Is(err, c.want) {
			t.Fatalf("size %d lease %v: err %v, want %v", c.size, c.lease, err, c.want)
		}
	}
	assertEmpty(t, d, filepath.Join(dir, "shards"))
	if files := storeFiles(t, filepath.Join(dir, "tmp")); len(files) != 0 {
		t.Fatalf("temp files left: %v", files)
	}
}

// countingReader records whether it was read.
type countingReader struct {
	r     io.Reader
	reads atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.r.Read(p)
}

func TestQuotaExceeded(t *testing.T) {
	dir := t.TempDir()
	d := openStore(t, dir, WithQuotaBytes(100_000), WithClock((&fakeClock{now: t0}).Now))
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 3))
	b1, id1 := newShard(rng, 60_000)
	b2, id2 := newShard(rng, 60_000)
	put(t, d, ownerA, b1, id1, t0.Add(time.Hour))
	cr := &countingReader{r: bytes.NewReader(b2)}
	err := d.Put(ctx, ownerB, id2, int64(len(b2)), cr, t0.Add(time.Hour))
	if !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("over quota: %v", err)
	}
	for _, want := range []string{"60000", "40000", "100000"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("quota error %q does not mention %s", err, want)
		}
	}
	if cr.reads.Load() != 0 {
		t.Fatal("body was read although the quota was full")
	}
	if _, err := d.Stat(ctx, id2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused shard is stored: %v", err)
	}
	if u := d.Usage(); u.Used != 60_000 || u.Reserved != 0 || u.PerOwner[ownerB] != 0 {
		t.Fatalf("usage after refused put: %+v", u)
	}
	// A failed put releases its reservation: after a bad-hash put the
	// space is still free for a good one.
	b3, id3 := newShard(rng, 40_000)
	bad := bytes.Clone(b3)
	bad[0] ^= 1
	if err := d.Put(ctx, ownerB, id3, int64(len(bad)), bytes.NewReader(bad), t0.Add(time.Hour)); !errors.Is(err, ErrIntegrity) {
		t.Fatal(err)
	}
	put(t, d, ownerB, b3, id3, t0.Add(time.Hour))
	if u := d.Usage(); u.Used != 100_000 {
		t.Fatalf("used %d, want 100000", u.Used)
	}
}

// slowReader hands out a few bytes per call so concurrent puts overlap.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	if len(p) > 997 {
		p = p[:997]
	}
	return s.r.Read(p)
}

func TestConcurrentPutsNeverExceedQuota(t *testing.T) {
	const (
		size    = 20_000
		fit     = 7
		workers = 64
	)
	dir := t.TempDir()
	d := openStore(t, dir, WithQuotaBytes(fit*size+size/2), WithClock((&fakeClock{now: t0}).Now))
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(4, 4))
	type job struct {
		b  []byte
		id codec.ShardID
	}
	jobs := make([]job, workers)
	for i := range jobs {
		jobs[i].b, jobs[i].id = newShard(rng, size)
	}
	stop := make(chan struct{})
	var watchErr atomic.Value
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if u := d.Usage(); u.Used+u.Reserved > u.Quota {
				watchErr.Store(fmt.Sprintf("used %d + reserved %d > quota %d", u.Used, u.Reserved, u.Quota))
			}
		}
	}()
	var ok, full atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := jobs[i]
			err := d.Put(ctx, Owner{byte(i)}, j.id, size, slowReader{bytes.NewReader(j.b)}, t0.Add(time.Hour))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrQuotaExceeded):
				full.Add(1)
			default:
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(stop)
	watch.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("unexpected put error: %v", err)
	}
	if v := watchErr.Load(); v != nil {
		t.Fatal(v)
	}
	if ok.Load() != fit || full.Load() != workers-fit {
		t.Fatalf("%d stored, %d refused; want %d and %d", ok.Load(), full.Load(), fit, workers-fit)
	}
	u := d.Usage()
	if u.Used != fit*size || u.Reserved != 0 || u.Shards != fit {
		t.Fatalf("usage %+v", u)
	}
	// Data and metadata; a tree file appears only once a proof needs it.
	if n := len(storeFiles(t, filepath.Join(dir, "shards"))); n != 2*fit {
		t.Fatalf("%d files on disk, want %d", n, 2*fit)
	}
}

func TestSharedShardOwners(t *testing.T) {
	dir := t.TempDir()
	clk := &fakeClock{now: t0}
	d := openStore(t, dir, WithClock(clk.Now), WithQuotaBytes(1<<20))
	ctx := context.Background()
	b, id := newShard(rand.New(rand.NewPCG(5, 5)), 70_000)
	put(t, d, ownerA, b, id, t0.Add(time.Hour))
	// A second put of held bytes does not read the body; it adds the
	// owner and extends leases.
	cr := &countingReader{r: strings.NewReader("not the shard")}
	if err := d.Put(ctx, ownerB, id, int64(len(b)), cr, t0.Add(2*time.Hour)); err != nil || cr.reads.Load() != 0 {
		t.Fatalf("dedup put: err %v, reads %d", err, cr.reads.Load())
	}
	if err := d.Put(ctx, ownerA, id, int64(len(b)), cr, t0.Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, ownerA, id, int64(len(b))+1, cr, t0.Add(time.Hour)); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("held shard with another size: %v", err)
	}
	info, _ := d.Stat(ctx, id)
	if info.Refs != 2 || !info.Owners[0].Lease.Equal(t0.Add(time.Hour)) || !info.Lease.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("Stat %+v: a lease was shortened or an owner missing", info)
	}
	u := d.Usage()
	if u.Used != 70_000 || u.PerOwner[ownerA] != 70_000 || u.PerOwner[ownerB] != 70_000 {
		t.Fatalf("usage %+v", u)
	}
	if err := d.Delete(ctx, Owner{9}, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete by a non-owner: %v", err)
	}
	if err := d.Delete(ctx, ownerA, id); err != nil {
		t.Fatal(err)
	}
	if info, err := d.Stat(ctx, id); err != nil || info.Refs != 1 {
		t.Fatalf("after first delete: %+v %v", info, err)
	}
	if err := d.Delete(ctx, ownerA, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete by the same owner: %v", err)
	}
	if err := d.Delete(ctx, ownerB, id); err != nil {
		t.Fatal(err)
	}
	assertEmpty(t, d, filepath.Join(dir, "shards"))
}

func TestCrashLeftoversCleanedOnOpen(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(6, 6))
	d := openStore(t, dir, WithClock((&fakeClock{now: t0}).Now))
	good, goodID := newShard(rng, 40_000)
	put(t, d, ownerA, good, goodID, t0.Add(time.Hour))
	d.Close()

	write := func(rel string, b []byte) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rel := func(id codec.ShardID) string { return filepath.Join("shards", id.String()[:2], id.String()) }
	// A crash mid-put: temp files.
	write(filepath.Join("tmp", goodID.String()+"-0011223344556677"), good[:100])
	write(filepath.Join("tmp", "junk.meta"), []byte("x"))
	// A crash after renaming the data into place but before the metadata
	// was written (with a tree file left by an earlier life of the shard).
	orphan, orphanID := newShard(rng, 30_000)
	tree, _ := codec.Tree(orphan)
	write(rel(orphanID), orphan)
	write(rel(orphanID)+".tree", tree)
	// Metadata whose data is missing, and a truncated shard.
	_, lostID := newShard(rng, 30_000)
	write(rel(lostID)+".meta", (&meta{size: 30_000, storedAt: t0, owners: map[Owner]time.Time{ownerA: t0.Add(time.Hour)}}).marshal())
	trunc, truncID := newShard(rng, 30_000)
	ttree, _ := codec.Tree(trunc)
	write(rel(truncID), trunc[:20_000])
	write(rel(truncID)+".tree", ttree)
	write(rel(truncID)+".meta", (&meta{size: 30_000, storedAt: t0, owners: map[Owner]time.Time{ownerA: t0.Add(time.Hour)}}).marshal())
	// A corrupt metadata record.
	bad, badID := newShard(rng, 10_000)
	btree, _ := codec.Tree(bad)
	write(rel(badID), bad)
	write(rel(badID)+".tree", btree)
	write(rel(badID)+".meta", []byte("JFSM garbage that fails the checksum"))
	// A crash while the metadata was being written in place: a torn record.
	torn, tornID := newShard(rng, 10_000)
	write(rel(tornID), torn)
	write(rel(tornID)+".meta", (&meta{size: 10_000, storedAt: t0, owners: map[Owner]time.Time{ownerA: t0.Add(time.Hour)}}).marshal()[:30])
	// A file that is not ours stays.
	write(filepath.Join("shards", "README"), []byte("hello"))

	d = openStore(t, dir, WithClock((&fakeClock{now: t0}).Now))
	files := storeFiles(t, dir)
	want := []string{filepath.Join("shards", "README"), rel(goodID), rel(goodID) + ".meta"}
	if strings.Join(files, "\n") != strings.Join(want, "\n") {
		t.Fatalf("after reopen files are\n%s\nwant\n%s", strings.Join(files, "\n"), strings.Join(want, "\n"))
	}
	if u := d.Usage(); u.Shards != 1 || u.Used != 40_000 {
		t.Fatalf("usage %+v", u)
	}
}

func TestSymlinksCannotEscape(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("outside the store"), 0o600); err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{now: t0}
	d := openStore(t, dir, WithClock(clk.Now))
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 7))

	// A fan-out directory replaced by a link to the outside: the put fails
	// and writes nothing outside.
	b, id := newShard(rng, 20_000)
	sub := filepath.Join(dir, "shards", id.String()[:2])
	if err := os.Remove(sub); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, sub); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, ownerA, id, int64(len(b)), bytes.NewReader(b), t0.Add(time.Hour)); err == nil {
		t.Fatal("put through a link leaving the store succeeded")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Fatalf("files written outside the store: %v", ents)
	}
	if u := d.Usage(); u.Reserved != 0 || u.Used != 0 {
		t.Fatalf("usage after failed put: %+v", u)
	}
	d.Close()
	// Such a store refuses to open rather than follow the link.
	if _, err := New(dir); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("open with a linked shard directory: %v", err)
	}
	os.Remove(sub)

	// A shard file replaced by a link to an outside file is not served.
	d = openStore(t, dir, WithClock(clk.Now))
	b2, id2 := newShard(rng, 20_000)
	put(t, d, ownerA, b2, id2, t0.Add(time.Hour))
	data := filepath.Join(dir, "shards", id2.String()[:2], id2.String())
	os.Remove(data)
	if err := os.Symlink(secret, data); err != nil {
		t.Fatal(err)
	}
	if rc, _, err := d.Get(ctx, id2); err == nil {
		got, _ := io.ReadAll(rc)
		rc.Close()
		t.Fatalf("Get followed a link out of the store: %q", got)
	}
	if _, err := d.Challenge(ctx, id2, [32]byte{}); err == nil {
		t.Fatal("Challenge followed a link out of the store")
	}
	d.Close()
	// On open the link is removed (never followed) and the shard dropped.
	d = openStore(t, dir, WithClock(clk.Now))
	if _, err := d.Stat(ctx, id2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("shard with linked data still listed: %v", err)
	}
	if got, err := os.ReadFile(secret); err != nil || string(got) != "outside the store" {
		t.Fatalf("outside file changed: %q %v", got, err)
	}
}

func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a 1 MiB tmpfs (%v: %s); ENOSPC not simulated", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	dir := filepath.Join(mnt, "store")
	d := openStore(t, dir, WithQuotaBytes(64<<20), WithClock((&fakeClock{now: t0}).Now))
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(8, 8))
	b1, id1 := newShard(rng, 600<<10)
	put(t, d, ownerA, b1, id1, t0.Add(time.Hour))
	before := storeFiles(t, dir)
	b2, id2 := newShard(rng, 600<<10)
	err := d.Put(ctx, ownerA, id2, int64(len(b2)), bytes.NewReader(b2), t0.Add(time.Hour))
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("put on a full disk: %v, want ErrNoSpace", err)
	}
	if after := storeFiles(t, dir); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("files after failed put %v, before %v", after, before)
	}
	if u := d.Usage(); u.Used != 600<<10 || u.Reserved != 0 || u.Shards != 1 {
		t.Fatalf("usage %+v", u)
	}
	if _, err := d.Stat(ctx, id2); !errors.Is(err, ErrNotFound) {
		t.Fatal("shard listed after ENOSPC")
	}
	// The space is still usable for a smaller shard.
	b3, id3 := newShard(rng, 100<<10)
	put(t, d, ownerA, b3, id3, t0.Add(time.Hour))
}

func TestLeasesAndGC(t *testing.T) {
	dir := t.TempDir()
	clk := &fakeClock{now: t0}
	d := openStore(t, dir, WithClock(clk.Now), WithMaxLease(48*time.Hour))
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(9, 9))
	b1, id1 := newShard(rng, 10_000)
	b2, id2 := newShard(rng, 20_000)
	put(t, d, ownerA, b1, id1, t0.Add(time.Hour))
	put(t, d, ownerB, b1, id1, t0.Add(3*time.Hour))
	put(t, d, ownerA, b2, id2, t0.Add(2*time.Hour))
	if err := d.Put(ctx, ownerA, id2, 20_000, bytes.NewReader(b2), t0.Add(49*time.Hour)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("lease beyond max: %v", err)
	}

	st, err := d.GC(ctx, t0.Add(30*time.Minute))
	if err != nil || st != (GCStats{}) {
		t.Fatalf("early GC removed %+v (%v)", st, err)
	}
	clk.Set(t0.Add(90 * time.Minute))
	st, err = d.GC(ctx, clk.Now())
	if err != nil || st.Refs != 1 || st.Shards != 0 {
		t.Fatalf("GC at +90m: %+v %v", st, err)
	}
	if info, _ := d.Stat(ctx, id1); info.Refs != 1 || info.Owners[0].Owner != ownerB {
		t.Fatalf("after GC shard 1: %+v", info)
	}
	if u := d.Usage(); u.PerOwner[ownerA] != 20_000 {
		t.Fatalf("owner A charged %d after its lease expired", u.PerOwner[ownerA])
	}
	st, err = d.GC(ctx, t0.Add(3*time.Hour))
	if err != nil || st.Refs != 2 || st.Shards != 2 || st.Bytes != 30_000 {
		t.Fatalf("GC at +3h: %+v %v", st, err)
	}
	assertEmpty(t, d, filepath.Join(dir, "shards"))
}

func TestBulkRenew(t *testing.T) {
	dir := t.TempDir()
	clk := &fakeClock{now: t0}
	d := openStore(t, dir, WithClock(clk.Now))
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(10, 10))
	var ids []codec.ShardID
	for i := 0; i < 5; i++ {
		b, id := newShard(rng, 5000+i)
		put(t, d, ownerA, b, id, t0.Add(time.Hour))
		ids = append(ids, id)
	}
	_, ghost := newShard(rng, 10)
	until := t0.Add(10 * 24 * time.Hour)
	missing, err := d.Renew(ctx, ownerA, append(ids, ghost, ids[0]), until)
	if err != nil || len(missing) != 1 || missing[0] != ghost {
		t.Fatalf("Renew: missing %v err %v", missing, err)
	}
	// Another owner holds none of them.
	if missing, err := d.Renew(ctx, ownerB, ids, until); err != nil || len(missing) != len(ids) {
		t.Fatalf("Renew by non-owner: %v %v", missing, err)
	}
	// Renewing to an earlier time never shortens a lease.
	if _, err := d.Renew(ctx, ownerA, ids, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Renew(ctx, ownerA, ids, t0.Add(-time.Hour)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("renew into the past: %v", err)
	}
	d.Close()
	d = openStore(t, dir, WithClock(clk.Now))
	for _, id := range ids {
		if info, err := d.Stat(ctx, id); err != nil || !info.Lease.Equal(until) {
			t.Fatalf("lease of %s after reopen: %+v %v", id.Short(), info, err)
		}
	}
	if st, _ := d.GC(ctx, t0.Add(5*24*time.Hour)); st.Shards != 0 {
		t.Fatalf("renewed shards collected: %+v", st)
	}
}

func TestChallengeMatchesIndependentHash(t *testing.T) {
	d := openStore(t, t.TempDir(), WithClock((&fakeClock{now: t0}).Now))
	rng := rand.New(rand.NewPCG(11, 11))
	b, id := newShard(rng, 3*codec.LeafSize+5)
	put(t, d, ownerA, b, id, t0.Add(time.Hour))
	var salt [32]byte
	for i := range salt {
		salt[i] = byte(rng.Uint32())
	}
	got, err := d.Challenge(context.Background(), id, salt)
	if err != nil {
		t.Fatal(err)
	}
	want := blake3.Sum256(append(salt[:], b...))
	if got != want || ChallengeAnswer(salt, b) != want {
		t.Fatalf("challenge answer %x, want %x", got, want)
	}
	salt[0] ^= 1
	if other, _ := d.Challenge(context.Background(), id, salt); other == got {
		t.Fatal("answer does not depend on the salt")
	}
	if _, err := d.Challenge(context.Background(), codec.ShardID{1}, salt); !errors.Is(err, ErrNotFound) {
		t.Fatalf("challenge of a missing shard: %v", err)
	}
}

func TestProveVerifies(t *testing.T) {
	d := openStore(t, t.TempDir(), WithClock((&fakeClock{now: t0}).Now))
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(12, 12))
	b, id := newShard(rng, 9*codec.LeafSize+1234)
	put(t, d, ownerA, b, id, t0.Add(time.Hour))
	size := int64(len(b))
	for _, r := range [][2]int64{{0, 1}, {0, codec.LeafSize}, {5 * codec.LeafSize, codec.LeafSize}, {size - 1, 1}, {9 * codec.LeafSize, 1234}, {100, 3 * codec.LeafSize}, {0, size}} {
		proof, err := d.Prove(ctx, id, r[0], r[1])
		if err != nil {
			t.Fatalf("Prove %v: %v", r, err)
		}
		got, err := codec.VerifyRange(id, proof, r[0], r[1])
		if err != nil || !bytes.Equal(got, b[r[0]:r[0]+r[1]]) {
			t.Fatalf("VerifyRange %v: %v", r, err)
		}
		if _, err := codec.VerifyRange(codec.IDOf([]byte("other")), proof, r[0], r[1]); err == nil {
			t.Fatalf("proof %v verified under another ID", r)
		}
	}
	for _, r := range [][2]int64{{-1, 1}, {0, 0}, {size, 1}, {size - 1, 2}} {
		if _, err := d.Prove(ctx, id, r[0], r[1]); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Prove %v: %v, want ErrInvalid", r, err)
		}
	}
}

func TestGetDetectsCorruption(t *testing.T) {
	dir := t.TempDir()
	d := openStore(t, dir, WithClock((&fakeClock{now: t0}).Now))
	b, id := newShard(rand.New(rand.NewPCG(13, 13)), 50_000)
	put(t, d, ownerA, b, id, t0.Add(time.Hour))
	p := filepath.Join(dir, "shards", id.String()[:2], id.String())
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{b[40_000] ^ 0xff}, 40_000)
	f.Close()
	rc, _, err := d.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("reading a corrupted shard: %v, want ErrIntegrity", err)
	}
}

func TestOptions(t *testing.T) {
	if TierBytes(0) != 1<<30 || TierBytes(3) != 8<<30 || TierBytes(-1) != 0 || TierBytes(MaxTier+1) != 0 {
		t.Fatal("TierBytes")
	}
	dir := t.TempDir()
	if _, err := New(dir, WithTier(2), WithQuotaBytes(5)); err == nil {
		t.Fatal("conflicting quota options accepted")
	}
	if _, err := New(dir, WithTier(MaxTier+1)); err == nil {
		t.Fatal("tier out of range accepted")
	}
	d := openStore(t, dir, WithTier(2))
	if d.Usage().Quota != 4<<30 {
		t.Fatalf("tier 2 quota %d", d.Usage().Quota)
	}
	d2 := openStore(t, t.TempDir())
	if d2.Usage().Quota != 1<<30 {
		t.Fatalf("default quota %d", d2.Usage().Quota)
	}
}

func TestMetaRoundTrip(t *testing.T) {
	m := &meta{size: 12345, storedAt: t0, owners: map[Owner]time.Time{ownerB: t0.Add(time.Hour), ownerA: t0.Add(2 * time.Hour)}}
	b := m.marshal()
	got, err := unmarshalMeta(b)
	if err != nil || got.size != m.size || !got.storedAt.Equal(t0) || len(got.owners) != 2 || !got.owners[ownerA].Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for i := range b {
		bad := bytes.Clone(b)
		bad[i] ^= 0x10
		if _, err := unmarshalMeta(bad); err == nil {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
}

func FuzzUnmarshalMeta(f *testing.F) {
	f.Add((&meta{size: 1, storedAt: t0, owners: map[Owner]time.Time{ownerA: t0}}).marshal())
	f.Add([]byte("JFSM"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := unmarshalMeta(b)
		if err != nil {
			return
		}
		if !bytes.Equal(m.marshal(), b) {
			t.Fatal("accepted record does not re-encode identically")
		}
	})
}

func TestConcurrentPutsOfOneShard(t *testing.T) {
	dir := t.TempDir()
	d := openStore(t, dir, WithQuotaBytes(1<<20), WithClock((&fakeClock{now: t0}).Now))
	b, id := newShard(rand.New(rand.NewPCG(14, 14)), 100_000)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := d.For(Owner{byte(i)})
			errs <- v.Put(context.Background(), id, int64(len(b)), slowReader{bytes.NewReader(b)}, t0.Add(time.Hour))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	info, err := d.Stat(context.Background(), id)
	if err != nil || info.Refs != 16 {
		t.Fatalf("Stat %+v %v", info, err)
	}
	if u := d.Usage(); u.Used != 100_000 || u.Reserved != 0 || len(u.PerOwner) != 16 {
		t.Fatalf("usage %+v", u)
	}
	if n := len(storeFiles(t, dir)); n != 2 {
		t.Fatalf("%d files, want 2", n)
	}
}
