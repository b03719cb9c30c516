// Command benche2e measures Jellyfish end to end with real processes: a
// `jellyfish testnet` of provider nodes runs as its own process, and every
// upload, download and sync is a fresh `jellyfish` process timed from start
// to exit (so start-up and the final flush in Shutdown are included).
//
//	go run ./cmd/jellyfish/internal/benche2e -mode e2e   # large file, raw stream, RSS
//	go run ./cmd/jellyfish/internal/benche2e -mode small # 2,000 small files vs local and crypt
//	go run ./cmd/jellyfish/internal/benche2e -mode scale # one account's namespace at -files files
//
// It removes the folders it made and stops the processes it started, also
// when a step fails or it is interrupted. MB is 10^6 bytes, MiB 2^20.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jellyfish-p2p/jellyfish/cmd/jellyfish/internal/jfcmd"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
)

const (
	benchUser     = "bench"
	benchPassword = "copper violet harbor lantern quartz"
	mb            = 1e6
	mib           = 1 << 20
)

type options struct {
	bin        string
	mode       string
	nodes      int
	k, m       int
	size       int64
	dir        string
	diskDir    string
	work       string
	rawFor     time.Duration
	cpuProfile string
	files      int
	folders    int
	fileSize   int
	smallDest  string
	resyncs    int
	seed       uint64
	changes    int
	smallFiles int
	coldRuns   int
}

func main() {
	var o options
	var size string
	flag.StringVar(&o.bin, "bin", "bin/jellyfish", "the jellyfish binary")
	flag.StringVar(&o.mode, "mode", "e2e", "e2e (one large file), small (many small files) or scale (one account's namespace at -files files)")
	flag.IntVar(&o.nodes, "nodes", 10, "provider nodes of the testnet")
	flag.IntVar(&o.k, "k", 4, "data shards per segment")
	flag.IntVar(&o.m, "m", 6, "parity shards per segment")
	flag.StringVar(&size, "size", "1GiB", "e2e: size of the random file (KiB, MiB, GiB suffixes)")
	flag.StringVar(&o.dir, "dir", "/dev/shm/jf-bench", "testnet folder (node stores live here)")
	flag.StringVar(&o.diskDir, "disk-dir", "/tmp/jf-bench-disk", "e2e: testnet folder of a second run with stores on disk; empty skips it")
	flag.StringVar(&o.work, "work", "/dev/shm/jf-bench-work", "folder for the test file, configs and logs")
	flag.DurationVar(&o.rawFor, "raw", 5*time.Second, "e2e: how long to push the raw stream")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile here: e2e of the first upload process, small of the first no-op re-sync to the network")
	flag.IntVar(&o.files, "files", 2000, "small, scale: number of files")
	flag.IntVar(&o.folders, "folders", 20, "small: number of folders")
	flag.IntVar(&o.fileSize, "file-size", 4096, "small: bytes per file")
	flag.StringVar(&o.smallDest, "small-dest", "/tmp/jf-bench-small", "small: folder of the local and crypt destinations")
	flag.IntVar(&o.resyncs, "resyncs", 5, "small, scale: no-op re-syncs per destination (the median is reported)")
	flag.Uint64Var(&o.seed, "seed", 1, "scale: seed of the generated trees")
	flag.IntVar(&o.changes, "changes", 0, "scale: copyto commands after the first sync; 0 means files/1000")
	flag.IntVar(&o.smallFiles, "small-files", 1000, "scale: files of the second account's tree (the cold listing's baseline)")
	flag.IntVar(&o.coldRuns, "cold-runs", 3, "scale: cold listings per account (the median is reported)")
	flag.Parse()
	var err error
	if o.size, err = parseSize(size); err != nil {
		fatal(err)
	}
	if o.bin, err = filepath.Abs(o.bin); err != nil {
		fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch o.mode {
	case "e2e":
		err = runE2E(ctx, o)
	case "small":
		err = runSmall(ctx, o)
	case "scale":
		err = runScale(ctx, o)
	default:
		err = fmt.Errorf("-mode %q: want e2e, small or scale", o.mode)
	}
	if err != nil {
		stop()
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benche2e:", err)
	os.Exit(1)
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// cleanups runs registered teardown steps in reverse order, once.
type cleanups struct {
	mu  sync.Mutex
	fns []func()
}

func (c *cleanups) add(f func()) { c.mu.Lock(); c.fns = append(c.fns, f); c.mu.Unlock() }

func (c *cleanups) run() {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// freshDir removes dir and makes it again, and registers its removal.
func freshDir(cl *cleanups, dir string) error {
	if dir == "" || dir == "/" {
		return fmt.Errorf("refusing folder %q", dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	cl.add(func() { os.RemoveAll(dir) })
	return os.MkdirAll(dir, 0o700)
}

// testnet is a running `jellyfish testnet` process.
type testnet struct {
	dir       string
	conf      string // the testnet's rclone.conf
	bootstrap []ma.Multiaddr
	cmd       *exec.Cmd
	done      chan struct{}
	log       string
}

// startTestnet starts `jellyfish testnet` in its own process group and
// waits until it prints that it runs. The returned testnet is stopped by
// cl (or earlier by stop).
func startTestnet(ctx context.Context, cl *cleanups, o options, dir, logDir string) (*testnet, error) {
	if err := freshDir(cl, dir); err != nil {
		return nil, err
	}
	// Each node holds size*(k+m)/k/nodes of the file; leave room.
	quota := max(1024, 2*o.size*int64(o.k+o.m)/int64(o.k)/int64(o.nodes)/mib)
	t := &testnet{dir: dir, conf: filepath.Join(dir, "rclone.conf"), done: make(chan struct{}),
		log: filepath.Join(logDir, "testnet-"+filepath.Base(dir)+".log")}
	lf, err := os.Create(t.log)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	t.cmd = exec.Command(o.bin, "testnet", "--nodes", strconv.Itoa(o.nodes), "--dir", dir,
		"--account", benchUser, "--insecure-test-kdf", "--bench-raw", "--quota-mib", strconv.FormatInt(quota, 10))
	if o.mode == "scale" {
		t.cmd.Args = append(t.cmd.Args, "--bench-stats")
	}
	t.cmd.Env = append(os.Environ(), "JELLYFISH_PASSWORD="+benchPassword)
	t.cmd.Stdout, t.cmd.Stderr = lf, lf
	// Its own group, so a terminal's Ctrl-C reaches only us and we stop it
	// in order; Pdeathsig stops it if we die without cleaning up.
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := t.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { t.cmd.Wait(); close(t.done) }()
	cl.add(t.stop)
	fmt.Printf("# testnet: %d nodes in %s (pid %d, quota %d MiB each)\n", o.nodes, dir, t.cmd.Process.Pid, quota)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		b, _ := os.ReadFile(t.log)
		if bytes.Contains(b, []byte("running; press Ctrl-C")) {
			break
		}
		select {
		case <-t.done:
			return nil, fmt.Errorf("testnet exited early:\n%s", tail(t.log))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("testnet not ready after 5 minutes:\n%s", tail(t.log))
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, jfcmd.BootstrapFileName))
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Fields(string(b)) {
		a, err := ma.NewMultiaddr(line)
		if err != nil {
			return nil, err
		}
		t.bootstrap = append(t.bootstrap, a)
	}
	return t, nil
}

// stop interrupts the testnet (it closes its nodes) and kills it if it
// does not exit within 30 s.
func (t *testnet) stop() {
	select {
	case <-t.done:
		return
	default:
	}
	pg := -t.cmd.Process.Pid
	_ = syscall.Kill(pg, syscall.SIGTERM)
	select {
	case <-t.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(pg, syscall.SIGKILL)
		<-t.done
	}
}

// cpu returns the testnet process's user + system CPU time so far.
func (t *testnet) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", t.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 of the line, in USER_HZ (100 on Linux) ticks.
	_, rest, _ := bytes.Cut(b, []byte(") "))
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

// storeBytes sums the sizes of the files in the nodes' shard stores.
func (t *testnet) storeBytes() (int64, error) {
	dirs, err := filepath.Glob(filepath.Join(t.dir, "node-*", provider.ShardsDir))
	if err != nil || len(dirs) == 0 {
		return 0, fmt.Errorf("no shard stores in %s", t.dir)
	}
	var n int64
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(_ string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			info, err := e.Info()
			if err != nil {
				return err
			}
			n += info.Size()
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

// writeConfig copies the testnet's rclone.conf to path with the
// redundancy set to o.k+o.m, plus extra sections.
func (t *testnet) writeConfig(o options, path, extra string) error {
	b, err := os.ReadFile(t.conf)
	if err != nil {
		return err
	}
	var out []string
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		key, _, _ := strings.Cut(line, "=")
		switch strings.TrimSpace(key) {
		case "data_shards", "parity_shards":
			continue
		}
		out = append(out, line)
		if strings.TrimSpace(line) == "["+jfcmd.RemoteName+"]" {
			out = append(out, fmt.Sprintf("data_shards = %d", o.k), fmt.Sprintf("parity_shards = %d", o.m))
		}
	}
	return os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"+extra), 0o600)
}

// result is one finished child process.
type result struct {
	wall   time.Duration
	cpu    time.Duration // user + system
	maxRSS int64         // bytes
}

// run runs `jellyfish --config conf args...` to completion; its stderr goes
// to logFile (shown on failure).
func run(ctx context.Context, o options, conf, logFile string, stdout io.Writer, args ...string) (result, error) {
	lf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return result{}, err
	}
	defer lf.Close()
	full := append([]string{"--config", conf}, args...)
	fmt.Fprintf(lf, "$ jellyfish %s\n", strings.Join(full, " "))
	cmd := exec.CommandContext(ctx, o.bin, full...)
	cmd.Stdout, cmd.Stderr = stdout, lf
	if stdout == nil {
		cmd.Stdout = lf
	}
	// On interruption let the child stop itself; kill it 10 s later.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err = cmd.Run()
	r := result{wall: time.Since(start)}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.maxRSS = ru.Maxrss << 10 // KiB on Linux
			r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	if err != nil {
		return r, fmt.Errorf("jellyfish %s: %w\n%s", args[0], err, tail(logFile))
	}
	return r, nil
}

// tail returns the end of a log file.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// writeRandom writes size random bytes to path and returns their CRC-32C.
func writeRandom(path string, size int64) (uint32, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{'j', 'f'})
	h := crc32.New(castagnoli)
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 4<<20)
	if _, err := io.CopyN(w, rng, size); err != nil {
		return 0, err
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	return h.Sum32(), f.Close()
}

// e2eResult is one upload/download round.
type e2eResult struct {
	up, down  result
	expansion float64
	raw, raw1 float64 // MB/s: one stream; one stream to every node at once
	rawAddr   string
}

func runE2E(ctx context.Context, o options) error {
	var cl cleanups
	defer cl.run()
	if err := freshDir(&cl, o.work); err != nil {
		return err
	}
	file := filepath.Join(o.work, "big.bin")
	t0 := time.Now()
	sum, err := writeRandom(file, o.size)
	if err != nil {
		return err
	}
	fmt.Printf("# test file: %s, %d bytes of random data, written in %.1fs\n", file, o.size, time.Since(t0).Seconds())
	tmpfs, err := e2eRound(ctx, &cl, o, o.dir, file, sum, o.cpuProfile)
	if err != nil {
		return err
	}
	var disk *e2eResult
	if o.diskDir != "" {
		if disk, err = e2eRound(ctx, &cl, o, o.diskDir, file, sum, ""); err != nil {
			return err
		}
	}
	line := func(label string, r *e2eResult) {
		up := float64(o.size) / mb / r.up.wall.Seconds()
		down := float64(o.size) / mb / r.down.wall.Seconds()
		fmt.Printf("%s upload: %.1f MB/s download: %.1f MB/s redundancy=%d+%d expansion=%.2f raw-stream: %.1f MB/s upload-ratio=%.2f download-ratio=%.2f\n",
			label, up, down, o.k, o.m, r.expansion, r.raw, up*r.expansion/r.raw, down/r.raw)
	}
	fmt.Println()
	line("e2e", tmpfs)
	if disk != nil {
		line("e2e-disk (stores on "+o.diskDir+")", disk)
	}
	fmt.Printf("client peak RSS: upload %d MiB download %d MiB (size %d MiB, stores on %s)\n",
		tmpfs.up.maxRSS/mib, tmpfs.down.maxRSS/mib, o.size/mib, o.dir)
	if disk != nil {
		fmt.Printf("client peak RSS (stores on disk): upload %d MiB download %d MiB\n", disk.up.maxRSS/mib, disk.down.maxRSS/mib)
	}
	return nil
}

// e2eRound starts a testnet in dir, measures the raw stream, uploads and
// downloads file, and stops the testnet.
func e2eRound(ctx context.Context, cl *cleanups, o options, dir, file string, sum uint32, profile string) (*e2eResult, error) {
	var round cleanups
	defer round.run()
	cl.add(round.run)
	tn, err := startTestnet(ctx, &round, o, dir, o.work)
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(o.work, "rclone-"+filepath.Base(dir)+".conf")
	if err := tn.writeConfig(o, conf, ""); err != nil {
		return nil, err
	}
	logFile := filepath.Join(o.work, "client-"+filepath.Base(dir)+".log")
	r := &e2eResult{}
	if r.raw, r.raw1, r.rawAddr, err = rawStream(ctx, o, tn); err != nil {
		return nil, fmt.Errorf("raw stream: %w", err)
	}
	fmt.Printf("# raw stream over %s: %.1f MB/s; one stream to each of %d nodes at once: %.1f MB/s in total\n",
		r.rawAddr, r.raw, len(tn.bootstrap), r.raw1)
	before, err := tn.storeBytes()
	if err != nil {
		return nil, err
	}
	args := []string{"copyto", file, jfcmd.RemoteName + ":big"}
	if profile != "" {
		args = append(args, "--cpuprofile", profile)
	}
	netCPU := tn.cpu()
	if r.up, err = run(ctx, o, conf, logFile, nil, args...); err != nil {
		return nil, err
	}
	upNetCPU := tn.cpu() - netCPU
	after, err := tn.storeBytes()
	if err != nil {
		return nil, err
	}
	r.expansion = float64(after-before) / float64(o.size)
	fmt.Printf("# upload: %.1fs, peak RSS %d MiB, CPU %.1fs client + %.1fs testnet; stores grew by %d bytes: expansion %.3f measured, %.3f = (k+m)/k\n",
		r.up.wall.Seconds(), r.up.maxRSS/mib, r.up.cpu.Seconds(), upNetCPU.Seconds(), after-before, r.expansion, float64(o.k+o.m)/float64(o.k))
	h := crc32.New(castagnoli)
	cw := &countWriter{h: h}
	netCPU = tn.cpu()
	if r.down, err = run(ctx, o, conf, logFile, cw, "cat", jfcmd.RemoteName+":big"); err != nil {
		return nil, err
	}
	downNetCPU := tn.cpu() - netCPU
	if cw.n != o.size || h.Sum32() != sum {
		return nil, fmt.Errorf("download: got %d bytes with CRC-32C %08x, want %d bytes %08x", cw.n, h.Sum32(), o.size, sum)
	}
	fmt.Printf("# download: %.1fs, peak RSS %d MiB, CPU %.1fs client + %.1fs testnet, %d bytes, CRC-32C matches\n",
		r.down.wall.Seconds(), r.down.maxRSS/mib, r.down.cpu.Seconds(), downNetCPU.Seconds(), cw.n)
	return r, nil
}

// countWriter hashes and counts what the download writes.
type countWriter struct {
	h hash.Hash32
	n int64
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return w.h.Write(p)
}

// rawStream pushes bytes for o.rawFor from a client node (the backend's own
// host construction, client.New) over one stream to node 0's sink, then
// over one stream to every node at once. It returns both rates in MB/s and
// the address used.
func rawStream(ctx context.Context, o options, tn *testnet) (one, all float64, addr string, err error) {
	cdir, err := os.MkdirTemp(o.work, "rawclient-")
	if err != nil {
		return 0, 0, "", err
	}
	defer os.RemoveAll(cdir)
	c, err := client.New(ctx, client.Config{DataDir: cdir, Bootstrap: tn.bootstrap})
	if err != nil {
		return 0, 0, "", err
	}
	defer c.Close()
	h := c.Node().Host()
	var peers []peer.ID
	for _, a := range tn.bootstrap {
		info, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			return 0, 0, "", err
		}
		if err := h.Connect(ctx, *info); err != nil {
			return 0, 0, "", err
		}
		peers = append(peers, info.ID)
	}
	if conns := h.Network().ConnsToPeer(peers[0]); len(conns) > 0 {
		addr = conns[0].RemoteMultiaddr().String() + " (" + string(conns[0].ConnState().Security) + ", " + string(conns[0].ConnState().StreamMultiplexer) + ")"
	}
	buf := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{'r', 'a', 'w'}).Read(buf)
	push := func(p peer.ID) (int64, time.Duration, error) {
		return pushRaw(ctx, h, p, buf, o.rawFor)
	}
	n, d, err := push(peers[0])
	if err != nil {
		return 0, 0, "", err
	}
	one = float64(n) / mb / d.Seconds()

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int64
		errs  []error
	)
	start := time.Now()
	for _, p := range peers {
		wg.Go(func() {
			n, _, err := push(p)
			mu.Lock()
			defer mu.Unlock()
			total += n
			errs = append(errs, err)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, 0, "", err
	}
	all = float64(total) / mb / time.Since(start).Seconds()
	return one, all, addr, nil
}

// pushRaw writes buf repeatedly to p's sink for at least dur, closes its
// side and waits for the sink's count. The time runs until the count
// arrives, so bytes in flight are not counted as sent.
func pushRaw(ctx context.Context, h host.Host, p peer.ID, buf []byte, dur time.Duration) (int64, time.Duration, error) {
	s, err := h.NewStream(ctx, p, jfcmd.BenchRawProtocol)
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(dur + time.Minute))
	start := time.Now()
	var n int64
	for time.Since(start) < dur {
		m, err := s.Write(buf)
		n += int64(m)
		if err != nil {
			s.Reset()
			return 0, 0, err
		}
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return 0, 0, err
	}
	var ack [8]byte
	if _, err := io.ReadFull(s, ack[:]); err != nil {
		s.Reset()
		return 0, 0, err
	}
	d := time.Since(start)
	if got := int64(binary.BigEndian.Uint64(ack[:])); got != n {
		return 0, 0, fmt.Errorf("sink counted %d bytes, sent %d", got, n)
	}
	return n, d, nil
}
