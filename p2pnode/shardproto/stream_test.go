package shardproto

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"lukechampine.com/blake3"
)

// genShard is a shard of n pseudo-random bytes generated while it is read.
func genShard(seed byte, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{seed}), n)
}

func genID(t *testing.T, seed byte, n int64) codec.ShardID {
	t.Helper()
	h := blake3.New(32, nil)
	if _, err := io.Copy(h, genShard(seed, n)); err != nil {
		t.Fatal(err)
	}
	var id codec.ShardID
	h.Sum(id[:0])
	return id
}

// A 48 MiB shard crosses the protocol under libp2p's default resource
// limits (a service peer may hold 16 MiB, so buffering the body, as puts
// once did, was refused as busy), and the whole transfer, both ends in
// this process, allocates a small fraction of the shard.
func TestLargePutAcrossNodes(t *testing.T) {
	const size = 48 << 20
	e := newEnv(t, []shardstore.Option{shardstore.WithQuotaBytes(64 << 20)})
	ctx := ctxT(t)
	id := genID(t, 1, size)
	// Warm up the connection so its lazily allocated buffers are not
	// counted below.
	warm, wid := shard(40, 300_000)
	if _, err := e.client.Put(ctx, e.holder.ID(), wid, warm, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Sample the heap while the shard crosses: buffering it anywhere would
	// show as at least its size.
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	base := m.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
		}
	}()
	_, err := e.client.PutReader(ctx, e.holder.ID(), id, size, genShard(1, size), time.Now().Add(time.Hour))
	close(stop)
	<-sampled
	if err != nil {
		t.Fatalf("48 MiB put: %v", err)
	}
	grew := int64(peak.Load()) - int64(base)
	t.Logf("48 MiB put: heap peaked %d KiB above its start (client, holder and transport together)", grew>>10)
	if grew > size/4 {
		t.Fatalf("the heap grew by %d MiB during a 48 MiB put; the holder must stream, not buffer", grew>>20)
	}
	if info, err := e.client.Stat(ctx, e.holder.ID(), id); err != nil || info.Size != size {
		t.Fatalf("Stat: %+v %v", info, err)
	}
	if u := e.disk.Usage(); u.Reserved != 0 {
		t.Fatalf("usage %+v", u)
	}
}

// A body whose last byte is wrong is streamed to the holder's temporary
// file and refused at its end; no file appears under the shard's name and
// none is left behind.
func TestMismatchingPutLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, nil)
	disk, err := shardstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	svc, err := NewService(e.holder, disk) // replaces e's handler
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx := ctxT(t)
	data, id := shard(41, 3<<20+5)
	bad := bytes.Clone(data)
	bad[len(bad)-1] ^= 1
	if _, err := e.client.Put(ctx, e.holder.ID(), id, bad, time.Now().Add(time.Hour)); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("mismatching put: %v, want ErrIntegrity", err)
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	})
	if len(files) != 0 {
		t.Fatalf("files left after a refused put: %v", files)
	}
	if u := disk.Usage(); u.Used != 0 || u.Reserved != 0 || u.Shards != 0 {
		t.Fatalf("usage %+v", u)
	}
	// The honest bytes go through on the same holder.
	if _, err := e.client.Put(ctx, e.holder.ID(), id, data, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

// A holder whose disk fills up in the middle of a body answers NoSpace at
// once and stops reading; the client, which reads the answer while it
// sends, stops too instead of writing until its deadline.
func TestDiskFullMidBodyAcrossNodes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a 1 MiB tmpfs (%v: %s)", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	e := newEnv(t, nil)
	disk, err := shardstore.New(filepath.Join(mnt, "store"), shardstore.WithQuotaBytes(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	svc, err := NewService(e.holder, disk)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx := ctxT(t)
	data, id := shard(42, 3<<20)
	start := time.Now()
	if _, err := e.client.Put(ctx, e.holder.ID(), id, data, time.Now().Add(time.Hour)); !errors.Is(err, shardstore.ErrNoSpace) {
		t.Fatalf("put on a full disk: %v, want ErrNoSpace", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the refusal took %v", took)
	}
	if u := disk.Usage(); u.Used != 0 || u.Reserved != 0 {
		t.Fatalf("usage %+v", u)
	}
	small, sid := shard(43, 100_000)
	if _, err := e.client.Put(ctx, e.holder.ID(), sid, small, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("put after a full disk: %v", err)
	}
}

// The declared service limits build a working resource manager under
// which a peer's concurrent large puts all go through.
func TestServiceLimits(t *testing.T) {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	SetServiceLimits(&scaling)
	limits := scaling.AutoScale()
	mk := func() host.Host {
		rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits))
		if err != nil {
			t.Fatal(err)
		}
		return newHost(t, libp2p.ResourceManager(rm))
	}
	holder, ch := mk(), mk()
	disk, err := shardstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	svc, err := NewService(holder, disk)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	c, err := NewClient(ch, ed25519Key(t))
	if err != nil {
		t.Fatal(err)
	}
	connect(t, ch, holder)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, DefaultMaxPeerStreams)
	const size = 8 << 20
	for i := range DefaultMaxPeerStreams {
		id := genID(t, byte(10+i), size)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.PutReader(ctx, holder.ID(), id, size, genShard(byte(10+i), size), time.Now().Add(time.Hour))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if u := disk.Usage(); u.Shards != DefaultMaxPeerStreams {
		t.Fatalf("usage %+v", u)
	}
}

// A put refused for lack of streams is retried with its body rewound when
// the source can seek (Put's byte slice); a source that cannot seek and
// was partly sent is not retried, since the holder would get wrong bytes.
func TestBusyPutRetriesOnlyRewindable(t *testing.T) {
	e := newEnv(t, nil, WithMaxStreams(1, 1, 1))
	ctx := ctxT(t)
	// stall holds the only serving slot with a put whose body never comes,
	// until the returned function resets it.
	stall := func(seed uint64) func() {
		_, id := shard(seed, 1000)
		ts := time.Now()
		lease := ts.Add(time.Hour)
		sig, _ := e.ownerKey.Sign(putSigned(e.holder.ID(), id, 1000, lease, ts))
		req := &request{typ: msgPut, id: id, size: 1000, lease: lease, ts: ts, key: e.client.keyBytes, sig: sig}
		st, err := e.ch.NewStream(ctx, e.holder.ID(), ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeFrame(st, req.encode()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the slot taken", func() bool { return e.svc.gate.stats().Serving == 1 })
		t.Cleanup(func() { st.Reset() })
		return func() {
			st.Reset()
			waitFor(t, 5*time.Second, "the slot free", func() bool { return e.svc.gate.stats().Serving == 0 })
		}
	}
	data, id := shard(44, 1<<20)
	release := stall(45)
	if _, err := e.client.PutReader(ctx, e.holder.ID(), id, int64(len(data)), io.MultiReader(bytes.NewReader(data)), time.Now().Add(time.Hour)); !errors.Is(err, ErrBusy) {
		t.Fatalf("busy put from a one-way source: %v, want ErrBusy", err)
	}
	release()
	release = stall(46)
	refused := e.svc.gate.stats().Refused
	done := make(chan error, 1)
	go func() {
		_, err := e.client.Put(ctx, e.holder.ID(), id, data, time.Now().Add(time.Hour))
		done <- err
	}()
	// Free the slot once the first attempt was refused: a retry gets it.
	waitFor(t, 5*time.Second, "the put refused once", func() bool { return e.svc.gate.stats().Refused > refused })
	release()
	if err := <-done; err != nil {
		t.Fatalf("busy put of a byte slice, retried: %v", err)
	}
	if _, err := e.disk.Stat(ctx, id); err != nil {
		t.Fatal(err)
	}
}
