package jellyfish

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/object"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/internal/memnet"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
)

// memNetwork adapts an in-memory network to the session's network.
type memNetwork struct{ *memnet.Network }

func (m memNetwork) Shards(owner crypto.PrivKey) (shardIO, error) {
	return m.Network.Shards(owner), nil
}

// memAccount is an account on an in-memory network.
type memAccount struct {
	net  *memnet.Network
	user account.Username
	pw   string
	// now is the clock sessions opened by the test read (nil: time.Now).
	now func() time.Time
}

// newMemAccount creates an account on a new in-memory network of nodes
// provider nodes.
func newMemAccount(t testing.TB, nodes int) *memAccount {
	t.Helper()
	nw, err := memnet.New(nodes)
	if err != nil {
		t.Fatal(err)
	}
	a := &memAccount{net: nw, user: "tess", pw: "copper lantern orbit gravel 4"}
	if _, err := account.NewManager(nw.Records(), account.InsecureTestKDF()).Create(context.Background(), a.user, a.pw); err != nil {
		t.Fatal(err)
	}
	return a
}

// testOptions returns the remote's defaults with small redundancy, as a
// test network of a few nodes wants, changed by set.
func testOptions(t testing.TB, set map[string]string) *Options {
	t.Helper()
	o := &Options{
		Username: "tess", DataShards: 2, ParityShards: 2, SegmentSize: 1 << 20, Compression: "zstd",
		InlineMax: defaultInlineMax, PackMax: defaultPackMax, PackSize: defaultPackSize, CheckpointEvery: 32,
		MetaDataShards: 2, MetaParityShards: 2, Lease: fs.Duration(90 * 24 * time.Hour),
		CleanupGrace: fs.Duration(30 * 24 * time.Hour), InsecureTestKDF: true,
		DeviceRetireAfter: fs.Duration(defaultRetireAfter),
	}
	sizes := map[string]*fs.SizeSuffix{"pack_max": &o.PackMax, "pack_size": &o.PackSize,
		"inline_max": &o.InlineMax, "segment_size": &o.SegmentSize}
	ints := map[string]*int{"checkpoint_every": &o.CheckpointEvery, "data_shards": &o.DataShards,
		"parity_shards": &o.ParityShards, "success_shards": &o.SuccessShards,
		"meta_data_shards": &o.MetaDataShards, "meta_parity_shards": &o.MetaParityShards}
	for k, v := range set {
		var err error
		switch {
		case sizes[k] != nil:
			var n int64
			_, err = fmt.Sscan(v, &n)
			*sizes[k] = fs.SizeSuffix(n)
		case ints[k] != nil:
			_, err = fmt.Sscan(v, ints[k])
		case k == "cleanup_grace":
			var d time.Duration
			d, err = time.ParseDuration(v)
			o.CleanupGrace = fs.Duration(d)
		case k == "device_retire_after":
			var d time.Duration
			d, err = time.ParseDuration(v)
			o.DeviceRetireAfter = fs.Duration(d)
		default:
			t.Fatalf("testOptions: unknown option %s", k)
		}
		if err != nil {
			t.Fatalf("testOptions: %s=%q: %v", k, v, err)
		}
	}
	return o
}

// openDevice opens the account as a device whose slots live in dataDir
// (a new dataDir is a new device) and returns an Fs at the root. The
// session is closed when the test ends.
func (a *memAccount) openDevice(t testing.TB, dataDir string, opt *Options) *Fs {
	t.Helper()
	opt.Password, opt.DataDir = a.pw, dataDir
	slot, unlock, err := lockSlot(filepath.Join(dataDir, string(a.user)))
	if err != nil {
		t.Fatal(err)
	}
	f := a.openSlot(t, slot, unlock, opt)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := f.s.close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return f
}

// openSlot opens the account in the device slot slot, locked by the
// caller (unlock releases it), and leaves closing the session to the
// caller.
func (a *memAccount) openSlot(t testing.TB, slot string, unlock func(), opt *Options) *Fs {
	t.Helper()
	opt.Password = a.pw
	if opt.DataDir == "" {
		opt.DataDir = filepath.Dir(filepath.Dir(slot))
	}
	now := a.now
	if now == nil {
		now = time.Now
	}
	s, err := openSession(context.Background(), opt.sessionKey(), opt, a.user, slot, unlock, memNetwork{a.net}, now)
	if err != nil {
		unlock()
		t.Fatal(err)
	}
	return &Fs{name: "t", opt: *opt, s: s, features: &fs.Features{}}
}

func mustPut(t testing.TB, f *Fs, remote string, data []byte) {
	t.Helper()
	info := object.NewStaticObjectInfo(remote, time.Unix(1700000000, 0), int64(len(data)), true, nil, f)
	if _, err := f.Put(context.Background(), bytes.NewReader(data), info); err != nil {
		t.Fatalf("put %s: %v", remote, err)
	}
}

func mustRead(t testing.TB, f *Fs, remote string) []byte {
	t.Helper()
	ctx := context.Background()
	o, err := f.NewObject(ctx, remote)
	if err != nil {
		t.Fatalf("%s: %v", remote, err)
	}
	rc, err := o.Open(ctx)
	if err != nil {
		t.Fatalf("open %s: %v", remote, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", remote, err)
	}
	return b
}

func mustFlush(t testing.TB, f *Fs) {
	t.Helper()
	if err := f.s.flush(context.Background()); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

// listAll lists every file under dir recursively: path → size.
func listAll(t testing.TB, f *Fs, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := f.ListR(context.Background(), dir, func(es fs.DirEntries) error {
		for _, e := range es {
			if o, ok := e.(fs.Object); ok {
				out[o.Remote()] = o.Size()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// headBodySize returns the size of the largest head record body stored.
func headRecordSize(a *memAccount) int {
	n := 0
	for k, v := range a.net.RecordsSnapshot() {
		if strings.HasPrefix(k, "/jf/head/") {
			n = max(n, len(v))
		}
	}
	return n
}
