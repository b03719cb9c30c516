package jellyfish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
)

// tryOpen opens the account as the device whose slots live in dataDir,
// returning the error instead of failing; the caller closes the session.
func (a *memAccount) tryOpen(t testing.TB, dataDir string, opt *Options) (*Fs, error) {
	t.Helper()
	opt.Password, opt.DataDir = a.pw, dataDir
	slot, unlock, err := lockSlot(filepath.Join(dataDir, string(a.user)))
	if err != nil {
		return nil, err
	}
	now := a.now
	if now == nil {
		now = time.Now
	}
	s, err := openSession(context.Background(), opt.sessionKey(), opt, a.user, slot, unlock, memNetwork{a.net}, now)
	if err != nil {
		unlock()
		return nil, err
	}
	return &Fs{name: "t", opt: *opt, s: s}, nil
}

// use opens the device of dataDir, waits for its first keep-alive round
// (which retires unused devices), runs fn and closes the session.
func (a *memAccount) use(t testing.TB, dataDir string, fn func(f *Fs)) {
	t.Helper()
	f, err := a.tryOpen(t, dataDir, testOptions(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	waitKeptAlive(t, f.s)
	if fn != nil {
		fn(f)
	}
	if err := f.s.close(context.Background()); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// listed returns the devices the account record lists.
func (a *memAccount) listed(t testing.TB, id *account.Account) []ns.DeviceID {
	t.Helper()
	pub, err := account.NewManager(a.net.Records(), account.InsecureTestKDF()).Lookup(context.Background(), id.ID())
	if err != nil {
		t.Fatal(err)
	}
	return deviceIDs(pub)
}

func contains(ds []ns.DeviceID, d ns.DeviceID) bool {
	for _, x := range ds {
		if x == d {
			return true
		}
	}
	return false
}

// fileOf returns device i's file and its contents: inline, packed or an
// object of its own, by turns.
func fileOf(i int) (string, []byte) {
	size := []int{100, 20 << 10, 1200 << 10}[i%3]
	data := bytes.Repeat([]byte(fmt.Sprintf("device %02d ", i)), size/10+1)[:size]
	return fmt.Sprintf("dev/%02d.bin", i), data
}

// checkFiles reads every file of want from f.
func checkFiles(t *testing.T, f *Fs, want map[string][]byte) {
	t.Helper()
	got := listAll(t, f, "")
	if len(got) != len(want) {
		t.Errorf("lists %d files, want %d: %v", len(got), len(want), got)
	}
	for name, data := range want {
		if b := mustRead(t, f, name); !bytes.Equal(b, data) {
			t.Errorf("%s reads %d bytes, want %d", name, len(b), len(data))
		}
	}
}

// TestDevicesRetiredOverAYear: forty devices use an account over a
// simulated year (each a new data dir: a new machine, container or CI
// run), thirty of them in its first five months and never again. More than
// the 32 the account record can list, so the long unused ones must leave
// it: a device that starts retires those not seen for 180 days, writing a
// checkpoint that holds their changes first. A 41st device then starts
// and reads every file any of them wrote, though the retired devices'
// head records are gone; and one of the first devices, back after ten
// months, goes on as a new device.
func TestDevicesRetiredOverAYear(t *testing.T) {
	a := newMemAccount(t, 4)
	start := time.Date(2027, 1, 4, 9, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: start}
	a.now = clock.Now
	want := map[string][]byte{}
	dirs := make([]string, 40)
	ids := make([]ns.DeviceID, 40)
	var acct *account.Account
	most := 0
	for i := range dirs {
		day := i * 5
		if i >= 30 {
			day = 330 + (i-30)*3
		}
		clock.now = start.Add(time.Duration(day) * 24 * time.Hour)
		dirs[i] = t.TempDir()
		a.use(t, dirs[i], func(f *Fs) {
			ids[i], acct = f.s.device, f.s.acct
			name, data := fileOf(i)
			mustPut(t, f, name, data)
			mustPut(t, f, "shared.txt", []byte(fmt.Sprint("last written by device ", i)))
			mustFlush(t, f)
			// Joining the record woke the keep-alive round, which
			// retires the devices unused for long.
			waitRounds(t, f.s, 2)
			want[name], want["shared.txt"] = data, []byte(fmt.Sprint("last written by device ", i))
			most = max(most, len(a.listed(t, acct)))
		})
	}
	clock.now = clock.now.Add(24 * time.Hour)
	listed := a.listed(t, acct)
	t.Logf("at most %d devices listed; after a year %d", most, len(listed))
	if most > 31 || len(listed) != 10 {
		t.Fatalf("%d devices listed after a year (at most %d at once), want the 10 used lately", len(listed), most)
	}
	for i, d := range ids {
		if contains(listed, d) != (i >= 30) {
			t.Fatalf("device %d listed: %v", i, contains(listed, d))
		}
	}
	// Nobody reads the retired devices' logs: their heads may go.
	for i := range 30 {
		a.net.DeleteRecords(account.HeadKey(acct.ID(), account.DeviceID(ids[i])))
	}
	a.use(t, t.TempDir(), func(f *Fs) { checkFiles(t, f, want) })

	// Device 0 comes back: its log was retired, so its slot goes on as a
	// new device; what it writes reaches the others.
	a.use(t, dirs[0], func(f *Fs) {
		if f.s.device == ids[0] {
			t.Fatal("a retired device came back under its old ID")
		}
		mustPut(t, f, "back.txt", []byte("back after ten months"))
		mustFlush(t, f)
		if !contains(a.listed(t, acct), f.s.device) {
			t.Fatal("the returning device is not listed")
		}
		want["back.txt"] = []byte("back after ten months")
	})
	a.use(t, t.TempDir(), func(f *Fs) { checkFiles(t, f, want) })
}

// TestFullAccountRecord: 32 devices fill the account record within two
// days, the 33rd takes the place of the longest unseen one (writing a
// checkpoint that holds its changes first). When every listed device was
// used in the last minutes, the next new device can read but not write,
// and the error says how to make room; a quarter of an hour later it can
// write.
func TestFullAccountRecord(t *testing.T) {
	a := newMemAccount(t, 4)
	clock := &fakeClock{now: time.Date(2027, 5, 3, 8, 0, 0, 0, time.UTC)}
	a.now = clock.Now
	want := map[string][]byte{}
	dirs := make([]string, account.MaxDevices+1)
	ids := make([]ns.DeviceID, len(dirs))
	var acct *account.Account
	for i := range dirs {
		clock.Advance(time.Hour)
		dirs[i] = t.TempDir()
		a.use(t, dirs[i], func(f *Fs) {
			ids[i], acct = f.s.device, f.s.acct
			name, data := fileOf(i)
			mustPut(t, f, name, data)
			want[name] = data
		})
	}
	listed := a.listed(t, acct)
	if len(listed) != account.MaxDevices || contains(listed, ids[0]) || !contains(listed, ids[account.MaxDevices]) {
		t.Fatalf("after the 33rd device: %d listed, the first %v, the 33rd %v", len(listed), contains(listed, ids[0]), contains(listed, ids[account.MaxDevices]))
	}
	a.use(t, t.TempDir(), func(f *Fs) { checkFiles(t, f, want) })

	// Every listed device writes within a few minutes.
	clock.Advance(time.Hour)
	for i := 1; i < len(dirs); i++ {
		a.use(t, dirs[i], func(f *Fs) { mustPut(t, f, fmt.Sprintf("busy/%02d.txt", i), []byte("busy")) })
		want[fmt.Sprintf("busy/%02d.txt", i)] = []byte("busy")
	}
	clock.Advance(5 * time.Minute)
	late := t.TempDir()
	a.use(t, late, func(f *Fs) {
		checkFiles(t, f, want)
		err := f.s.commit(context.Background(), []ns.Entry{{Path: "late", Dir: true}}, nil)
		if !errors.Is(err, ErrAccountFull) || !strings.Contains(err.Error(), "jellyfish account devices --remove") {
			t.Fatalf("a new device's first change while every listed one is busy: %v", err)
		}
	})
	if contains(a.listed(t, acct), readDevice(t, late, a.user)) {
		t.Fatal("a device refused a place in the account record is listed")
	}
	clock.Advance(15 * time.Minute)
	a.use(t, late, func(f *Fs) {
		mustPut(t, f, "late.txt", []byte("late"))
		want["late.txt"] = []byte("late")
	})
	a.use(t, t.TempDir(), func(f *Fs) { checkFiles(t, f, want) })
}

// TestRecordFilledBeforeTheJoin: the account record had room when a
// device opened, so its first small file is taken while it joins in the
// background; another device took the last place meanwhile, and every
// listed device is busy. The flush says the account is full, closing says
// the change is kept in the journal, and once a device can be retired the
// next process of that data dir stores it.
func TestRecordFilledBeforeTheJoin(t *testing.T) {
	a := newMemAccount(t, 4)
	clock := &fakeClock{now: time.Date(2027, 5, 3, 8, 0, 0, 0, time.UTC)}
	a.now = clock.Now
	want := map[string][]byte{}
	for i := range account.MaxDevices - 1 {
		clock.Advance(time.Second)
		a.use(t, t.TempDir(), func(f *Fs) {
			name := fmt.Sprintf("busy/%02d.txt", i)
			mustPut(t, f, name, []byte("busy"))
			want[name] = []byte("busy")
		})
	}
	lateDir := t.TempDir()
	late, err := a.tryOpen(t, lateDir, testOptions(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	a.use(t, t.TempDir(), func(f *Fs) { mustPut(t, f, "busy/last.txt", []byte("busy")) })
	want["busy/last.txt"] = []byte("busy")
	mustPut(t, late, "late.txt", []byte("late"))
	ctx := context.Background()
	if err := late.s.flush(ctx); !errors.Is(err, ErrAccountFull) {
		t.Fatalf("flush of a change taken while the record filled up: %v", err)
	}
	if err := late.s.close(ctx); err == nil || !strings.Contains(err.Error(), "journal") || !strings.Contains(err.Error(), "late.txt") {
		t.Fatalf("closing with the change not stored: %v", err)
	}
	if contains(a.listed(t, late.s.acct), late.s.device) {
		t.Fatal("a device refused a place in the account record is listed")
	}
	a.use(t, t.TempDir(), func(f *Fs) { checkFiles(t, f, want) })
	// An hour on, the device unused longest can be retired.
	clock.Advance(time.Hour)
	a.use(t, lateDir, nil)
	want["late.txt"] = []byte("late")
	a.use(t, t.TempDir(), func(f *Fs) { checkFiles(t, f, want) })
}

// TestJoinWhileRecordsFail: a new device's first change starts its join
// in the background while the network's records fail. The change is taken,
// the flush fails saying why, closing says the change is kept in the
// journal, and the next process of that data dir, with the records back,
// joins and stores it.
func TestJoinWhileRecordsFail(t *testing.T) {
	a := newMemAccount(t, 4)
	dir := t.TempDir()
	f, err := a.tryOpen(t, dir, testOptions(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	down := errors.New("records unreachable")
	a.net.FailRecords(down)
	mustPut(t, f, "first.txt", []byte("first"))
	ctx := context.Background()
	if err := f.s.flush(ctx); !errors.Is(err, down) {
		t.Fatalf("flush with the records down: %v", err)
	}
	if err := f.s.close(ctx); err == nil || !strings.Contains(err.Error(), "journal") || !strings.Contains(err.Error(), "first.txt") {
		t.Fatalf("closing with the change not stored: %v", err)
	}
	a.net.FailRecords(nil)
	if contains(a.listed(t, f.s.acct), f.s.device) {
		t.Fatal("a device whose join failed is listed")
	}
	a.use(t, dir, nil)
	a.use(t, t.TempDir(), func(g *Fs) {
		checkFiles(t, g, map[string][]byte{"first.txt": []byte("first")})
	})
}

// TestJoinFromTheOpeningRead: a device joins starting from the account
// record it read when it opened (openedFresh). Another device joined
// since, so that read is stale: the update reads the record again before
// its put and keeps the other device. Past openedFresh the opening read is
// not used at all; both ways end with both devices listed.
func TestJoinFromTheOpeningRead(t *testing.T) {
	for _, wait := range []time.Duration{openedFresh - time.Second, openedFresh + time.Second} {
		a := newMemAccount(t, 4)
		clock := &fakeClock{now: time.Date(2027, 5, 3, 8, 0, 0, 0, time.UTC)}
		a.now = clock.Now
		late, err := a.tryOpen(t, t.TempDir(), testOptions(t, nil))
		if err != nil {
			t.Fatal(err)
		}
		var other ns.DeviceID
		a.use(t, t.TempDir(), func(f *Fs) {
			other = f.s.device
			mustPut(t, f, "other.txt", []byte("other"))
		})
		clock.Advance(wait)
		mustPut(t, late, "late.txt", []byte("late"))
		if err := late.s.close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if l := a.listed(t, late.s.acct); !contains(l, other) || !contains(l, late.s.device) {
			t.Fatalf("joined %v after opening: listed %v, want both %s and %s", wait, l, other, late.s.device)
		}
		a.use(t, t.TempDir(), func(f *Fs) {
			checkFiles(t, f, map[string][]byte{"other.txt": []byte("other"), "late.txt": []byte("late")})
		})
	}
}

// readDevice returns the device ID of the first slot of user in dataDir.
func readDevice(t testing.TB, dataDir string, user account.Username) ns.DeviceID {
	t.Helper()
	d, _, err := loadDevice(filepath.Join(dataDir, string(user), "slot-0"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestConcurrentRegistration: two new devices add themselves to the
// account record at once (with their first changes), and the record that lands last was made from
// one that did not list the other: the first device's entry is replaced
// after it read the record back and after its first flush checked it. It
// finds itself missing when it checks again (at exit here), adds itself
// again, and a third device reads what both wrote.
func TestConcurrentRegistration(t *testing.T) {
	a := newMemAccount(t, 4)
	dirA, dirB := t.TempDir(), t.TempDir()
	idA, idB := ns.DeviceID{0xaa, 1}, ns.DeviceID{0xbb, 2}
	for dir, id := range map[string]ns.DeviceID{dirA: idA, dirB: idB} {
		slot := filepath.Join(dir, string(a.user), "slot-0")
		if err := os.MkdirAll(slot, 0o700); err != nil {
			t.Fatal(err)
		}
		txt, _ := id.MarshalText()
		if err := os.WriteFile(filepath.Join(slot, "device"), txt, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	lists := func(key string, v []byte, d ns.DeviceID) bool {
		rec, err := account.VerifyOwned(key, v)
		if err != nil {
			return false
		}
		p, err := account.ParsePublic(rec.Body)
		return err == nil && p.Has(account.DeviceID(d))
	}
	// Both open without registering: a device joins the record with its
	// first change.
	devA, err := a.tryOpen(t, dirA, testOptions(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	devB, err := a.tryOpen(t, dirB, testOptions(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	bPut, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	wait := func(c chan struct{}) {
		select {
		case <-c:
		case <-time.After(20 * time.Second):
			t.Error("the interleaving did not happen")
		}
	}
	a.net.SetRecordHook(func(op, key string, v []byte) {
		if op != "put" || !strings.HasPrefix(key, "/jf/account/") {
			return
		}
		switch {
		case lists(key, v, idA) && !lists(key, v, idB):
			wait(bPut) // B read the record before A's lands
		case lists(key, v, idB) && !lists(key, v, idA):
			once.Do(func() { close(bPut) })
			wait(release)
		}
	})
	firstB := make(chan error, 1)
	go func() { firstB <- devB.Mkdir(context.Background(), "from-b") }()
	mustPut(t, devA, "a.txt", []byte("from a"))
	mustFlush(t, devA)
	close(release) // B's record, made without A, lands now
	if err := <-firstB; err != nil {
		t.Fatal(err)
	}
	// B's first change started its join in the background; this waits
	// for it.
	if err := devB.s.ensureRegistered(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.net.SetRecordHook(nil)
	acct := devA.s.acct
	if l := a.listed(t, acct); contains(l, idA) || !contains(l, idB) {
		t.Fatalf("the late record should have replaced a's entry: %v", l)
	}
	mustPut(t, devB, "b.txt", []byte("from b"))
	ctx := context.Background()
	for _, f := range []*Fs{devB, devA} {
		if err := f.s.close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if l := a.listed(t, acct); !contains(l, idA) || !contains(l, idB) {
		t.Fatalf("after both closed: %v", l)
	}
	a.use(t, t.TempDir(), func(f *Fs) {
		checkFiles(t, f, map[string][]byte{"a.txt": []byte("from a"), "b.txt": []byte("from b")})
	})
}

// copyDir copies the folder src to dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCopiedSlot: a data dir is copied (a restored backup, a cloned
// machine) and both copies go on. The copy is killed with a change in its
// journal only; then the original writes. When the copy starts again the
// device's head is ahead of its own last one, so it goes on as a new
// device and stores the journal's change as that device's (the original
// device's log, which holds later stamps, would have passed it over as
// stored). A third device reads every file of both.
func TestCopiedSlot(t *testing.T) {
	a := newMemAccount(t, 4)
	orig := t.TempDir()
	var dev ns.DeviceID
	a.use(t, orig, func(f *Fs) {
		dev = f.s.device
		mustPut(t, f, "before.txt", []byte("before the copy"))
	})
	clone := t.TempDir()
	copyDir(t, orig, clone)
	f, err := a.tryOpen(t, clone, testOptions(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	f.s.log.schedule = func(time.Duration) {} // the change stays in the journal
	mustPut(t, f, "killed.txt", []byte("in the copy's journal when it was killed"))
	crash(t, f)
	a.use(t, orig, func(f *Fs) { mustPut(t, f, "orig.txt", []byte("from the original")) })
	a.use(t, clone, func(f *Fs) {
		if f.s.device == dev {
			t.Fatal("the copy writes as the original's device")
		}
		mustPut(t, f, "clone.txt", []byte("from the copy"))
	})
	a.use(t, orig, func(f *Fs) {
		if f.s.device != dev {
			t.Fatal("the original changed device")
		}
		mustPut(t, f, "orig2.txt", []byte("from the original again"))
	})
	a.use(t, t.TempDir(), func(f *Fs) {
		checkFiles(t, f, map[string][]byte{
			"before.txt": []byte("before the copy"), "killed.txt": []byte("in the copy's journal when it was killed"),
			"orig.txt": []byte("from the original"), "clone.txt": []byte("from the copy"),
			"orig2.txt": []byte("from the original again"),
		})
	})
}

// TestCopiedSlotRunningTogether: both copies of a data dir run at once.
// The one that flushes second finds the device's head moved by the other,
// stores nothing, and keeps its change in the journal; its next process
// goes on as a new device and stores it.
func TestCopiedSlotRunningTogether(t *testing.T) {
	a := newMemAccount(t, 4)
	orig := t.TempDir()
	a.use(t, orig, func(f *Fs) { mustPut(t, f, "before.txt", []byte("before the copy")) })
	clone := t.TempDir()
	copyDir(t, orig, clone)
	fo, err := a.tryOpen(t, orig, testOptions(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	fc, err := a.tryOpen(t, clone, testOptions(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if fo.s.device != fc.s.device {
		t.Fatal("copies of a slot that wrote nothing since should start as one device")
	}
	ctx := context.Background()
	mustPut(t, fo, "orig.txt", []byte("from the original"))
	mustFlush(t, fo)
	mustPut(t, fc, "clone.txt", []byte("from the copy"))
	if err := fc.s.flush(ctx); !errors.Is(err, errForked) {
		t.Fatalf("the second copy's flush: %v", err)
	}
	if err := fc.s.close(ctx); err == nil {
		t.Fatal("a copy that could not store its change exits without an error")
	}
	if err := fo.s.close(ctx); err != nil {
		t.Fatal(err)
	}
	a.use(t, clone, func(f *Fs) {
		if f.s.device == fo.s.device {
			t.Fatal("the copy goes on as the original's device")
		}
	})
	a.use(t, t.TempDir(), func(f *Fs) {
		checkFiles(t, f, map[string][]byte{
			"before.txt": []byte("before the copy"), "orig.txt": []byte("from the original"),
			"clone.txt": []byte("from the copy"),
		})
	})
}

// TestRetirable: a device may leave the account record only when the
// remaining devices' checkpoints hold its log up to its last batch that
// holds anything, and one of them holds every absent device's log as far
// as any does.
func TestRetirable(t *testing.T) {
	x, y, z, gone := ns.DeviceID{1}, ns.DeviceID{2}, ns.DeviceID{3}, ns.DeviceID{9}
	tip := func(d ns.DeviceID, seq uint64, empty bool, covers map[ns.DeviceID]uint64) *deviceTip {
		b := &ns.Batch{Device: d, Seq: seq}
		if !empty {
			b.Entries = []ns.Entry{{Path: "f"}}
		}
		if covers != nil {
			b.Checkpoint = &ns.CheckpointRef{Seq: seq - 1, Root: []byte{1}, Covers: map[ns.DeviceID]ns.Cover{}}
			for e, s := range covers {
				b.Checkpoint.Covers[e] = ns.Cover{Seq: s}
			}
		}
		return &deviceTip{head: &ns.Head{Device: d, BatchSeq: seq}, batch: b}
	}
	for _, c := range []struct {
		name string
		tips map[ns.DeviceID]*deviceTip
		ok   bool
	}{
		{"no checkpoint holds it", map[ns.DeviceID]*deviceTip{x: tip(x, 3, false, nil), y: tip(y, 2, false, nil)}, false},
		{"held", map[ns.DeviceID]*deviceTip{x: tip(x, 3, false, nil), y: tip(y, 2, false, map[ns.DeviceID]uint64{x: 3})}, true},
		{"held but for its last batch", map[ns.DeviceID]*deviceTip{x: tip(x, 3, false, nil), y: tip(y, 2, false, map[ns.DeviceID]uint64{x: 2})}, false},
		{"its last batch holds nothing", map[ns.DeviceID]*deviceTip{x: tip(x, 3, true, nil), y: tip(y, 2, false, map[ns.DeviceID]uint64{x: 2})}, true},
		{"never wrote", map[ns.DeviceID]*deviceTip{x: {head: &ns.Head{Device: x}}, y: tip(y, 2, false, nil)}, true},
		{"held by one, the other complete for a retired device", map[ns.DeviceID]*deviceTip{
			x: tip(x, 3, false, nil),
			y: tip(y, 2, false, map[ns.DeviceID]uint64{x: 3, gone: 1}),
			z: tip(z, 2, false, map[ns.DeviceID]uint64{gone: 4}),
		}, false},
		{"its checkpoint is the only one that holds a retired device", map[ns.DeviceID]*deviceTip{
			x: tip(x, 3, true, map[ns.DeviceID]uint64{gone: 4}),
			y: tip(y, 2, false, map[ns.DeviceID]uint64{x: 2, gone: 1}),
		}, false},
		{"held by a complete one", map[ns.DeviceID]*deviceTip{
			x: tip(x, 3, false, nil),
			y: tip(y, 2, false, map[ns.DeviceID]uint64{x: 3, gone: 4}),
			z: tip(z, 2, false, map[ns.DeviceID]uint64{gone: 4}),
		}, true},
	} {
		ok, not := retirable(c.tips, []ns.DeviceID{x})
		if (len(ok) == 1) != c.ok || len(ok)+len(not) != 1 {
			t.Errorf("%s: retirable %v, want %v", c.name, ok, c.ok)
		}
	}
	// Loading prefers a checkpoint complete for absent devices over a
	// cheaper one that is not.
	tips := map[ns.DeviceID]*deviceTip{
		y: tip(y, 2, false, map[ns.DeviceID]uint64{y: 1, z: 2, gone: 4}),
		z: tip(z, 2, false, map[ns.DeviceID]uint64{y: 2, z: 1, gone: 3}),
	}
	if cp := chooseBase(tips, z); cp != tips[y].batch.Checkpoint {
		t.Fatal("chooseBase took the checkpoint that misses part of a retired device's log")
	}
}

// TestRemoveDevice: a device's removal is refused while its changes are
// in no checkpoint the others load, and done once another device wrote
// one; its files stay readable from a new device.
func TestRemoveDevice(t *testing.T) {
	a := newMemAccount(t, 4)
	ctx := context.Background()
	var acct *account.Account
	var gone ns.DeviceID
	a.use(t, t.TempDir(), func(f *Fs) {
		acct, gone = f.s.acct, f.s.device
		mustPut(t, f, "a.txt", []byte("from the device removed later"))
	})
	// A device that only reads takes no place in the record.
	reader := t.TempDir()
	a.use(t, reader, func(f *Fs) { checkFiles(t, f, map[string][]byte{"a.txt": []byte("from the device removed later")}) })
	nw := memNetwork{a.net}
	devs, err := listDevices(ctx, nw, acct)
	if err != nil || len(devs) != 1 {
		t.Fatalf("devices after one wrote and one read: %v %+v", err, devs)
	}
	if d := devs[0]; ns.DeviceID(d.ID) != gone || d.Held || d.Batch == 0 || d.Seen.IsZero() {
		t.Fatalf("device %x: %+v", d.ID, d)
	}
	if d, err := FindDevice(devs, gone.String()[:6]); err != nil || ns.DeviceID(d.ID) != gone {
		t.Fatalf("find by prefix: %v", err)
	}
	if _, err := FindDevice(devs, "vm-that-is-not"); err == nil {
		t.Fatal("found a device by a name nobody has")
	}
	if err := removeDevice(ctx, nw, acct, account.DeviceID(gone)); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("remove a device whose changes no checkpoint holds: %v", err)
	}
	a.use(t, reader, func(f *Fs) {
		if _, err := f.Command(ctx, "checkpoint", nil, nil); err != nil {
			t.Fatal(err)
		}
	})
	if err := removeDevice(ctx, nw, acct, account.DeviceID(gone)); err != nil {
		t.Fatal(err)
	}
	if l := a.listed(t, acct); contains(l, gone) || len(l) != 1 {
		t.Fatalf("after removing: %v", l)
	}
	a.use(t, t.TempDir(), func(f *Fs) {
		checkFiles(t, f, map[string][]byte{"a.txt": []byte("from the device removed later")})
	})
}

// TestRetirementChain: devices that only read come and go every other day
// on an account whose devices retire after a day and a half. Each retires
// the one before, whose checkpoint was the only one holding the log of the
// device that wrote the file (itself retired long ago): a device may leave
// only once another checkpoint holds what its own held. The file stays
// readable.
func TestRetirementChain(t *testing.T) {
	a := newMemAccount(t, 4)
	clock := &fakeClock{now: time.Date(2027, 8, 2, 9, 0, 0, 0, time.UTC)}
	a.now = clock.Now
	opt := func() *Options { return testOptions(t, map[string]string{"device_retire_after": "36h"}) }
	open := func(fn func(f *Fs)) {
		f, err := a.tryOpen(t, t.TempDir(), opt())
		if err != nil {
			t.Fatal(err)
		}
		waitKeptAlive(t, f.s)
		fn(f)
		if err := f.s.close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	open(func(f *Fs) { mustPut(t, f, "kept.txt", []byte("written once, long ago")) })
	var acct *account.Account
	for range 8 {
		clock.Advance(48 * time.Hour)
		open(func(f *Fs) {
			acct = f.s.acct
			checkFiles(t, f, map[string][]byte{"kept.txt": []byte("written once, long ago")})
		})
	}
	if n := len(a.listed(t, acct)); n > 2 {
		t.Fatalf("%d devices listed: the unused ones were not retired", n)
	}
}

// TestHeadPutInterrupted: a process killed after the network stored its
// head but before its slot recorded it leaves the slot's copy a batch
// behind, and the copy of the head it was publishing beside it: the next
// process knows that head for its own and keeps its device.
func TestHeadPutInterrupted(t *testing.T) {
	a := newMemAccount(t, 4)
	dir := t.TempDir()
	var dev ns.DeviceID
	var slot string
	a.use(t, dir, func(f *Fs) {
		dev, slot = f.s.device, f.s.slotDir
		mustPut(t, f, "one.txt", []byte("1"))
	})
	before, err := os.ReadFile(filepath.Join(slot, "head"))
	if err != nil {
		t.Fatal(err)
	}
	a.use(t, dir, func(f *Fs) { mustPut(t, f, "two.txt", []byte("2")) })
	published, err := os.ReadFile(filepath.Join(slot, "head"))
	if err != nil {
		t.Fatal(err)
	}
	// The state a kill between the put and the slot's copy leaves.
	if err := os.WriteFile(filepath.Join(slot, "head"), before, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(slot, "head"+pendingSuffix), published, 0o600); err != nil {
		t.Fatal(err)
	}
	a.use(t, dir, func(f *Fs) {
		if f.s.device != dev {
			t.Fatal("a slot whose process was killed while its head was stored took a new device")
		}
		mustPut(t, f, "three.txt", []byte("3"))
	})
	if _, err := os.Stat(filepath.Join(slot, "head"+pendingSuffix)); !os.IsNotExist(err) {
		t.Fatalf("the copy of the head being published stays after it was: %v", err)
	}
	a.use(t, t.TempDir(), func(f *Fs) {
		checkFiles(t, f, map[string][]byte{"one.txt": []byte("1"), "two.txt": []byte("2"), "three.txt": []byte("3")})
	})
}

// TestRetiredWhileOthersRun: a device joins, writes and is removed while
// another device's process runs without looking. That process never saw
// it listed; at its next poll it finds the checkpoint that let the device
// leave holding more of its log than it has read, and reads the rest:
// from the device's head, or, once that is gone, by reloading from the
// checkpoint.
func TestRetiredWhileOthersRun(t *testing.T) {
	for _, headGone := range []bool{false, true} {
		a := newMemAccount(t, 4)
		ctx := context.Background()
		running := a.openDevice(t, t.TempDir(), testOptions(t, nil))
		var x ns.DeviceID
		a.use(t, t.TempDir(), func(f *Fs) {
			x = f.s.device
			mustPut(t, f, "x.txt", []byte("from a device that came and went"))
		})
		a.use(t, t.TempDir(), func(f *Fs) {
			if _, err := f.Command(ctx, "checkpoint", nil, nil); err != nil {
				t.Fatal(err)
			}
		})
		if err := removeDevice(ctx, memNetwork{a.net}, running.s.acct, account.DeviceID(x)); err != nil {
			t.Fatal(err)
		}
		if headGone {
			a.net.DeleteRecords(account.HeadKey(running.s.acct.ID(), account.DeviceID(x)))
		}
		if _, err := running.s.poll(ctx); err != nil {
			t.Fatal(err)
		}
		if got := string(mustRead(t, running, "x.txt")); got != "from a device that came and went" {
			t.Fatalf("head gone %v: the running device reads %q", headGone, got)
		}
	}
}

// TestCopiedSlotsPublishAtOnce: both copies of a data dir run, and their
// flushes both check the device's head before either publishes, so both
// publish batch n+1 and the one stored last hides the other. When the
// hidden copy starts again it finds the device's head is not its own,
// goes on as a new device and stores again what its hidden batch held; a
// third device reads the files of both.
func TestCopiedSlotsPublishAtOnce(t *testing.T) {
	a := newMemAccount(t, 4)
	orig := t.TempDir()
	var dev ns.DeviceID
	var seq uint64
	a.use(t, orig, func(f *Fs) {
		mustPut(t, f, "before.txt", []byte("before the copy"))
		mustFlush(t, f)
		dev, seq = f.s.device, f.s.log.ownSeq()
	})
	clone := t.TempDir()
	copyDir(t, orig, clone)
	var copies [2]*Fs
	for i, dir := range []string{orig, clone} {
		f, err := a.tryOpen(t, dir, testOptions(t, nil))
		if err != nil {
			t.Fatal(err)
		}
		f.s.log.schedule = func(time.Duration) {}
		mustPut(t, f, fmt.Sprintf("copy%d.txt", i), []byte(fmt.Sprint("from copy ", i)))
		copies[i] = f
	}
	// The first head of batch seq+1 waits for the second.
	second := make(chan struct{})
	var mu sync.Mutex
	arrived := 0
	headKey := account.HeadKey(copies[0].s.acct.ID(), account.DeviceID(dev))
	a.net.SetRecordHook(func(op, key string, v []byte) {
		if op != "put" || key != headKey {
			return
		}
		if rec, err := account.VerifyOwned(key, v); err != nil || rec.Seq>>16 != seq+1 {
			return
		}
		mu.Lock()
		arrived++
		n := arrived
		mu.Unlock()
		if n == 2 {
			close(second)
			return
		}
		select {
		case <-second:
		case <-time.After(20 * time.Second):
			t.Error("the second copy did not publish")
		}
	})
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, f := range copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.s.flush(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	a.net.SetRecordHook(nil)
	for _, f := range copies {
		if err := f.s.close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	moved := 0
	for _, dir := range []string{orig, clone} {
		a.use(t, dir, func(f *Fs) {
			if f.s.device != dev {
				moved++
			}
		})
	}
	if moved != 1 {
		t.Fatalf("%d copies went on as a new device, want the hidden one", moved)
	}
	a.use(t, t.TempDir(), func(f *Fs) {
		checkFiles(t, f, map[string][]byte{
			"before.txt": []byte("before the copy"), "copy0.txt": []byte("from copy 0"), "copy1.txt": []byte("from copy 1"),
		})
	})
}

// TestDeviceNamesArePublicLabels: the account record is public, so a
// device is listed under a label made from its random ID, not its host
// name; device_name names it, and a device listed under another name (the
// host name an older version published) is renamed when it next starts.
func TestDeviceNamesArePublicLabels(t *testing.T) {
	a := newMemAccount(t, 4)
	dir := t.TempDir()
	var acct *account.Account
	var id ns.DeviceID
	a.use(t, dir, func(f *Fs) {
		acct, id = f.s.acct, f.s.device
		mustPut(t, f, "first.txt", []byte("a device is listed from its first change"))
	})
	nameOf := func() string {
		t.Helper()
		pub, err := account.NewManager(a.net.Records(), account.InsecureTestKDF()).Lookup(context.Background(), acct.ID())
		if err != nil {
			t.Fatal(err)
		}
		d, ok := pub.Device(account.DeviceID(id))
		if !ok {
			t.Fatal("device not listed")
		}
		return d.Name
	}
	host, _ := os.Hostname()
	if got, want := nameOf(), fmt.Sprintf("device-%x", id[:3]); got != want || (host != "" && strings.Contains(got, host)) {
		t.Fatalf("listed as %q, want %q", got, want)
	}
	opt := testOptions(t, nil)
	opt.DeviceName = "kitchen laptop"
	f, err := a.tryOpen(t, dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.s.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := nameOf(); got != "kitchen laptop" {
		t.Fatalf("with device_name: listed as %q", got)
	}
	// Back to no name: the label again.
	a.use(t, dir, nil)
	if got := nameOf(); got != fmt.Sprintf("device-%x", id[:3]) {
		t.Fatalf("after clearing device_name: listed as %q", got)
	}
}
