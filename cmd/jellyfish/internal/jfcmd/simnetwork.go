package jfcmd

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	rfs "github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/config/configmap"
	"github.com/rclone/rclone/fs/config/obscure"
	"github.com/rclone/rclone/fs/object"
	"github.com/rclone/rclone/lib/atexit"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish"
	"github.com/jellyfish-p2p/jellyfish/cmd/jellyfish/internal/sim"
	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/localnet"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
)

type simNetworkOptions struct {
	nodes       int
	down        int
	schemes     string
	files       int
	size        int64
	trials      int
	seed        uint64
	successFrom int
	readTimeout time.Duration
	dir         string
	keep        bool
	log         logFlags
}

func init() {
	o := simNetworkOptions{nodes: 60, down: -1, schemes: "10+20,20+10", files: 20, size: 64 << 10, trials: 6,
		seed: 1, readTimeout: 45 * time.Second}
	c := &cobra.Command{
		Use:   "network",
		Short: "Measure recovery on a real in-process network with a third of the nodes offline",
		Long: `network starts --nodes real provider nodes in this process, and for each
k+m scheme of --schemes creates an account and stores --files files of distinct
sizes (one segment each) through the Jellyfish backend. It reads back where
every shard landed from the nodes' stores. Then, --trials times, it stops a
random set of --down nodes (default a third), reads every file, compares the
bytes, and starts the nodes again.

It prints, per scheme, the measured fraction of files read, the outcome the
placement predicts for each read (k or more holders online), and the exact
model for this placement: with exactly --down of --nodes offline
(hypergeometric, what the runs do) and with every node up independently with
probability 1 - down/nodes (binomial, the paper's model).`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(context.Background())
			defer stop()
			return runSimNetwork(ctx, cmd, o)
		}),
	}
	f := c.Flags()
	f.IntVar(&o.nodes, "nodes", o.nodes, "provider nodes (about 7 MiB of memory each)")
	f.IntVar(&o.down, "down", o.down, "nodes offline in each trial (-1: a third)")
	f.StringVar(&o.schemes, "schemes", o.schemes, "k+m schemes, one account each, e.g. 10+20,20+10")
	f.IntVar(&o.files, "files", o.files, "files per scheme")
	f.Int64Var(&o.size, "size", o.size, "size of the smallest file in bytes; each next one is 1 KiB larger")
	f.IntVar(&o.trials, "trials", o.trials, "rounds of stopping nodes and reading every file")
	f.Uint64Var(&o.seed, "seed", o.seed, "seed for choosing the offline nodes")
	f.IntVar(&o.successFrom, "success-shards", o.successFrom, "shards that must be stored per segment (0: the backend's default, k + m/2)")
	f.DurationVar(&o.readTimeout, "read-timeout", o.readTimeout, "give up reading one file after this long")
	f.StringVar(&o.dir, "dir", "", "folder for the network (default: a new temporary folder)")
	f.BoolVar(&o.keep, "keep", false, "keep the network's folder afterwards")
	o.log.register(c)
	c.Flags().Lookup("log-level").DefValue = "error"
	_ = c.Flags().Set("log-level", "error")
	simCommand.AddCommand(c)
}

// simScheme is one k+m scheme of the run: its account, remote and files.
type simScheme struct {
	k, m  int
	fs    rfs.Fs
	files []simFile
	// measured outcomes
	reads, ok, predictedOK, agree int
	readTime                      time.Duration
}

// simFile is one stored file and where its shards are.
type simFile struct {
	name    string
	data    []byte
	holders map[int]int // node index → shards of the file it holds
}

func runSimNetwork(ctx context.Context, cmd *cobra.Command, o simNetworkOptions) (err error) {
	out := cmd.OutOrStdout()
	if o.nodes < 3 || o.nodes > 200 {
		return fmt.Errorf("--nodes %d: want 3 to 200", o.nodes)
	}
	if o.down < 0 {
		o.down = o.nodes / 3
	}
	if o.down >= o.nodes || o.files < 1 || o.trials < 1 || o.size < 16<<10 || o.size+int64(o.files)<<10 > codec.DefaultSegmentSize {
		return fmt.Errorf("want 0 ≤ --down < --nodes, --files and --trials ≥ 1, and files from 16 KiB to one segment (4 MiB)")
	}
	var schemes []*simScheme
	for _, s := range strings.Split(o.schemes, ",") {
		var sc simScheme
		if _, err := fmt.Sscanf(strings.TrimSpace(s), "%d+%d", &sc.k, &sc.m); err != nil || sc.k < 1 || sc.m < 0 || sc.k+sc.m > 255 {
			return fmt.Errorf("--schemes %q: want k+m", s)
		}
		schemes = append(schemes, &sc)
	}
	log, err := o.log.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	if !log.Enabled(ctx, slog.LevelInfo) {
		rfs.GetConfig(ctx).LogLevel = rfs.LogLevelError
	}
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "jellyfish-sim-network-"); err != nil {
			return err
		}
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	began := time.Now()
	fmt.Fprintf(out, "== starting %d provider nodes in %s (%d CPUs)\n", o.nodes, dir, runtime.NumCPU())
	startCtx, cancel := context.WithTimeout(ctx, time.Minute+time.Duration(o.nodes)*2*time.Second)
	defer cancel()
	nw, _, err := provider.StartTestnet(startCtx, filepath.Join(dir, "net"), o.nodes, provider.TestnetConfig{
		Base: localnet.Options{Logger: log}, QuotaBytes: 256 << 20,
	})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := nw.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close network: %w", cerr))
		}
	}()
	// The backend's sessions close in rclone's exit handlers; run them
	// before the network closes and its folder goes, not after.
	defer atexit.Run()
	fmt.Fprintf(out, "   up in %s, %s resident\n", time.Since(began).Round(time.Second), residentMemory())

	var boot []string
	for i := range o.nodes {
		a, err := loopbackAddr(nw.Node(i).Addrs())
		if err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
		boot = append(boot, a.String())
	}
	for _, sc := range schemes {
		t0 := time.Now()
		if err := sc.store(ctx, o, dir, boot); err != nil {
			return fmt.Errorf("scheme %d+%d: %w", sc.k, sc.m, err)
		}
		fmt.Fprintf(out, "== stored %d files of %d+%d in %s\n", len(sc.files), sc.k, sc.m, time.Since(t0).Round(time.Second))
	}
	if err := locateShards(filepath.Join(dir, "net"), o.nodes, schemes); err != nil {
		return err
	}
	for _, sc := range schemes {
		fmt.Fprintf(out, "   %d+%d: shards found per file: %s\n", sc.k, sc.m, shardCountSummary(sc))
	}

	rng := mrand.New(mrand.NewPCG(o.seed, 0x6e6574))
	for t := range o.trials {
		t0 := time.Now()
		down := rng.Perm(o.nodes)[:o.down]
		slices.Sort(down)
		for _, i := range down {
			if err := nw.Kill(i); err != nil {
				return err
			}
		}
		isDown := make(map[int]bool, len(down))
		for _, i := range down {
			isDown[i] = true
		}
		line := fmt.Sprintf("trial %d: %d nodes down;", t+1, len(down))
		for _, sc := range schemes {
			good, predicted := sc.readAll(ctx, o.readTimeout, isDown)
			line += fmt.Sprintf("  %d+%d read %d/%d (placement predicts %d)", sc.k, sc.m, good, len(sc.files), predicted)
		}
		// Start the nodes again, a few at a time: each restart bootstraps.
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(4)
		for _, i := range down {
			g.Go(func() error { return nw.Restart(gctx, i) })
		}
		if err := g.Wait(); err != nil {
			return fmt.Errorf("restart: %w", err)
		}
		fmt.Fprintf(out, "%s  (%s)\n", line, time.Since(t0).Round(time.Second))
	}

	fmt.Fprintf(out, "\n== %d nodes, %d offline per trial, %d trials, %d files per scheme; %s in all, %s resident\n",
		o.nodes, o.down, o.trials, o.files, time.Since(began).Round(time.Second), residentMemory())
	tw := tabwriter.NewWriter(out, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scheme\treads\tmeasured\tplacement predicts\tagree\texact: %d of %d down\texact: uptime %.3f\tmean read\t\n", o.down, o.nodes, 1-float64(o.down)/float64(o.nodes))
	for _, sc := range schemes {
		hyper, binom := sc.model(o.nodes, o.down)
		fmt.Fprintf(tw, "%d+%d\t%d\t%.4f\t%.4f\t%d/%d\t%.6f\t%.6f\t%s\t\n", sc.k, sc.m, sc.reads,
			float64(sc.ok)/float64(sc.reads), float64(sc.predictedOK)/float64(sc.reads), sc.agree, sc.reads,
			hyper, binom, (sc.readTime / time.Duration(max(1, sc.reads))).Round(time.Millisecond))
	}
	tw.Flush()
	for _, sc := range schemes {
		p := float64(sc.ok) / float64(sc.reads)
		hyper, _ := sc.model(o.nodes, o.down)
		// Files on the same nodes fail together: then only the trials are
		// independent samples.
		n, unit := sc.reads, "reads, as if independent"
		if sc.sameHolders() {
			n, unit = o.trials, "trials: every file is on the same nodes"
		}
		se := math.Sqrt(hyper * (1 - hyper) / float64(n))
		fmt.Fprintf(out, "%d+%d: measured %.4f vs exact %.4f: %s standard errors over %d %s\n",
			sc.k, sc.m, p, hyper, sigmas(p-hyper, se), n, unit)
	}
	return nil
}

// sameHolders reports whether every file's shards are on the same nodes.
func (sc *simScheme) sameHolders() bool {
	for _, f := range sc.files[1:] {
		if !maps.Equal(f.holders, sc.files[0].holders) {
			return false
		}
	}
	return true
}

// sigmas formats a difference in units of se.
func sigmas(diff, se float64) string {
	if se == 0 {
		if diff == 0 {
			return "0"
		}
		return "∞"
	}
	return strconv.FormatFloat(diff/se, 'f', 1, 64)
}

// store creates the scheme's account and remote and uploads its files.
func (sc *simScheme) store(ctx context.Context, o simNetworkOptions, dir string, boot []string) error {
	user := fmt.Sprintf("sim%dp%d", sc.k, sc.m)
	password := fmt.Sprintf("copper lantern orbit gravel %d", len(user)+sc.k)
	cdir, err := os.MkdirTemp(dir, "client-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cdir)
	bootAddrs, err := parseMultiaddrs(boot[:min(3, len(boot))])
	if err != nil {
		return err
	}
	c, err := client.New(ctx, client.Config{DataDir: cdir, Bootstrap: bootAddrs})
	if err != nil {
		return err
	}
	u, err := account.NormalizeUsername(user)
	if err == nil {
		_, err = account.NewManager(c.Records(), account.InsecureTestKDF()).Create(ctx, u, password)
	}
	c.Close()
	if err != nil {
		return fmt.Errorf("create account: %w", err)
	}
	cfg := configmap.Simple{
		"type":              "jellyfish",
		"username":          user,
		"password":          obscure.MustObscure(password),
		"bootstrap":         strings.Join(boot[:min(6, len(boot))], " "),
		"insecure_test_kdf": "true",
		"data_dir":          filepath.Join(dir, "device-"+user),
		"data_shards":       strconv.Itoa(sc.k),
		"parity_shards":     strconv.Itoa(sc.m),
		"success_shards":    strconv.Itoa(o.successFrom),
	}
	// The remote's other options take their registered defaults, as
	// they would from a config file without them.
	ri, err := rfs.Find("jellyfish")
	if err != nil {
		return err
	}
	for _, opt := range ri.Options {
		if _, set := cfg[opt.Name]; !set {
			cfg[opt.Name] = opt.String()
		}
	}
	f, err := jellyfish.NewFs(ctx, user, "", cfg)
	if err != nil {
		return err
	}
	sc.fs = f
	for i := range o.files {
		data := make([]byte, o.size+int64(i)<<10)
		rand.Read(data)
		name := fmt.Sprintf("file-%02d.bin", i)
		info := object.NewStaticObjectInfo(name, time.Now(), int64(len(data)), true, nil, f)
		if _, err := f.Put(ctx, bytes.NewReader(data), info); err != nil {
			return fmt.Errorf("put %s: %w", name, err)
		}
		sc.files = append(sc.files, simFile{name: name, data: data, holders: map[int]int{}})
	}
	// Store the namespace now, so nothing is pending during the trials.
	if _, err := f.(rfs.Commander).Command(ctx, "flush", nil, nil); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

// readAll reads every file of the scheme, counting successes, and the
// successes the placement predicts with the nodes in down offline.
func (sc *simScheme) readAll(ctx context.Context, timeout time.Duration, down map[int]bool) (good, predicted int) {
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(4)
	for _, file := range sc.files {
		online := 0
		for node, n := range file.holders {
			if !down[node] {
				online += n
			}
		}
		want := online >= sc.k
		g.Go(func() error {
			t0 := time.Now()
			ok := sc.readOne(ctx, timeout, file)
			mu.Lock()
			defer mu.Unlock()
			sc.readTime += time.Since(t0)
			sc.reads++
			if ok {
				good++
				sc.ok++
			}
			if want {
				predicted++
				sc.predictedOK++
			}
			if ok == want {
				sc.agree++
			}
			return nil
		})
	}
	g.Wait()
	return good, predicted
}

// readOne reads one file and reports whether it came back intact.
func (sc *simScheme) readOne(ctx context.Context, timeout time.Duration, file simFile) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	obj, err := sc.fs.NewObject(ctx, file.name)
	if err != nil {
		return false
	}
	rc, err := obj.Open(ctx)
	if err != nil {
		return false
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	return err == nil && bytes.Equal(got, file.data)
}

// model returns the exact probability of reading a file of the scheme,
// averaged over its files' real placements: with exactly down of nodes
// offline, and with each node up with probability 1-down/nodes.
func (sc *simScheme) model(nodes, down int) (hyper, binom float64) {
	for _, f := range sc.files {
		counts := make([]int, nodes)
		for node, n := range f.holders {
			counts[node] = n
		}
		h, _ := sim.RecoverGivenDown(counts, sc.k, down)
		b, _ := sim.RecoverExact(counts, sc.k, 1-float64(down)/float64(nodes))
		hyper += h
		binom += b
	}
	n := float64(len(sc.files))
	return hyper / n, binom / n
}

// locateShards reads every shard header in the nodes' stores and records,
// for each file, which node holds how many of its shards. A file's shards
// are told apart by their ciphertext length: the files have distinct sizes
// and are incompressible, so each file's ciphertext is its size plus one
// constant overhead, found as the offset that matches most files.
func locateShards(netDir string, nodes int, schemes []*simScheme) error {
	type key struct {
		k, m      uint8
		cipherLen uint32
	}
	type holder struct {
		node  int
		index uint8
	}
	found := map[key]map[holder]bool{}
	for i := range nodes {
		root := filepath.Join(netDir, fmt.Sprintf("node-%d", i))
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || len(d.Name()) != 64 {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			h, err := codec.ParseHeader(b)
			if err != nil || h.Segment != 0 {
				return nil // not a shard, or not a one-segment object
			}
			k := key{h.K, h.M, h.CipherLen}
			if found[k] == nil {
				found[k] = map[holder]bool{}
			}
			found[k][holder{i, h.Index}] = true
			return nil
		})
		if err != nil {
			return fmt.Errorf("read node %d's store: %w", i, err)
		}
	}
	for _, sc := range schemes {
		votes := map[int64]int{}
		for k := range found {
			if int(k.k) != sc.k || int(k.m) != sc.m {
				continue
			}
			for _, f := range sc.files {
				if d := int64(k.cipherLen) - int64(len(f.data)); d >= 0 && d < 1024 {
					votes[d]++
				}
			}
		}
		best, bestVotes := int64(-1), 0
		for d, v := range votes {
			if v > bestVotes || v == bestVotes && d < best {
				best, bestVotes = d, v
			}
		}
		if bestVotes < len(sc.files) {
			return fmt.Errorf("scheme %d+%d: shards of only %d of %d files found in the stores", sc.k, sc.m, bestVotes, len(sc.files))
		}
		for fi := range sc.files {
			f := &sc.files[fi]
			for h := range found[key{uint8(sc.k), uint8(sc.m), uint32(int64(len(f.data)) + best)}] {
				f.holders[h.node]++
			}
		}
	}
	return nil
}

// shardCountSummary describes how many shards were stored per file and on
// how many distinct nodes.
func shardCountSummary(sc *simScheme) string {
	shards, nodes := map[int]int{}, map[int]int{}
	for _, f := range sc.files {
		total := 0
		for _, n := range f.holders {
			total += n
		}
		shards[total]++
		nodes[len(f.holders)]++
	}
	return fmt.Sprintf("shards %v, distinct holders %v (value: number of files)", shards, nodes)
}

// residentMemory returns the process's peak resident set size, from
// /proc on Linux, or Go's own count elsewhere.
func residentMemory() string {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
				return "peak " + strings.TrimSpace(v)
			}
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return fmt.Sprintf("%d MiB from the OS", ms.Sys>>20)
}
