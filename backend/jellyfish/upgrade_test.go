package jellyfish

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zeebo/blake3"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/objref"
	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// The encoders below write what the release before checkpoint trees
// wrote: object references of version 1, log batches of version 2, flat
// checkpoints (ns.EncodeCheckpoint still writes them) and head bodies of
// version 1. They are the smallest that produce an account of that
// release on the in-memory network.

// marshalRefV1 encodes r as an object reference of version 1:
//
//	1 | key [32] | layout length u32 | layout | node count u8 |
//	{ length u8 | peer ID } | per segment, per shard: holder u8 (0xff = none)
func marshalRefV1(t testing.TB, r *ObjRef) []byte {
	t.Helper()
	lb, err := r.Layout.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Nodes) > 254 {
		t.Fatalf("a version 1 reference names at most 254 nodes, not %d", len(r.Nodes))
	}
	b := append([]byte{objref.TagRefV1}, r.Key[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(lb)))
	b = append(b, lb...)
	b = append(b, byte(len(r.Nodes)))
	for _, id := range r.Nodes {
		b = append(b, byte(len(id)))
		b = append(b, id...)
	}
	for _, seg := range r.Holder {
		for _, h := range seg {
			if h == objref.NoHolder {
				b = append(b, 0xff)
			} else {
				b = append(b, byte(h))
			}
		}
	}
	return b
}

// encodeBatchV2 encodes a batch of version 2:
//
//	"JFlb" | 2 | device [16] | seq uv | prevseq uv | prev bytes |
//	pack count uv | pack* | entry count uv | entry*
func encodeBatchV2(t testing.TB, b *ns.Batch) []byte {
	t.Helper()
	out := append([]byte("JFlb"), 2)
	out = append(out, b.Device[:]...)
	out = binary.AppendUvarint(out, b.Seq)
	out = binary.AppendUvarint(out, b.PrevSeq)
	out = binary.AppendUvarint(out, uint64(len(b.Prev)))
	out = append(out, b.Prev...)
	out = appendPacksV2(out, b.Packs)
	es, err := ns.EncodeEntries(b.Entries)
	if err != nil {
		t.Fatal(err)
	}
	return append(out, es...)
}

// appendPacksV2 appends pack count uv | { pack ID [16] | device [16] |
// revision uv | size uv | reference bytes | extent count uv | extents }.
func appendPacksV2(out []byte, ps []ns.Pack) []byte {
	out = binary.AppendUvarint(out, uint64(len(ps)))
	for _, p := range ps {
		out = append(out, p.ID[:]...)
		out = append(out, p.Device[:]...)
		out = binary.AppendUvarint(out, p.Rev)
		out = binary.AppendUvarint(out, uint64(p.Size))
		out = binary.AppendUvarint(out, uint64(len(p.Ref)))
		out = append(out, p.Ref...)
		out = binary.AppendUvarint(out, uint64(len(p.Map)))
		for _, x := range p.Map {
			out = binary.AppendUvarint(out, uint64(x.Off))
			out = binary.AppendUvarint(out, uint64(x.Len))
			out = binary.AppendUvarint(out, uint64(x.At))
		}
	}
	return out
}

// sealHeadV1 encodes and seals a head body of version 1:
//
//	nonce [24] | XChaCha20-Poly1305(ad = dhtKey) of
//	1 | device [16] | batch seq u64 | HLC u64 | checkpoint seq u64 |
//	collected seq u64 | tip length u16 | tip | checkpoint length u16 | checkpoint
func sealHeadV1(t testing.TB, key []byte, dhtKey string, h *ns.Head) []byte {
	t.Helper()
	b := append([]byte{1}, h.Device[:]...)
	for _, v := range []uint64{h.BatchSeq, h.HLC, h.CPSeq, h.GCSeq} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	for _, r := range [][]byte{h.Tip, h.Checkpoint} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(r)))
		b = append(b, r...)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, b, []byte(dhtKey))
}

// oldRelease writes an account as the previous release did.
type oldRelease struct {
	t       testing.TB
	a       *memAccount
	acct    *account.Account
	mgr     *account.Manager
	store   *objectStore
	meta    *codec.Encoder
	files   *codec.Encoder
	packs   *codec.Encoder
	headKey []byte
	hlc     uint64
	tree    *ns.Tree  // everything written, as the old release merged it
	records []ns.Pack // every pack record written
	want    map[string]string
}

// oldDevice is one device of the previous release and its log.
type oldDevice struct {
	id  ns.DeviceID
	seq uint64
	tip []byte
	hlc uint64
	// cp and cpSeq are the device's flat checkpoint, if any.
	cp    []byte
	cpSeq uint64
	// batches are the references of its batches by seq; gcSeq is how far
	// they were collected.
	batches map[uint64][]byte
	gcSeq   uint64
	// pending are the entries and pack records of its next batch.
	entries []ns.Entry
	packs   []ns.Pack
}

func newOldRelease(t testing.TB, a *memAccount) *oldRelease {
	t.Helper()
	ctx := context.Background()
	mgr := account.NewManager(a.net.Records(), account.InsecureTestKDF())
	acct, err := mgr.Login(ctx, a.user, a.pw)
	if err != nil {
		t.Fatal(err)
	}
	o := &oldRelease{t: t, a: a, acct: acct, mgr: mgr, tree: ns.NewTree(), want: map[string]string{},
		hlc: uint64(time.Now().Add(-time.Hour).UnixMilli()) << 16}
	o.store = &objectStore{
		shards: a.net.Shards(acct.Identity), providers: a.net.Providers, lease: 24 * time.Hour,
		threshold: defaultThreshold, slots: newTransferSlots(maxTransfers, maxHolderTransfers),
	}
	opt := testOptions(t, nil)
	if o.meta, err = codec.NewEncoder(opt.metaParams()); err != nil {
		t.Fatal(err)
	}
	fileParams := codec.Params{K: 2, M: 2, SegmentSize: 4096, Compression: codec.CompressZstd}
	if o.files, err = codec.NewEncoder(fileParams); err != nil {
		t.Fatal(err)
	}
	if o.packs, err = packEncoder(fileParams); err != nil {
		t.Fatal(err)
	}
	if o.headKey, err = headKey(acct.Root); err != nil {
		t.Fatal(err)
	}
	return o
}

// put stores data as an object and returns its version 1 reference.
func (o *oldRelease) put(enc *codec.Encoder, data []byte) []byte {
	o.t.Helper()
	ref, err := o.store.Put(context.Background(), enc, bytes.NewReader(data))
	if err != nil {
		o.t.Fatal(err)
	}
	return marshalRefV1(o.t, ref)
}

// device adds a device to the account record.
func (o *oldRelease) device() *oldDevice {
	o.t.Helper()
	ctx := context.Background()
	d := &oldDevice{batches: map[uint64][]byte{}}
	rand.Read(d.id[:])
	pub, err := o.mgr.Lookup(ctx, o.acct.ID())
	if err != nil {
		o.t.Fatal(err)
	}
	pub.Devices = append(pub.Devices, account.Device{ID: account.DeviceID(d.id), Name: "old"})
	if err := o.mgr.PublishAccount(ctx, o.acct, pub); err != nil {
		o.t.Fatal(err)
	}
	return d
}

// entry queues a change of device d, stamped after everything before and
// replacing what the path showed.
func (o *oldRelease) entry(d *oldDevice, e ns.Entry) {
	o.hlc += 1 << 16
	e.Stamp = ns.Stamp{HLC: o.hlc, Device: d.id}
	e.Bases = o.tree.Heads(e.Path)
	e.ModTime = time.Unix(1600000000, 0).UnixNano()
	o.tree.Apply(e)
	d.entries = append(d.entries, e)
	d.hlc = o.hlc
}

func (o *oldRelease) dir(d *oldDevice, p string) { o.entry(d, ns.Entry{Path: p, Dir: true}) }

func (o *oldRelease) del(d *oldDevice, p string) {
	o.entry(d, ns.Entry{Path: p, Deleted: true})
	delete(o.want, p)
}

func (o *oldRelease) file(d *oldDevice, p string, data []byte, content []byte) {
	h := blake3.Sum256(data)
	e := ns.Entry{Path: p, Size: int64(len(data)), Hash: h[:], Content: content}
	if content == nil {
		e.Inline = data
	}
	o.entry(d, e)
	o.want[p] = string(data)
}

// inline queues a tiny file kept in the batch.
func (o *oldRelease) inline(d *oldDevice, p, data string) { o.file(d, p, []byte(data), nil) }

// own queues a file stored as an object of its own.
func (o *oldRelease) own(d *oldDevice, p string, data []byte) {
	o.file(d, p, data, o.put(o.files, data))
}

// pack stores the files as one pack of device d and queues them.
func (o *oldRelease) pack(d *oldDevice, files map[string]string) {
	var buf []byte
	id := ns.PackID{}
	rand.Read(id[:])
	var names []string
	for p := range files {
		names = append(names, p)
	}
	slices.Sort(names)
	offs := map[string]int64{}
	for _, p := range names {
		offs[p] = int64(len(buf))
		buf = append(buf, files[p]...)
	}
	rec := ns.Pack{ID: id, Device: d.id, Rev: 1, Size: int64(len(buf)), Ref: o.put(o.packs, buf)}
	d.packs = append(d.packs, rec)
	o.records = append(o.records, rec)
	o.tree.ApplyPack(rec)
	for _, p := range names {
		m := objref.Member{Pack: objref.PackID(id), Off: offs[p], N: int64(len(files[p]))}
		o.file(d, p, []byte(files[p]), m.Marshal())
	}
}

// flush stores device d's queued changes as its next batch of version 2.
func (o *oldRelease) flush(d *oldDevice) {
	b := &ns.Batch{Device: d.id, Seq: d.seq + 1, Packs: d.packs, Entries: d.entries}
	if d.tip != nil {
		b.Prev, b.PrevSeq = d.tip, d.seq
	}
	d.tip = o.put(o.meta, encodeBatchV2(o.t, b))
	d.seq = b.Seq
	d.batches[d.seq] = d.tip
	d.entries, d.packs = nil, nil
}

// checkpoint stores a flat checkpoint of everything written so far as
// device d's, covering the batches each device stored.
func (o *oldRelease) checkpoint(d *oldDevice, devs ...*oldDevice) {
	o.t.Helper()
	c := &ns.Checkpoint{Covers: map[ns.DeviceID]uint64{}, Entries: o.tree.All(), Packs: o.records}
	for _, e := range devs {
		if len(e.entries) > 0 {
			o.t.Fatal("checkpoint with changes not flushed")
		}
		c.Covers[e.id] = e.seq
	}
	data, err := ns.EncodeCheckpoint(c)
	if err != nil {
		o.t.Fatal(err)
	}
	d.cp, d.cpSeq = o.put(o.meta, data), d.seq
}

// collect deletes device d's batches up to seq, as the old release's
// CleanUp did once a checkpoint covered them.
func (o *oldRelease) collect(d *oldDevice, seq uint64) {
	o.t.Helper()
	for s := d.gcSeq + 1; s <= seq; s++ {
		ref, err := UnmarshalObjRef(d.batches[s])
		if err != nil {
			o.t.Fatal(err)
		}
		for _, sh := range ref.Shards() {
			o.a.net.Drop(sh.ID)
		}
	}
	d.gcSeq = seq
}

// publish signs and stores device d's head of version 1.
func (o *oldRelease) publish(d *oldDevice) {
	o.t.Helper()
	key := account.HeadKey(o.acct.ID(), account.DeviceID(d.id))
	h := &ns.Head{Version: 1, Device: d.id, BatchSeq: d.seq, HLC: d.hlc, Tip: d.tip, Checkpoint: d.cp, CPSeq: d.cpSeq, GCSeq: d.gcSeq}
	body := sealHeadV1(o.t, o.headKey, key, h)
	// Check the body is what OpenHead reads as version 1.
	if back, err := ns.OpenHead(o.headKey, key, body); err != nil || back.Version != 1 || !bytes.Equal(back.Checkpoint, d.cp) {
		o.t.Fatalf("version 1 head does not open: %v", err)
	}
	r := record.Record{Kind: account.KindHead, Seq: d.seq<<16 | 1, Expires: time.Now().Add(account.RecordLifetime), Body: body}
	raw, err := r.Sign(key, o.acct.Identity)
	if err != nil {
		o.t.Fatal(err)
	}
	if err := o.a.net.Records().Put(context.Background(), key, raw); err != nil {
		o.t.Fatal(err)
	}
}

// writeOldAccount writes two devices' logs of the previous release: inline
// files, packed files and files of their own, an overwrite and a delete;
// with withCheckpoint, the first device's flat checkpoint covers part of
// both logs and batches follow it, and the batches it covers were
// collected. It returns the devices.
func writeOldAccount(t testing.TB, a *memAccount, withCheckpoint bool) (*oldRelease, *oldDevice, *oldDevice) {
	o := newOldRelease(t, a)
	d1, d2 := o.device(), o.device()
	o.dir(d1, "docs")
	o.dir(d1, "media")
	o.inline(d1, "docs/tiny.txt", "tiny, first version")
	o.pack(d1, map[string]string{"docs/p1.txt": strings.Repeat("one ", 80), "docs/p2.txt": strings.Repeat("two ", 120)})
	o.own(d1, "media/clip.bin", randomBytes(t, 10000)) // 3 segments
	o.flush(d1)
	o.dir(d2, "d2")
	o.inline(d2, "d2/a.txt", "a")
	o.pack(d2, map[string]string{"d2/q.txt": strings.Repeat("q", 500)})
	o.flush(d2)
	o.inline(d1, "docs/tiny.txt", "tiny, second version")
	o.flush(d1)
	if withCheckpoint {
		o.checkpoint(d1, d1, d2) // d1 up to 2, d2 up to 1
	}
	o.inline(d1, "docs/after.txt", "written after the checkpoint")
	o.del(d1, "docs/p2.txt")
	o.flush(d1)
	o.own(d2, "d2/own.bin", randomBytes(t, 6000))
	o.pack(d2, map[string]string{"d2/r.txt": strings.Repeat("r", 300), "docs/from-d2.txt": strings.Repeat("d2 ", 60)})
	o.flush(d2)
	if withCheckpoint {
		o.collect(d1, 2)
		o.collect(d2, 1)
	}
	o.publish(d1)
	o.publish(d2)
	return o, d1, d2
}

// headVersion returns the version of device f's published head.
func headVersion(t testing.TB, f *Fs) int {
	t.Helper()
	h, err := f.s.heads.Read(context.Background(), f.s.device)
	if err != nil || h == nil {
		t.Fatalf("head: %v %v", h, err)
	}
	return h.Version
}

// TestUpgradeFromFlatCheckpoints opens, as a new device, an account of the
// previous release (version 1 heads and references, version 2 batches, a
// flat checkpoint covering part of the logs): every file reads back, the
// first flush writes a checkpoint tree and a version 2 head, and a third
// device loads from that tree and agrees.
func TestUpgradeFromFlatCheckpoints(t *testing.T) {
	a := newMemAccount(t, 6)
	o, d1, d2 := writeOldAccount(t, a, true)
	dev := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	if dev.s.log.upgrade {
		t.Fatal("the upgrade's flush did not happen")
	}
	cp := dev.s.log.own.cp
	if cp == nil {
		t.Fatal("no checkpoint tree after the upgrade")
	}
	if cp.Covers[d1.id].Seq != d1.seq || cp.Covers[d2.id].Seq != d2.seq || d1.seq != 3 {
		t.Fatalf("the checkpoint covers %+v, want both old logs whole", cp.Covers)
	}
	if v := headVersion(t, dev); v != ns.HeadVersion {
		t.Fatalf("head of version %d after the upgrade", v)
	}
	if got := contents(t, dev); !equalContents(got, o.want) {
		t.Fatalf("the upgraded device shows %q, want %q", got, o.want)
	}

	third := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	if third.s.log.baseCP == nil || !bytes.Equal(third.s.log.baseCP.Root, cp.Root) || third.s.log.upgrade {
		t.Fatal("a third device did not load the upgrade's checkpoint tree")
	}
	if n := third.s.log.logL.Len(); n != 0 {
		t.Fatalf("a third device applied %d paths from logs", n)
	}
	if got := contents(t, third); !equalContents(got, o.want) {
		t.Fatalf("a third device shows %q, want %q", got, o.want)
	}
	// The tree keeps the old references as they were.
	if c := entryContent(t, third, "media/clip.bin"); c[0] != objref.TagRefV1 {
		t.Fatalf("media/clip.bin has a reference of tag %d, want the old one", c[0])
	}
	m, _, _ := parseMember(entryContent(t, third, "d2/q.txt"))
	if p, err := third.s.log.view().Pack(context.Background(), m.pack); err != nil || p == nil || p.Ref[0] != objref.TagRefV1 {
		t.Fatalf("pack of d2/q.txt: %+v %v", p, err)
	}
	u1, n1 := mustAbout(t, dev)
	u3, n3 := mustAbout(t, third)
	if u1 == 0 || u1 != u3 || n1 != int64(len(o.want)) || n3 != n1 {
		t.Fatalf("About: %d bytes in %d files on the upgraded device, %d in %d on the third", u1, n1, u3, n3)
	}
	// Both go on writing over the old files.
	mustPut(t, third, "docs/tiny.txt", []byte("third version"))
	mustFlush(t, third)
	mustPoll(t, dev)
	if got := string(mustRead(t, dev, "docs/tiny.txt")); got != "third version" {
		t.Fatalf("docs/tiny.txt reads %q", got)
	}
}

// TestUpgradeWithoutCheckpoint opens an account of the previous release
// whose heads name no checkpoint: the new device loads every batch, reads
// every file, and its first change publishes a version 2 head that a
// third device loads with the old logs.
func TestUpgradeWithoutCheckpoint(t *testing.T) {
	a := newMemAccount(t, 6)
	o, _, _ := writeOldAccount(t, a, false)
	dev := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	if got := contents(t, dev); !equalContents(got, o.want) {
		t.Fatalf("the new device shows %q, want %q", got, o.want)
	}
	mustPut(t, dev, "new.txt", []byte("new"))
	mustFlush(t, dev)
	if v := headVersion(t, dev); v != ns.HeadVersion {
		t.Fatalf("head of version %d", v)
	}
	o.want["new.txt"] = "new"
	third := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	if got := contents(t, third); !equalContents(got, o.want) {
		t.Fatalf("a third device shows %q, want %q", got, o.want)
	}
}

// TestUpgradeInPlace opens the new release in the slot of an old device
// (same device ID): its log goes on after its version 1 head, the first
// flush writes a checkpoint tree and the next batch, and a third device
// loads from the tree.
func TestUpgradeInPlace(t *testing.T) {
	a := newMemAccount(t, 6)
	o, d1, _ := writeOldAccount(t, a, true)
	dataDir := t.TempDir()
	slot := filepath.Join(dataDir, string(a.user), "slot-0")
	if err := os.MkdirAll(slot, 0o700); err != nil {
		t.Fatal(err)
	}
	txt, _ := d1.id.MarshalText()
	if err := os.WriteFile(filepath.Join(slot, "device"), append(txt, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	dev := a.openDevice(t, dataDir, testOptions(t, nil))
	if dev.s.device != d1.id {
		t.Fatal("the slot's device ID was not used")
	}
	own := dev.s.log.own
	if own.seq != d1.seq+1 || own.cp == nil || own.cp.Seq != d1.seq || headVersion(t, dev) != ns.HeadVersion {
		t.Fatalf("after the upgrade the device is at batch %d with checkpoint %+v, want batch %d naming a checkpoint of %d", own.seq, own.cp, d1.seq+1, d1.seq)
	}
	mustPut(t, dev, "docs/tiny.txt", []byte(fmt.Sprint("version ", own.seq+1)))
	mustFlush(t, dev)
	o.want["docs/tiny.txt"] = fmt.Sprint("version ", own.seq+1)
	third := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	if third.s.log.baseCP == nil || !bytes.Equal(third.s.log.baseCP.Root, own.cp.Root) {
		t.Fatal("a third device did not load the upgrade's checkpoint tree")
	}
	for _, f := range []*Fs{dev, third} {
		if got := contents(t, f); !equalContents(got, o.want) {
			t.Fatalf("shows %q, want %q", got, o.want)
		}
	}
}

// TestUpgradeFromSeveralFlatCheckpoints opens an account of the previous
// release in which two devices have flat checkpoints taken at different
// points: device 2's still shows f.txt's first version s, device 1's
// shows the tombstone that ended the chain s → E → deleted (E, the
// tombstone's base, is no head anywhere, so neither checkpoint says that
// s was superseded). The upgrade must not make s a head again: the
// namespace shows one head at f.txt, and when device 1 (still on the old
// release) writes f.txt anew, no conflict copy of s appears.
func TestUpgradeFromSeveralFlatCheckpoints(t *testing.T) {
	a := newMemAccount(t, 6)
	o := newOldRelease(t, a)
	d1, d2 := o.device(), o.device()
	o.inline(d1, "f.txt", "s")
	o.flush(d1)
	o.inline(d2, "g.txt", "g")
	o.flush(d2)
	o.checkpoint(d2, d1, d2) // f.txt shows s
	o.inline(d1, "f.txt", "E")
	o.flush(d1)
	o.del(d1, "f.txt")
	o.flush(d1)
	o.checkpoint(d1, d1, d2) // f.txt deleted
	o.publish(d1)
	o.publish(d2)

	dev := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	if got := contents(t, dev); !equalContents(got, o.want) {
		t.Fatalf("the upgraded device shows %q, want %q", got, o.want)
	}
	if hs, err := dev.s.log.view().Heads(context.Background(), "f.txt"); err != nil || len(hs) != 1 {
		t.Errorf("f.txt has %d heads after the upgrade (%v), want the tombstone alone: %+v", len(hs), err, hs)
	}
	o.inline(d1, "f.txt", "Y")
	o.flush(d1)
	o.publish(d1)
	mustPoll(t, dev)
	mustFlush(t, dev)
	if got := contents(t, dev); !equalContents(got, o.want) {
		t.Fatalf("after the old device wrote f.txt again the upgraded device shows %q, want %q", got, o.want)
	}
}
