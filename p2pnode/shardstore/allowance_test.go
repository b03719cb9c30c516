package shardstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
)

// withAllowance returns a context carrying a and counting the calls.
func withAllowance(a Allowance, calls *atomic.Int64) context.Context {
	return ContextWithAllowance(context.Background(), func(context.Context) (Allowance, error) {
		if calls != nil {
			calls.Add(1)
		}
		return a, nil
	})
}

func TestAllowanceOwnerCap(t *testing.T) {
	const size = 10_000
	clock := &fakeClock{now: t0}
	d := openStore(t, t.TempDir(), WithQuotaBytes(1_000_000), WithClock(clock.Now))
	rng := rand.New(rand.NewPCG(21, 21))
	a := Allowance{Max: 3 * size, Who: "an account that shares no node", Advice: "run a node"}
	var calls atomic.Int64
	ctx := withAllowance(a, &calls)
	lease := t0.Add(time.Hour)
	var kept [][]byte
	for i := range 3 {
		b, id := newShard(rng, size)
		if err := d.Put(ctx, ownerA, id, size, bytes.NewReader(b), lease); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		kept = append(kept, b)
	}
	b, id := newShard(rng, size)
	cr := &countingReader{r: bytes.NewReader(b)}
	err := d.Put(ctx, ownerA, id, size, cr, lease)
	var ae *AllowanceError
	if !errors.Is(err, ErrOverAllowance) || !errors.As(err, &ae) || cr.reads.Load() != 0 {
		t.Fatalf("fourth put: %v after %d reads", err, cr.reads.Load())
	}
	if ae.Held != 3*size || ae.Collective {
		t.Fatalf("refusal %+v", ae)
	}
	if want := "this provider keeps at most 29.2 KiB for an account that shares no node (it holds 29.2 KiB of yours); run a node"; ae.Error() != want {
		t.Fatalf("message %q, want %q", ae.Error(), want)
	}
	if got := d.Usage().PerOwner[ownerA]; got != 3*size {
		t.Fatalf("owner holds %d", got)
	}
	// Another owner is not held back by the first one's cap.
	b, id = newShard(rng, size)
	if err := d.Put(ctx, ownerB, id, size, bytes.NewReader(b), lease); err != nil {
		t.Fatalf("another owner: %v", err)
	}
	// Re-putting and renewing what the owner references is never refused,
	// and asks for no allowance.
	before := calls.Load()
	for _, k := range kept {
		if err := d.Put(ctx, ownerA, codec.IDOf(k), size, bytes.NewReader(k), lease.Add(time.Hour)); err != nil {
			t.Fatalf("re-put: %v", err)
		}
	}
	if calls.Load() != before {
		t.Fatalf("re-puts asked for the allowance %d times", calls.Load()-before)
	}
	if missing, err := d.Renew(ctx, ownerA, []codec.ShardID{codec.IDOf(kept[0])}, lease.Add(2*time.Hour)); err != nil || len(missing) != 0 {
		t.Fatalf("renew: %v, missing %v", err, missing)
	}
	// A shard held for someone else is a new reference: refused too.
	if err := d.Put(ctx, ownerA, id, size, bytes.NewReader(b), lease); !errors.Is(err, ErrOverAllowance) {
		t.Fatalf("reference to another owner's shard: %v", err)
	}
	// Deleting one makes room for one.
	if err := d.Delete(ctx, ownerA, codec.IDOf(kept[0])); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, ownerA, id, size, bytes.NewReader(b), lease); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
	// Without an allowance the quota alone limits.
	b, id = newShard(rng, size)
	if err := d.Put(context.Background(), ownerA, id, size, bytes.NewReader(b), lease); err != nil {
		t.Fatalf("put without an allowance: %v", err)
	}
}

// TestAllowanceCountsPutsInFlight: two puts of one owner in flight cannot
// both pass when together they exceed the cap.
func TestAllowanceCountsPutsInFlight(t *testing.T) {
	const size = 10_000
	d := openStore(t, t.TempDir(), WithQuotaBytes(10_000_000), WithClock((&fakeClock{now: t0}).Now))
	rng := rand.New(rand.NewPCG(22, 22))
	ctx := withAllowance(Allowance{Max: 15_000, Group: "g", GroupMax: 25_000}, nil)
	_, id := newShard(rng, 10)
	h := startHeldPutCtx(t, d, ctx, ownerA, id, size)
	_, id2 := newShard(rng, 10)
	if err := d.Put(ctx, ownerA, id2, size, bytes.NewReader(nil), t0.Add(time.Hour)); !errors.Is(err, ErrOverAllowance) {
		t.Fatalf("second put in flight: %v", err)
	}
	// The group's cap counts the first put in flight as well.
	_, id3 := newShard(rng, 10)
	h2 := startHeldPutCtx(t, d, ctx, ownerB, id3, size)
	_, id4 := newShard(rng, 10)
	err := d.Put(ctx, Owner{9}, id4, size, bytes.NewReader(nil), t0.Add(time.Hour))
	var ae *AllowanceError
	if !errors.As(err, &ae) || !ae.Collective || ae.GroupHeld != 2*size {
		t.Fatalf("third owner's put: %v", err)
	}
	if u := d.Usage(); u.PerGroup["g"] != 2*size {
		t.Fatalf("groups %v", u.PerGroup)
	}
	h.stop()
	h2.stop()
	if u := d.Usage(); len(u.PerGroup) != 0 || len(d.groupOf) != 0 {
		t.Fatalf("after the puts failed: groups %v, owners %v", u.PerGroup, d.groupOf)
	}
}

// TestAllowanceGroupAfterReopen: after a restart every owner counts in
// group "" until a put or AssignGroup names its group.
func TestAllowanceGroupAfterReopen(t *testing.T) {
	const size = 10_000
	dir := t.TempDir()
	clock := &fakeClock{now: t0}
	d := openStore(t, dir, WithQuotaBytes(1_000_000), WithClock(clock.Now))
	rng := rand.New(rand.NewPCG(23, 23))
	lease := t0.Add(time.Hour)
	starter := withAllowance(Allowance{Max: 5 * size, GroupMax: 3 * size}, nil)
	own := withAllowance(Allowance{Group: "own"}, nil)
	for range 2 {
		b, id := newShard(rng, size)
		if err := d.Put(starter, ownerA, id, size, bytes.NewReader(b), lease); err != nil {
			t.Fatal(err)
		}
		b, id = newShard(rng, size)
		if err := d.Put(own, ownerB, id, size, bytes.NewReader(b), lease); err != nil {
			t.Fatal(err)
		}
	}
	if g := d.Usage().PerGroup; g[""] != 2*size || g["own"] != 2*size {
		t.Fatalf("groups %v", g)
	}
	d.Close()
	d = openStore(t, dir, WithQuotaBytes(1_000_000), WithClock(clock.Now))
	if g := d.Usage().PerGroup; g[""] != 4*size {
		t.Fatalf("groups after reopening %v", g)
	}
	// The own account's bytes block a starter until it is named.
	b, id := newShard(rng, size)
	if err := d.Put(starter, Owner{7}, id, size, bytes.NewReader(b), lease); !errors.Is(err, ErrOverAllowance) {
		t.Fatalf("starter put before the own account is named: %v", err)
	}
	d.AssignGroup(ownerB, "own")
	if err := d.Put(starter, Owner{7}, id, size, bytes.NewReader(b), lease); err != nil {
		t.Fatalf("starter put after: %v", err)
	}
	if g := d.Usage().PerGroup; g[""] != 3*size || g["own"] != 2*size {
		t.Fatalf("groups %v", g)
	}
	// Collection returns what the group held.
	clock.Set(lease.Add(time.Second))
	if _, err := d.GC(context.Background(), clock.Now()); err != nil {
		t.Fatal(err)
	}
	if u := d.Usage(); len(u.PerGroup) != 0 || len(u.PerOwner) != 0 || len(d.groupOf) != 0 {
		t.Fatalf("after collection: %+v, owners %v", u, d.groupOf)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1 KiB", 256 << 20: "256 MiB", 256<<20 - 100<<10: "255.9 MiB",
		256<<20 - 1: "255.9 MiB", 3 << 40: "3 TiB", 1536 << 20: "1.5 GiB",
	} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	msg := (&AllowanceError{Allowance: Allowance{GroupMax: 128 << 20, Whose: "accounts that share no node", Advice: "run a node"},
		Held: 1 << 20, GroupHeld: 127 << 20, Collective: true}).Error()
	if !strings.Contains(msg, "at most 128 MiB for all accounts that share no node together, and holds 127 MiB of theirs (1 MiB of yours); run a node") {
		t.Fatalf("collective message %q", msg)
	}
}

// startHeldPutCtx starts a put with ctx and waits until it reserved its
// space or failed.
func startHeldPutCtx(t *testing.T, d *Disk, ctx context.Context, owner Owner, id codec.ShardID, size int64) *heldPut {
	t.Helper()
	pr, pw := io.Pipe()
	h := &heldPut{pw: pw, done: make(chan error, 1)}
	before := d.Usage().Reserved
	go func() { h.done <- d.Put(ctx, owner, id, size, pr, t0.Add(time.Hour)) }()
	deadline := time.Now().Add(10 * time.Second)
	for d.Usage().Reserved < before+size {
		select {
		case err := <-h.done:
			t.Fatalf("held put: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("put neither reserved its space nor failed")
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	return h
}

// TestRoom: what an owner holds and how much more it may put, by the
// space free and by its allowance's own and group caps; another owner of
// the group counts against the group's cap.
func TestRoom(t *testing.T) {
	const size = 10_000
	clock := &fakeClock{now: t0}
	d := openStore(t, t.TempDir(), WithQuotaBytes(100_000), WithClock(clock.Now))
	rng := rand.New(rand.NewPCG(31, 31))
	lease := t0.Add(time.Hour)
	if held, room := d.Room(ownerA, nil); held != 0 || room != 100_000 {
		t.Fatalf("empty store: held %d, room %d", held, room)
	}
	a := Allowance{Max: 30_000, Group: "starters", GroupMax: 45_000}
	for range 2 {
		b, id := newShard(rng, size)
		if err := d.Put(withAllowance(a, nil), ownerA, id, size, bytes.NewReader(b), lease); err != nil {
			t.Fatal(err)
		}
	}
	b, id := newShard(rng, size)
	if err := d.Put(withAllowance(a, nil), ownerB, id, size, bytes.NewReader(b), lease); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name       string
		o          Owner
		a          *Allowance
		held, room int64
	}{
		{"no allowance: the space free", ownerA, nil, 20_000, 70_000},
		{"its own cap", ownerA, &a, 20_000, 10_000},
		{"the group's cap, with the other owner's bytes", ownerB, &Allowance{Max: 40_000, Group: "starters", GroupMax: 45_000}, 10_000, 15_000},
		{"an owner not yet in the group counts its bytes in", ownerB, &Allowance{Group: "others", GroupMax: 15_000}, 10_000, 5_000},
	} {
		if held, room := d.Room(c.o, c.a); held != c.held || room != c.room {
			t.Errorf("%s: held %d, room %d; want %d and %d", c.name, held, room, c.held, c.room)
		}
	}
}
