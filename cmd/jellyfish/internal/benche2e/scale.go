package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jellyfish-p2p/jellyfish/cmd/jellyfish/internal/jfcmd"
)

const (
	// scaleSmallUser owns the small tree the cold listing is compared to.
	scaleSmallUser = "bench-small"
	// scaleFailShown failures are printed as they happen; the stderr tails
	// of the first scaleTailsKept are repeated at the end.
	scaleFailShown = 10
	scaleTailsKept = 3
	// statsWait bounds the wait for a quiet snapshot of the put counters.
	statsWait = time.Minute
)

// Remotes of the scale benchmark's config. All but scaleRemoteSmall and
// scaleRemoteColdSmall are devices of the big account; each has its own
// data_dir except the two cold ones, which share one (different account
// folders inside it).
const (
	scaleRemoteOther     = "other"     // another device, for check
	scaleRemoteCold      = "cold"      // the cold-listing device
	scaleRemoteSmall     = "small"     // the small account's writer
	scaleRemoteColdSmall = "coldsmall" // the small account's cold device
)

// scaleBench is one run of -mode scale: the testnet, the config, and what
// the commands did.
type scaleBench struct {
	o        options
	tn       *testnet
	conf     string
	cmdLog   string // the stderr of the command running now
	stats    bool   // the testnet keeps its put counters in a file
	commands int
	failed   int
	tails    []string
	steps    []scaleStep
}

type scaleStep struct {
	name string
	d    time.Duration
}

// step records how long a step took since start.
func (b *scaleBench) step(name string, start time.Time) {
	d := time.Since(start)
	b.steps = append(b.steps, scaleStep{name, d})
	fmt.Printf("# step %s: %.1fs\n", name, d.Seconds())
}

// jf runs one jellyfish command to its exit and counts it. ok says it
// exited 0; a failure is counted and reported, not returned: err is only
// the interruption of the whole run.
func (b *scaleBench) jf(ctx context.Context, stdout io.Writer, args ...string) (r result, ok bool, err error) {
	if err := os.WriteFile(b.cmdLog, nil, 0o600); err != nil {
		return result{}, false, err
	}
	r, err = run(ctx, b.o, b.conf, b.cmdLog, stdout, args...)
	if ctx.Err() != nil {
		return r, false, ctx.Err()
	}
	b.commands++
	if err != nil {
		b.fail("jellyfish "+strings.Join(args, " "), err)
		return r, false, nil
	}
	return r, true, nil
}

// fail counts a failed command and keeps its stderr tail.
func (b *scaleBench) fail(what string, err error) {
	b.failed++
	status := "failed"
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		status = ee.ProcessState.String()
	}
	t := strings.TrimSpace(tail(b.cmdLog))
	if t == "" {
		t = err.Error()
	}
	if len(t) > 1200 {
		t = "…" + t[len(t)-1200:]
	}
	last := t[strings.LastIndexByte(t, '\n')+1:]
	if b.failed <= scaleFailShown {
		fmt.Printf("# FAILED (%s): %s: %s\n", status, what, last)
		if b.failed == scaleFailShown {
			fmt.Println("# (later failures are counted, not shown)")
		}
	}
	if len(b.tails) < scaleTailsKept {
		b.tails = append(b.tails, fmt.Sprintf("%s (%s):\n%s", what, status, t))
	}
}

// putStats returns a snapshot of the testnet's put counters taken after
// this call began with no put in flight: every put of a command that has
// exited is in it.
func (b *scaleBench) putStats(ctx context.Context) (jfcmd.BenchStats, error) {
	path := filepath.Join(b.tn.dir, jfcmd.BenchStatsFileName)
	after := time.Now().UnixNano()
	deadline := time.Now().Add(statsWait)
	var s jfcmd.BenchStats
	for {
		// SIGUSR1 makes the testnet rewrite the file at once.
		if err := b.tn.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			return s, fmt.Errorf("put counters: %w", err)
		}
		for range 20 {
			select {
			case <-ctx.Done():
				return s, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
			var err error
			if s, err = readBenchStats(path); err == nil && s.At > after && s.InFlight == 0 {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("put counters: no snapshot without puts in flight within %v (last: %+v)", statsWait, s)
		}
	}
}

func readBenchStats(path string) (jfcmd.BenchStats, error) {
	var s jfcmd.BenchStats
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}

// runScale measures the namespace of one account holding o.files files:
// the first sync, changes one at a time and what each costs the providers,
// no-op syncs against the local backend, a check from another device, a
// cold listing against a small account's, and the memory of listing the
// whole account and of a mount. Failed commands are counted and the run
// goes on; the last line sums it up.
func runScale(ctx context.Context, o options) error {
	var cl cleanups
	defer cl.run()
	if err := freshDir(&cl, o.work); err != nil {
		return err
	}
	b := &scaleBench{o: o, cmdLog: filepath.Join(o.work, "command.log")}
	fmt.Printf("# bench-scale: %d files, seed %d, testnet of %d nodes (%d+%d) in %s, work folder %s; load average %s\n",
		o.files, o.seed, o.nodes, o.k, o.m, o.dir, o.work, loadAvg())

	// 1. The trees.
	start := time.Now()
	src := filepath.Join(o.work, "src")
	tree, err := genTree(ctx, src, o.files, o.seed)
	if err != nil {
		return fmt.Errorf("generate the tree: %w", err)
	}
	b.step("1 generate", start)
	fmt.Printf("# tree: %d files, %.1f MiB, %d folders up to %d deep; wide folder %s (%d files), listed folder %s (%d files); seed %d; %.0f files/s\n",
		tree.files, float64(tree.bytes)/mib, len(tree.folders), tree.maxDepth(), tree.wide, tree.files/10,
		tree.list, min(treeListFiles, tree.files/10), tree.seed, float64(tree.files)/time.Since(start).Seconds())
	small, err := genTree(ctx, filepath.Join(o.work, "src-small"), o.smallFiles, o.seed)
	if err != nil {
		return fmt.Errorf("generate the small tree: %w", err)
	}
	changes := o.changes
	if changes <= 0 {
		changes = max(1, o.files/1000)
	}

	// The testnet, on disk; its quota leaves room for twice the data
	// stored with its redundancy, and bounds the disk space a namespace
	// that stores far more (today's, once it fails) can take.
	o.size = tree.bytes + small.bytes + int64(changes)*changeFileSize
	start = time.Now()
	if b.tn, err = startTestnet(ctx, &cl, o, o.dir, o.work); err != nil {
		return err
	}
	b.step("testnet start", start)
	if _, err := readBenchStats(filepath.Join(o.dir, jfcmd.BenchStatsFileName)); err != nil {
		fmt.Printf("# no put counters from the testnet (%v): per-change bytes will be -1\n", err)
	} else {
		b.stats = true
	}
	b.conf = filepath.Join(o.work, "rclone-scale.conf")
	if err := b.writeConfig(); err != nil {
		return err
	}
	mainTree := jfcmd.RemoteName + ":tree"

	// 2. The first sync.
	start = time.Now()
	r, ok, err := b.jf(ctx, nil, "sync", src, mainTree)
	if err != nil {
		return err
	}
	b.step("2 sync", start)
	fmt.Printf("# sync of %d files: %.1fs, %.0f files/s, peak RSS %d MiB%s\n",
		tree.files, r.wall.Seconds(), float64(tree.files)/r.wall.Seconds(), r.maxRSS/mib, failedNote(ok))

	// 3. Changes, one copyto each.
	start = time.Now()
	ch, err := b.changes(ctx, tree, changes)
	if err != nil {
		return err
	}
	b.step("3 changes", start)

	// 4. No-op syncs, to the network and to a local copy.
	start = time.Now()
	local := filepath.Join(o.work, "local")
	if _, _, err := b.jf(ctx, nil, "sync", src, local); err != nil {
		return err
	}
	noopRatio, err := b.noops(ctx, src, mainTree, local)
	if err != nil {
		return err
	}
	b.step("4 no-op syncs", start)

	// 5. Check from another device.
	start = time.Now()
	diffs, err := b.check(ctx, src, scaleRemoteOther+":tree")
	if err != nil {
		return err
	}
	b.step("5 check", start)

	// 6. Cold listing, big account against small.
	start = time.Now()
	coldS, coldRatio, err := b.coldList(ctx, tree, small)
	if err != nil {
		return err
	}
	b.step("6 cold listing", start)

	// 7. Memory of listing everything, and of a mount.
	start = time.Now()
	lsfRSS, err := b.lsfRSS(ctx, mainTree, tree.files+changes, len(tree.folders))
	if err != nil {
		return err
	}
	mountRSS, err := b.mountRSS(ctx, &cl, tree.list)
	if err != nil {
		return err
	}
	b.step("7 memory", start)
	if err := ctx.Err(); err != nil {
		return err
	}

	// 8 is in ch. 9. The big account's device slots.
	b.slotSizes()

	fmt.Printf("# load average at the end: %s\n", loadAvg())
	var times []string
	for _, s := range b.steps {
		times = append(times, fmt.Sprintf("%s %.1fs", s.name, s.d.Seconds()))
	}
	fmt.Printf("# step times: %s\n", strings.Join(times, ", "))
	if b.failed > 0 {
		fmt.Printf("# %d of %d commands failed; the first:\n", b.failed, b.commands)
		for _, t := range b.tails {
			fmt.Printf("# --- %s\n", strings.ReplaceAll(t, "\n", "\n#     "))
		}
	} else {
		fmt.Printf("# all %d commands succeeded\n", b.commands)
	}
	fmt.Printf("scale files=%d changes=%d failed-commands=%d check-differences=%d per-change-bytes=%s wide-folder-change-bytes=%s noop-ratio=%s cold-list-s=%s cold-list-ratio=%s lsf-rss-mib=%s mount-rss-mib=%s\n",
		tree.files, changes, b.failed, diffs, num(ch.perChange, 0), num(ch.perWide, 0), num(noopRatio, 2),
		num(coldS, 3), num(coldRatio, 2), num(lsfRSS, 0), num(mountRSS, 0))
	return nil
}

// num formats v with prec decimals, or -1 when v is negative (not
// measured).
func num(v float64, prec int) string {
	if v < 0 {
		return "-1"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

func failedNote(ok bool) string {
	if ok {
		return ""
	}
	return " (FAILED)"
}

// loadAvg returns the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// writeConfig writes the testnet's config with the scale benchmark's extra
// remotes: copies of the [jellyfish] section with their own data_dir and,
// for the small account, its username.
func (b *scaleBench) writeConfig() error {
	if err := b.tn.writeConfig(b.o, b.conf, ""); err != nil {
		return err
	}
	conf, err := os.ReadFile(b.conf)
	if err != nil {
		return err
	}
	var section []string
	in := false
	for _, line := range strings.Split(string(conf), "\n") {
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "[") {
			in = t == "["+jfcmd.RemoteName+"]"
			continue
		}
		if in && strings.TrimSpace(line) != "" {
			section = append(section, line)
		}
	}
	remote := func(name, user, dataDir string) string {
		var out strings.Builder
		fmt.Fprintf(&out, "\n[%s]\n", name)
		for _, line := range section {
			key, _, _ := strings.Cut(line, "=")
			switch strings.TrimSpace(key) {
			case "username", "data_dir":
				continue
			}
			out.WriteString(line + "\n")
		}
		fmt.Fprintf(&out, "username = %s\ndata_dir = %s\n", user, dataDir)
		return out.String()
	}
	devs := func(name string) string { return filepath.Join(b.o.work, "devices-"+name) }
	extra := remote(scaleRemoteOther, benchUser, devs(scaleRemoteOther)) +
		remote(scaleRemoteCold, benchUser, devs(scaleRemoteCold)) +
		remote(scaleRemoteSmall, scaleSmallUser, devs(scaleRemoteSmall)) +
		remote(scaleRemoteColdSmall, scaleSmallUser, devs(scaleRemoteCold))
	f, err := os.OpenFile(b.conf, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(extra); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// changeCost is step 3's outcome: bytes the providers accepted per change.
type changeCost struct {
	perChange, perWide float64 // -1: not measured
}

// changes makes n changes, one fresh `jellyfish copyto` each, of a new
// file into a random folder of the tree (every tenth into the wide
// folder), writing the same file into the source tree first. It reads the
// providers' put counters before and after each.
func (b *scaleBench) changes(ctx context.Context, t *scaleTree, n int) (changeCost, error) {
	rng := rand.New(rand.NewPCG(t.seed, 0x6368616e6765)) // "change"
	var (
		walls, wideWalls, otherWalls []time.Duration
		all, wide                    int64
		perChange                    []int64
		last                         int64 = -1
		nWide, nFailed               int
		statsOK                      = b.stats
		progress                     = max(1, n/10)
	)
	for i := range n {
		folder := t.folders[t.ordinary[rng.IntN(len(t.ordinary))]]
		isWide := i%10 == 0
		if isWide {
			folder = t.wide
			nWide++
		}
		rel := folder + "/" + fmt.Sprintf("new-%05d.bin", i)
		p, err := t.writeChange(i, rel)
		if err != nil {
			return changeCost{}, err
		}
		var before jfcmd.BenchStats
		if statsOK {
			if before, err = b.putStats(ctx); err != nil {
				if ctx.Err() != nil {
					return changeCost{}, err
				}
				fmt.Printf("# %v: per-change bytes will be -1\n", err)
				statsOK = false
			}
		}
		r, ok, err := b.jf(ctx, nil, "copyto", p, jfcmd.RemoteName+":tree/"+rel)
		if err != nil {
			return changeCost{}, err
		}
		if !ok {
			nFailed++
		}
		walls = append(walls, r.wall)
		if isWide {
			wideWalls = append(wideWalls, r.wall)
		} else {
			otherWalls = append(otherWalls, r.wall)
		}
		if statsOK {
			after, err := b.putStats(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return changeCost{}, err
				}
				fmt.Printf("# %v: per-change bytes will be -1\n", err)
				statsOK = false
			} else {
				d := after.Bytes - before.Bytes
				all += d
				last = d
				perChange = append(perChange, d)
				if isWide {
					wide += d
				}
			}
		}
		if (i+1)%progress == 0 || i == n-1 {
			fmt.Printf("# change %d/%d: copyto %.2fs, providers accepted %d bytes; %d failed so far\n", i+1, n, r.wall.Seconds(), last, nFailed)
		}
	}
	c := changeCost{perChange: -1, perWide: -1}
	if statsOK {
		c.perChange = float64(all) / float64(n)
		if nWide > 0 {
			c.perWide = float64(wide) / float64(nWide)
		}
		slices.Sort(perChange)
		fmt.Printf("# bytes the providers accepted per change: median %d, largest %d, total %d\n",
			perChange[len(perChange)/2], perChange[len(perChange)-1], all)
	}
	fmt.Printf("# %d changes (%d into the wide folder), %d failed: copyto median %.2fs (wide folder %.2fs, others %.2fs), slowest %.2fs; providers accepted %s bytes per change, %s per change into the wide folder\n",
		n, nWide, nFailed, medianDur(walls).Seconds(), medianDur(wideWalls).Seconds(), medianDur(otherWalls).Seconds(),
		slices.Max(walls).Seconds(), num(c.perChange, 0), num(c.perWide, 0))
	return c, nil
}

// medianDur returns the median of ds, or 0 for none.
func medianDur(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// noops syncs the unchanged source tree to the network and to the local
// copy o.resyncs times each, in turn, and returns the ratio of their
// median times (-1 if either side never succeeded).
func (b *scaleBench) noops(ctx context.Context, src, remote, local string) (float64, error) {
	var jfWalls, localWalls []time.Duration
	var stored int64
	for i := range max(1, b.o.resyncs) {
		var before jfcmd.BenchStats
		var err error
		if b.stats {
			if before, err = b.putStats(ctx); err != nil {
				return -1, err
			}
		}
		r, ok, err := b.jf(ctx, nil, "sync", src, remote)
		if err != nil {
			return -1, err
		}
		if ok {
			jfWalls = append(jfWalls, r.wall)
		}
		if b.stats {
			after, err := b.putStats(ctx)
			if err != nil {
				return -1, err
			}
			stored += after.Bytes - before.Bytes
		}
		rl, okl, err := b.jf(ctx, nil, "sync", src, local)
		if err != nil {
			return -1, err
		}
		if okl {
			localWalls = append(localWalls, rl.wall)
		}
		fmt.Printf("# no-op sync %d: jellyfish %.2fs%s, local %.2fs%s\n", i+1, r.wall.Seconds(), failedNote(ok), rl.wall.Seconds(), failedNote(okl))
	}
	if len(jfWalls) == 0 || len(localWalls) == 0 {
		fmt.Println("# no-op syncs: no ratio (every run of one side failed)")
		return -1, nil
	}
	jm, lm := medianDur(jfWalls), medianDur(localWalls)
	fmt.Printf("# no-op syncs (median of %d and %d that succeeded): jellyfish %.2fs, local %.2fs, ratio %.2f; providers accepted %d bytes during them\n",
		len(jfWalls), len(localWalls), jm.Seconds(), lm.Seconds(), jm.Seconds()/lm.Seconds(), stored)
	return jm.Seconds() / lm.Seconds(), nil
}

var differencesRE = regexp.MustCompile(`(\d+) differences found`)

// check runs `jellyfish check src remote` and returns the differences it
// reports (-1 when it reported none and failed). rclone exits non-zero
// when it finds differences, which counts as a failed command too.
func (b *scaleBench) check(ctx context.Context, src, remote string) (int, error) {
	r, ok, err := b.jf(ctx, nil, "check", src, remote)
	if err != nil {
		return -1, err
	}
	log, _ := os.ReadFile(b.cmdLog)
	diffs := -1
	if m := differencesRE.FindAllSubmatch(log, -1); len(m) > 0 {
		diffs, _ = strconv.Atoi(string(m[len(m)-1][1]))
	} else if ok {
		diffs = 0
	}
	fmt.Printf("# check from another device: %d differences, %.1fs, peak RSS %d MiB%s\n", diffs, r.wall.Seconds(), r.maxRSS/mib, failedNote(ok))
	return diffs, nil
}

// coldList creates the small account, syncs the small tree to it, and
// times `lsf` of each account's listed folder from a device with an empty
// log cache (its key cache kept), o.coldRuns times each in turn. It
// returns the big account's median and the ratio big/small (-1: not
// measured).
func (b *scaleBench) coldList(ctx context.Context, big, small *scaleTree) (float64, float64, error) {
	pw := filepath.Join(b.o.work, "password")
	if err := os.WriteFile(pw, []byte(benchPassword+"\n"), 0o600); err != nil {
		return -1, -1, err
	}
	if _, _, err := b.jf(ctx, nil, "account", "create", "--bootstrap-file", filepath.Join(b.tn.dir, jfcmd.BootstrapFileName),
		"--username", scaleSmallUser, "--password-file", pw, "--insecure-test-kdf"); err != nil {
		return -1, -1, err
	}
	r, ok, err := b.jf(ctx, nil, "sync", small.root, scaleRemoteSmall+":tree")
	if err != nil {
		return -1, -1, err
	}
	fmt.Printf("# small account %q: sync of %d files %.1fs%s\n", scaleSmallUser, small.files, r.wall.Seconds(), failedNote(ok))

	type target struct {
		name, remote string
		want         int
		walls        []time.Duration
	}
	targets := []*target{
		{name: "big", remote: scaleRemoteCold + ":tree/" + big.list, want: min(treeListFiles, big.files/10)},
		{name: "small", remote: scaleRemoteColdSmall + ":tree/" + small.list, want: min(treeListFiles, small.files/10)},
	}
	// Untimed: the devices log in once, so their key caches spare the
	// timed runs the key derivation.
	for _, t := range targets {
		if _, _, err := b.jf(ctx, io.Discard, "lsf", t.remote); err != nil {
			return -1, -1, err
		}
	}
	cacheGlob := filepath.Join(b.o.work, "devices-"+scaleRemoteCold, "*", "slot-*", "log-cache")
	for i := range max(1, b.o.coldRuns) {
		for _, t := range targets {
			caches, _ := filepath.Glob(cacheGlob)
			for _, c := range caches {
				if err := os.RemoveAll(c); err != nil {
					return -1, -1, err
				}
			}
			var out bytes.Buffer
			r, ok, err := b.jf(ctx, &out, "lsf", t.remote)
			if err != nil {
				return -1, -1, err
			}
			n := strings.Count(out.String(), "\n")
			if ok && n != t.want {
				fmt.Printf("# WARNING: cold listing of the %s account's folder shows %d entries, want %d\n", t.name, n, t.want)
			}
			if ok {
				t.walls = append(t.walls, r.wall)
			}
			fmt.Printf("# cold listing %d of %s (%d entries): %.2fs, peak RSS %d MiB%s\n", i+1, t.remote, n, r.wall.Seconds(), r.maxRSS/mib, failedNote(ok))
		}
	}
	bigS, ratio := -1.0, -1.0
	if len(targets[0].walls) > 0 {
		bigS = medianDur(targets[0].walls).Seconds()
		if len(targets[1].walls) > 0 {
			smallS := medianDur(targets[1].walls).Seconds()
			ratio = bigS / smallS
			fmt.Printf("# cold listing (median): %d-file account %.3fs, %d-file account %.3fs, ratio %.2f\n", big.files, bigS, small.files, smallS, ratio)
		}
	}
	return bigS, ratio, nil
}

// lineCounter counts the lines written to it.
type lineCounter struct{ n int }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}

// lsfRSS lists the whole account recursively and returns the process's
// peak RSS in MiB (-1 if it failed).
func (b *scaleBench) lsfRSS(ctx context.Context, remote string, files, folders int) (float64, error) {
	var lc lineCounter
	r, ok, err := b.jf(ctx, &lc, "lsf", "-R", remote)
	if err != nil {
		return -1, err
	}
	fmt.Printf("# lsf -R of the account: %d entries (want %d files + %d folders), %.1fs, peak RSS %d MiB%s\n",
		lc.n, files, folders, r.wall.Seconds(), r.maxRSS/mib, failedNote(ok))
	if !ok {
		return -1, nil
	}
	return float64(r.maxRSS) / mib, nil
}

// mountRSS mounts the tree with `jellyfish mount`, lists folder through
// it with ls, unmounts, and returns the mount process's peak RSS in MiB
// (-1 if it could not run or failed).
func (b *scaleBench) mountRSS(ctx context.Context, cl *cleanups, folder string) (float64, error) {
	fusermount, err := exec.LookPath("fusermount3")
	if _, serr := os.Stat("/dev/fuse"); serr != nil || err != nil {
		fmt.Printf("# mount: SKIPPED, needs /dev/fuse and fusermount3 (/dev/fuse: %v; fusermount3: %v)\n", serr, err)
		return -1, nil
	}
	mnt := filepath.Join(b.o.work, "mnt")
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		return -1, err
	}
	lf, err := os.Create(b.cmdLog)
	if err != nil {
		return -1, err
	}
	defer lf.Close()
	args := []string{"--config", b.conf, "mount", jfcmd.RemoteName + ":tree", mnt}
	what := "jellyfish mount " + jfcmd.RemoteName + ":tree " + mnt
	cmd := exec.Command(b.o.bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	mountStart := time.Now()
	if err := cmd.Start(); err != nil {
		return -1, err
	}
	b.commands++
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	var once sync.Once
	unmount := func() {
		once.Do(func() { stopMount(fusermount, mnt, cmd, done) })
	}
	cl.add(unmount)

	deadline := time.Now().Add(2 * time.Minute)
	for !mounted(mnt) {
		select {
		case <-done:
			b.fail(what, fmt.Errorf("exited before mounting: %s", cmd.ProcessState))
			return -1, nil
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			unmount()
			b.fail(what, errors.New("not mounted after 2 minutes"))
			return -1, nil
		}
	}
	mountedIn := time.Now()
	var out bytes.Buffer
	ls := exec.CommandContext(ctx, "ls", "-1", filepath.Join(mnt, filepath.FromSlash(folder)))
	ls.Stdout, ls.Stderr = &out, &out
	lsStart := time.Now()
	lsErr := ls.Run()
	lsWall := time.Since(lsStart)
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	b.commands++
	if lsErr != nil {
		b.failed++
		fmt.Printf("# FAILED: ls %s through the mount: %v: %s\n", folder, lsErr, strings.TrimSpace(out.String()))
	}
	unmount()
	st := cmd.ProcessState
	var rss float64 = -1
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		rss = float64(ru.Maxrss<<10) / mib
	}
	fmt.Printf("# mount: mounted after %.1fs, ls of %s: %d entries in %.2fs; mount process peak RSS %.0f MiB, %s\n",
		mountedIn.Sub(mountStart).Seconds(), folder, strings.Count(out.String(), "\n"), lsWall.Seconds(), rss, st)
	if !st.Success() {
		b.fail(what, &exec.ExitError{ProcessState: st})
		return -1, nil
	}
	if lsErr != nil {
		return -1, nil
	}
	return rss, nil
}

// stopMount unmounts mnt and waits for the mount process: fusermount3 -u
// first (the process then exits by itself), SIGTERM if it does not, and
// finally a lazy unmount and SIGKILL.
func stopMount(fusermount, mnt string, cmd *exec.Cmd, done chan struct{}) {
	wait := func(d time.Duration) bool {
		select {
		case <-done:
			return true
		case <-time.After(d):
			return false
		}
	}
	if mounted(mnt) {
		_ = exec.Command(fusermount, "-u", mnt).Run()
	}
	if !wait(30 * time.Second) {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if !wait(15 * time.Second) {
			_ = cmd.Process.Kill()
			<-done
		}
	}
	if mounted(mnt) {
		_ = exec.Command(fusermount, "-uz", mnt).Run()
	}
}

// mounted says whether mnt is a mount point now.
func mounted(mnt string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == mnt {
			return true
		}
	}
	return false
}

// slotSizes prints the on-disk size of the big account's device slot
// parts: the journal, if there is one, and the log cache.
func (b *scaleBench) slotSizes() {
	slots, _ := filepath.Glob(filepath.Join(b.tn.dir, "devices", benchUser, "slot-*"))
	var journal, logCache int64
	hasJournal := false
	for _, s := range slots {
		if n, err := diskUsage(filepath.Join(s, "journal")); err == nil {
			journal += n
			hasJournal = true
		}
		if n, err := diskUsage(filepath.Join(s, "log-cache")); err == nil {
			logCache += n
		}
	}
	j := "none"
	if hasJournal {
		j = fmt.Sprintf("%.1f MiB", float64(journal)/mib)
	}
	fmt.Printf("# big account's device (%d slots, on disk): journal %s, log-cache %.1f MiB\n", len(slots), j, float64(logCache)/mib)
}

// diskUsage returns the bytes allocated on disk to path and everything
// under it.
func diskUsage(path string) (int64, error) {
	if _, err := os.Lstat(path); err != nil {
		return 0, err
	}
	var n int64
	err := filepath.WalkDir(path, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		}
		return nil
	})
	return n, err
}
