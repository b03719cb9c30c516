package jellyfish

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
)

// buildNamespace commits dirs and, in each, files tiny files kept inline,
// flushing every chunk entries.
func buildNamespace(t testing.TB, f *Fs, dirs []string, files, chunk int) {
	t.Helper()
	ctx := context.Background()
	var pending []ns.Entry
	commit := func() {
		if err := f.s.commit(ctx, pending, nil); err != nil {
			t.Fatal(err)
		}
		mustFlush(t, f)
		pending = nil
	}
	for _, d := range dirs {
		pending = append(pending, ns.Entry{Path: d, Dir: true, ModTime: time.Now().UnixNano()})
	}
	commit()
	for i := range files {
		for _, d := range dirs {
			data := []byte(fmt.Sprintf("file %d", i))
			h := blake3.Sum256(data)
			pending = append(pending, ns.Entry{Path: fmt.Sprintf("%s/f%06d.txt", d, i), Size: int64(len(data)),
				ModTime: time.Now().UnixNano(), Hash: h[:], Inline: data})
			if len(pending) == chunk {
				commit()
			}
		}
	}
	if len(pending) > 0 {
		commit()
	}
}

// changeCost makes n single-file changes, each flushed, to files picked
// by pick, and returns the bytes the network accepted per change, and per
// flush without and with a checkpoint.
func changeCost(t testing.TB, a *memAccount, f *Fs, n int, pick func(i int) string) (perChange, plain, withCP int64) {
	t.Helper()
	cps := 0
	var all, cpBytes int64
	for i := range n {
		cp := f.s.log.own.cp
		_, before, _ := a.net.Stats()
		mustPut(t, f, pick(i), []byte(fmt.Sprint("changed ", i)))
		mustFlush(t, f)
		_, after, _ := a.net.Stats()
		all += after - before
		if f.s.log.own.cp != cp {
			cps++
			cpBytes += after - before
		}
	}
	if want := n / f.s.log.cfg.checkpointEvery; cps != want {
		t.Fatalf("%d checkpoints in %d changes, want %d", cps, n, want)
	}
	return all / int64(n), (all - cpBytes) / int64(n-cps), cpBytes / int64(cps)
}

// untilCheckpoint makes single-file changes until a flush writes a
// checkpoint, so that what follows starts with an empty log layer.
func untilCheckpoint(t testing.TB, f *Fs, pick func(i int) string) {
	t.Helper()
	cp := f.s.log.own.cp
	for i := 0; f.s.log.own.cp == cp; i++ {
		if i > f.s.log.cfg.checkpointEvery {
			t.Fatal("no checkpoint")
		}
		mustPut(t, f, pick(i), []byte(fmt.Sprint("warm-up ", i)))
		mustFlush(t, f)
	}
}

// TestChangeCostAtScale builds a namespace of 100,000 files, 20,000 of
// them in one folder, and measures what single-file changes, each
// flushed, store on the network with checkpoint_every 32, checkpoints
// included: a few nodes per checkpoint and a small batch per change, not
// a share of the tree.
func TestChangeCostAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a namespace of 100,000 files")
	}
	a := newMemAccount(t, 4)
	opt := testOptions(t, map[string]string{"checkpoint_every": "32"})
	dev := a.openDevice(t, t.TempDir(), opt)
	start := time.Now()
	var spread []string
	for i := range 400 {
		spread = append(spread, fmt.Sprintf("d%03d", i))
	}
	buildNamespace(t, dev, spread, 200, 10_000) // 80,000 files
	buildNamespace(t, dev, []string{"big"}, 20_000, 10_000)
	rng := mrand.New(mrand.NewPCG(1, 2))
	anywhere := func(int) string {
		if rng.IntN(5) == 0 {
			return fmt.Sprintf("big/f%06d.txt", rng.IntN(20_000))
		}
		return fmt.Sprintf("d%03d/f%06d.txt", rng.IntN(400), rng.IntN(200))
	}
	inBig := func(int) string { return fmt.Sprintf("big/f%06d.txt", rng.IntN(20_000)) }
	untilCheckpoint(t, dev, anywhere)
	built := time.Since(start)
	if files, _, _, err := dev.s.log.usage(context.Background()); err != nil || files != 100_000 {
		t.Fatalf("%d files (%v)", files, err)
	}
	_, total, _ := a.net.Stats()

	start = time.Now()
	spread1, spreadPlain, spreadCP := changeCost(t, a, dev, 64, anywhere)
	big1, bigPlain, bigCP := changeCost(t, a, dev, 64, inBig)
	t.Logf("100,000 files built in %v (%d bytes stored); 128 changes in %v", built.Round(time.Millisecond), total, time.Since(start).Round(time.Millisecond))
	t.Logf("per change, checkpoints included: %d bytes anywhere (a flush %d, one with a checkpoint %d), %d bytes in a folder of 20,000 (%d, %d)",
		spread1, spreadPlain, spreadCP, big1, bigPlain, bigCP)
	for _, c := range []int64{spread1, big1} {
		if c > 128<<10 {
			t.Fatalf("a change stores %d bytes", c)
		}
	}
}
