package netlab_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/fstests/netlab"
	"github.com/rclone/rclone/fs"
)

// The shape of the WAN benchmark's network: a home host uploading over
// wanHomeUp and downloading over wanHomeDown, wanHomeRTT away from the
// internet with wanLoss each way; providers in data centres at
// wanDCRate both ways, and at homes whose routers forward the node's port
// with the uplinks of wanFwdUps (and five times as much down).
const (
	wanHomeUp, wanHomeDown = 20_000_000, 100_000_000
	wanSlowUp, wanSlowDown = 5_000_000, 50_000_000
	wanDCs                 = 6
	wanDCRate              = 1_000_000_000
	wanHomeRTT             = 40 * time.Millisecond
	wanRTT                 = 80 * time.Millisecond
	wanLoss                = 0.5
)

var wanFwdUps = []int64{20_000_000, 25_000_000, 30_000_000, 35_000_000, 40_000_000, 50_000_000}

// TestBenchWAN is `make bench-wan`: transfers over shaped links between
// separate hosts, each figure against what the links allow. It runs only
// with JELLYFISH_BENCH_WAN set, and prints one line per case:
//
//   - wan path: iperf3 from the home host (40 ms round trip, 0.5 % loss
//     each way) to a data-centre provider and back, the TCP rate the
//     shaped path carries each way.
//   - wan upload: a WAN_SIZE file copied from the home host. Goodput is the
//     shard bytes the providers stored during the copy (all k + m of every
//     segment, metadata included) over the copy's wall time; the limit is
//     min(home uplink, iperf3 up), which those bytes share.
//   - wan download: the same file copied back to the home host by another
//     device. Goodput is file bytes over wall time; the limit is
//     min(home downlink, iperf3 down, the sum of the holders' uplinks): k
//     shards of a segment carry its bytes, so in file bytes a download can
//     go no faster than the downlink or all holders sending at once.
//   - wan slow: a WAN_SLOW_SIZE upload from a 5 Mbit/s uplink, its time and
//     the error, retry and deadline lines in its log.
//   - wan far path: iperf3 (one TCP flow) from a home host whose link has
//     an 80 ms round trip and 0.5 % loss each way (netem, or the lab's own
//     wire where the kernel has no netem).
//   - wan rtt: the upload again from that host; the limit is min(uplink,
//     that one flow), and the line gives the ratio to the uplink too.
//   - wan small: 2,000 files of 4 KiB copied from that host; the bound is
//     40 round trips plus twice the stored bytes over the uplink.
//   - wan list: a cold `lsf` of a folder three deep from that host, a new
//     process and data folder, in seconds and round trips.
//
// WAN_K and WAN_M set the shards per segment (6 + 2, as TestSlowUplink).
func TestBenchWAN(t *testing.T) {
	if os.Getenv("JELLYFISH_BENCH_WAN") == "" {
		t.Skip("a benchmark of a quarter of an hour and more: make bench-wan")
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Skip("wan: iperf3 is not installed (apt-get install iperf3); it measures what each path carries")
	}
	size := envSize(t, "WAN_SIZE", 256<<20)
	slowSize := envSize(t, "WAN_SLOW_SIZE", 256<<20)
	k, m := envInt(t, "WAN_K", 6), envInt(t, "WAN_M", 2)

	lab := netlab.New(t)
	uplink := map[*netlab.Host]int64{}
	var provs []*netlab.Host
	for i := range wanDCs {
		h := lab.Public(fmt.Sprintf("dc%d", i+1))
		h.Shape(netlab.Link{Up: wanDCRate, Down: wanDCRate})
		uplink[h] = wanDCRate
		provs = append(provs, h)
	}
	for i, up := range wanFwdUps {
		h := lab.Home(fmt.Sprintf("fwd%d", i+1), netlab.PortRestricted)
		h.Forward(netlab.NodePort)
		h.Shape(netlab.Link{Up: up, Down: 5 * up})
		uplink[h] = up
		provs = append(provs, h)
	}
	home := lab.Home("home", netlab.PortRestricted)
	home.Shape(netlab.Link{Up: wanHomeUp, Down: wanHomeDown, RTT: wanHomeRTT, Loss: wanLoss})
	slow := lab.Home("slow", netlab.PortRestricted)
	slow.Shape(netlab.Link{Up: wanSlowUp, Down: wanSlowDown})
	far := lab.Home("far", netlab.PortRestricted)
	netem := far.Shape(netlab.Link{Up: wanHomeUp, Down: wanHomeDown, RTT: wanRTT, Loss: wanLoss})

	pathUp, pathDown := iperfPath(t, home, provs[0])
	fmt.Printf("wan path: up=%.1f Mbit/s down=%.1f Mbit/s\n", mbit(pathUp), mbit(pathDown))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	nodes, boot := startProviders(t, ctx, provs, "--tier", "2")
	remote := newRemote(t, ctx, home, "wan", boot, k, m)
	cancel()
	fmt.Printf("wan setup: k=%d m=%d providers=%d (%d data-centre at %d Mbit/s, %d home at %d-%d Mbit/s up) home=%d/%d Mbit/s rtt=%v loss=%g%% size=%s\n",
		k, m, len(nodes), wanDCs, wanDCRate/1_000_000, len(wanFwdUps), wanFwdUps[0]/1_000_000, wanFwdUps[len(wanFwdUps)-1]/1_000_000,
		wanHomeUp/1_000_000, wanHomeDown/1_000_000, wanHomeRTT, wanLoss, fs.SizeSuffix(size).String()+"B")

	// Upload.
	src := randomFile(t, size)
	expanded := float64(size) * float64(k+m) / float64(k)
	up := storeFile(t, home, remote, nodes, src, "jellyfish:wan", transferTime(expanded, wanHomeUp))
	limit := min(wanHomeUp, pathUp)
	fmt.Printf("wan upload: goodput=%.1f Mbit/s limit=%.1f Mbit/s ratio=%.2f\n", mbit(up.rate()), mbit(limit), up.rate()/limit)
	t.Logf("upload: %d bytes in %v; providers stored %d bytes (%.3f × the file; k+m/k is %.3f); %d segments stored short of %d shards, %d shards missing; log problems: %d",
		size, up.took.Round(100*time.Millisecond), up.stored, float64(up.stored)/float64(size), float64(k+m)/float64(k),
		up.short, k+m, up.missing, len(up.problems))
	var holdersUp int64
	for _, n := range nodes {
		b := up.perNode[n]
		t.Logf("  %s (uplink %d Mbit/s) stored %.1f MiB", n.Host.Name, uplink[n.Host]/1_000_000, float64(b)/(1<<20))
		if b > 0 {
			holdersUp += uplink[n.Host]
		}
	}
	for _, l := range up.problems {
		t.Logf("upload log: %s", l)
	}

	// Download, by a device that has nothing cached.
	took, problems := fetchFile(t, home, remote, src, "jellyfish:wan", size)
	got := float64(size) * 8 / took.Seconds()
	limit = min(wanHomeDown, pathDown, float64(holdersUp))
	fmt.Printf("wan download: goodput=%.1f Mbit/s limit=%.1f Mbit/s ratio=%.2f\n", mbit(got), mbit(limit), got/limit)
	t.Logf("download: %d bytes in %v, identical; holders' uplinks add up to %d Mbit/s; log problems: %d",
		size, took.Round(100*time.Millisecond), holdersUp/1_000_000, len(problems))
	for _, l := range problems {
		t.Logf("download log: %s", l)
	}

	// A slow uplink, from another device of the account.
	slowSrc := randomFile(t, slowSize)
	s := storeFile(t, slow, remote, nodes, slowSrc, "jellyfish:slow",
		transferTime(float64(slowSize)*float64(k+m)/float64(k), wanSlowUp))
	fmt.Printf("wan slow: seconds=%.0f size=%s uplink=%dMbit/s errors=%d\n",
		s.took.Seconds(), fs.SizeSuffix(slowSize).String()+"B", wanSlowUp/1_000_000, len(s.problems))
	t.Logf("slow: providers stored %d bytes at %.1f Mbit/s; %d segments stored short of %d shards, %d shards missing",
		s.stored, mbit(s.rate()), s.short, k+m, s.missing)
	for _, l := range s.problems {
		t.Errorf("slow upload log: %s", l)
	}

	// Round trips and loss: netem's, or the lab's own wire where the
	// kernel has no netem.
	if !netem {
		fmt.Println("wan rtt: skipped (no delay or loss on this machine)")
		return
	}
	farUp, farDown := iperfPath(t, far, provs[0])
	fmt.Printf("wan far path: up=%.1f Mbit/s down=%.1f Mbit/s (one TCP flow, rtt=%v loss=%g%% each way)\n", mbit(farUp), mbit(farDown), wanRTT, wanLoss)
	r := storeFile(t, far, remote, nodes, src, "jellyfish:far", transferTime(expanded, wanHomeUp/4))
	fmt.Printf("wan rtt: goodput=%.1f Mbit/s limit=%.1f Mbit/s ratio=%.2f rtt=%v loss=%g%% (limit min(uplink, one TCP flow): %.1f Mbit/s is the uplink alone, ratio %.2f)\n",
		mbit(r.rate()), mbit(min(wanHomeUp, farUp)), r.rate()/min(wanHomeUp, farUp), wanRTT, wanLoss, mbit(wanHomeUp), r.rate()/wanHomeUp)
	t.Logf("rtt: %d segments stored short, log problems: %d", r.short, len(r.problems))
	for _, l := range r.problems {
		t.Logf("rtt upload log: %s", l)
	}

	// 2,000 files of 4 KiB over the same link: the round trips must be
	// shared by many files, not paid per file.
	wanSmall(t, far, remote, nodes, smallTree(t, wanSmallFiles), wanSmallFiles, 30*time.Minute)

	// A cold listing of a folder three deep: a fresh process and data
	// folder, from start to exit.
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Minute)
	jf(t, ctx, far, remote, "mkdir", "jellyfish:small/a/b/c", "--jellyfish-data-dir", t.TempDir())
	start := time.Now()
	_, lsfLog := jf(t, ctx, far, remote, "lsf", "jellyfish:small/a/b/c", "--jellyfish-data-dir", t.TempDir(), "-vv")
	listed := time.Since(start)
	cancel()
	// The session logs how long each step of opening it took; the rest is
	// the process starting and the listing itself.
	fmt.Printf("wan list: seconds=%.2f rtts=%.0f (bound 1 s + 30 round trips = %.1f s; in round trips: %s)\n",
		listed.Seconds(), listed.Seconds()/wanRTT.Seconds(), (time.Second + 30*wanRTT).Seconds(), listPhases(lsfLog, listed))
}

// smallTree writes n random files of 4 KiB, a hundred per folder, and
// returns the tree's root.
func smallTree(t *testing.T, n int) string {
	t.Helper()
	root := t.TempDir()
	for i := range n {
		d := filepath.Join(root, fmt.Sprintf("d%02d", i/100))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 4096)
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%04d", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// wanSmall copies the n files of src to jellyfish:small from h and prints
// the wan small line: the copy's time against 40 round trips plus twice
// the stored bytes over the uplink.
func wanSmall(t *testing.T, h *netlab.Host, remote []string, nodes []*netlab.Node, src string, n int, timeout time.Duration) {
	t.Helper()
	sm := storeFile(t, h, remote, nodes, src, "jellyfish:small", timeout)
	bound := 40*wanRTT + time.Duration(2*float64(sm.stored)*8/wanHomeUp*float64(time.Second))
	fmt.Printf("wan small: seconds=%.1f bound=%.1f ratio=%.2f (files=%d stored=%.1f MiB)\n",
		sm.took.Seconds(), bound.Seconds(), sm.took.Seconds()/bound.Seconds(), n, float64(sm.stored)/(1<<20))
	keepLog(t, "SMALL_LOG", sm.log)
}

// keepLog writes log to the file the environment variable env names, if
// it names one.
func keepLog(t *testing.T, env, log string) {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		if err := os.WriteFile(p, []byte(log), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// fetchFile copies folder from (holding big.bin, uploaded from src) to a
// new folder on h with a device that has nothing cached, checks the file
// is the one uploaded, and returns how long the copy took and the error,
// retry and deadline lines of its log.
func fetchFile(t *testing.T, h *netlab.Host, remote []string, src, from string, size int64) (time.Duration, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), transferTime(float64(size), wanHomeDown/4))
	defer cancel()
	dst := t.TempDir()
	start := time.Now()
	_, stderr := jf(t, ctx, h, remote, "copy", from, dst, "--jellyfish-data-dir", t.TempDir(), "-v", "--stats", "0")
	took := time.Since(start)
	if a, b := fileHash(t, filepath.Join(src, "big.bin")), fileHash(t, filepath.Join(dst, "big.bin")); a != b {
		t.Fatalf("the file downloaded differs from the one uploaded")
	}
	return took, logProblems(stderr)
}

// phaseRE finds the session's debug lines that time its opening steps.
var phaseRE = regexp.MustCompile(`jellyfish: session phase (\w+): (\S+)`)

// wanSmallFiles is the count of 4 KiB files of the small-files case.
const wanSmallFiles = 2000

// stored is what one upload put on the providers.
type stored struct {
	took     time.Duration
	stored   int64                  // shard bytes the providers gained
	perNode  map[*netlab.Node]int64 // the same per provider
	problems []string               // error, retry and deadline lines of the log, debug lines aside
	// short are the segments stored with fewer than k + m shards (their
	// stragglers cancelled), missing the shards they lack.
	short, missing int
	log            string // the command's -vv log
}

// rate is the upload's goodput in bit/s: shard bytes stored over wall time.
func (s stored) rate() float64 { return float64(s.stored) * 8 / s.took.Seconds() }

// storeFile copies folder src to dest from h, given timeout, and measures
// the space the providers' stores gained meanwhile.
func storeFile(t *testing.T, h *netlab.Host, remote []string, nodes []*netlab.Node, src, dest string, timeout time.Duration) stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	before := usedBytes(t, ctx, nodes)
	start := time.Now()
	_, stderr := jf(t, ctx, h, remote, "copy", src, dest, "--jellyfish-data-dir", t.TempDir(), "-vv", "--stats", "0")
	s := stored{took: time.Since(start), perNode: map[*netlab.Node]int64{}, log: stderr}
	var info []string
	for _, l := range strings.Split(stderr, "\n") {
		var seg, n int
		if i := strings.Index(l, "jellyfish: segment "); i >= 0 && strings.HasSuffix(l, "short of full redundancy: queued for repair") {
			if _, err := fmt.Sscanf(l[i:], "jellyfish: segment %d stored %d shards", &seg, &n); err == nil {
				s.short++
				s.missing += n
			}
		}
		if !strings.Contains(l, " DEBUG ") {
			info = append(info, l)
		}
	}
	s.problems = logProblems(strings.Join(info, "\n"))
	for n, b := range usedBytes(t, ctx, nodes) {
		s.perNode[n] = b - before[n]
		s.stored += b - before[n]
	}
	return s
}

func usedBytes(t *testing.T, ctx context.Context, nodes []*netlab.Node) map[*netlab.Node]int64 {
	t.Helper()
	used := map[*netlab.Node]int64{}
	for _, n := range nodes {
		s, err := n.Status(ctx)
		if err != nil {
			t.Fatalf("status of %s: %v", n.Host.Name, err)
		}
		used[n] = s.Storage.UsedBytes
	}
	return used
}

// transferTime is how long a transfer of size bytes at rate bit/s may
// take: three times the time at the rate, and five minutes more.
func transferTime(size float64, rate int64) time.Duration {
	return 3*time.Duration(size*8/float64(rate)*float64(time.Second)) + 5*time.Minute
}

// iperfPath measures with iperf3 the TCP rate from client to server and
// back, 10 s each way, in bit/s, with BBR on iperf3's sockets: the
// control Jellyfish's nodes set on theirs (the lab's hosts default to
// CUBIC, which at 0.5 % loss would measure the control, not the path).
func iperfPath(t *testing.T, client, server *netlab.Host) (up, down float64) {
	t.Helper()
	srv := server.Command("iperf3", "-s")
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		srv.Process.Kill()
		srv.Wait()
	}()
	measure := func(args ...string) float64 {
		var (
			out []byte
			err error
		)
		// The first tries may come before the server listens (iperf3 -J
		// may then exit 0 with the error in its report).
		for try := 0; try < 20; try++ {
			out, err = client.Command("iperf3", append([]string{"-c", server.PublicIP, "-t", "10", "-J", "-C", "bbr"}, args...)...).Output()
			var e struct {
				Error string `json:"error"`
			}
			if err == nil && json.Unmarshal(out, &e) == nil && e.Error == "" {
				break
			}
			if err == nil {
				err = fmt.Errorf("iperf3: %s", e.Error)
			}
			time.Sleep(250 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("iperf3 from %s to %s: %v\n%s\nserver: %s", client.Name, server.Name, err, out, srvOut.String())
		}
		var r struct {
			End struct {
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		if err := json.Unmarshal(out, &r); err != nil || r.End.SumReceived.BitsPerSecond == 0 {
			t.Fatalf("iperf3's report: %v\n%s", err, out)
		}
		return r.End.SumReceived.BitsPerSecond
	}
	return measure(), measure("-R")
}

// randomFile writes a file of size random bytes, big.bin, into a new
// folder and returns the folder.
func randomFile(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func fileHash(t *testing.T, path string) [sha256.Size]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return [sha256.Size]byte(h.Sum(nil))
}

func mbit(bps float64) float64 { return bps / 1e6 }

// envSize reads a size such as 256MiB from the environment variable name,
// def if it is unset.
func envSize(t *testing.T, name string, def int64) int64 {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var s fs.SizeSuffix
	if err := s.Set(v); err != nil || s <= 0 {
		t.Fatalf("%s=%q: not a size (%v)", name, v, err)
	}
	return int64(s)
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: not a positive number", name, v)
	}
	return n
}
