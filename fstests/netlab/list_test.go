package netlab_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/fstests/netlab"
)

// TestBenchWANList is the cold listing of `make bench-wan` on its own,
// quicker to repeat: twelve public providers, a home host whose link
// has an 80 ms round trip and 0.5 % loss each way, an account with a
// tree of LIST_FILES (300) files of 4 KiB (timed as wan small is), then
// LIST_RUNS cold `lsf` runs of a folder three deep, each a fresh process
// and data folder, with each opening step in round trips. It runs only
// with JELLYFISH_BENCH_WAN set.
func TestBenchWANList(t *testing.T) {
	if os.Getenv("JELLYFISH_BENCH_WAN") == "" {
		t.Skip("a benchmark: make bench-wan")
	}
	runs := envInt(t, "LIST_RUNS", 3)
	provs, far := farLab(t)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	nodes, boot := startProviders(t, ctx, provs, "--tier", "2")
	remote := newRemote(t, ctx, far, "lister", boot, 6, 2)
	files := envInt(t, "LIST_FILES", 300)
	wanSmall(t, far, remote, nodes, smallTree(t, files), files, 10*time.Minute)
	jf(t, ctx, far, remote, "mkdir", "jellyfish:small/a/b/c", "--jellyfish-data-dir", t.TempDir())
	for range runs {
		start := time.Now()
		_, lsfLog := jf(t, ctx, far, remote, "lsf", "jellyfish:small/a/b/c", "--jellyfish-data-dir", t.TempDir(), "-vv")
		listed := time.Since(start)
		fmt.Printf("wan list: seconds=%.2f rtts=%.0f (bound 1 s + 30 round trips = %.1f s; in round trips: %s)\n",
			listed.Seconds(), listed.Seconds()/wanRTT.Seconds(), (time.Second + 30*wanRTT).Seconds(), listPhases(lsfLog, listed))
		if os.Getenv("LIST_LOG") != "" {
			fmt.Println(lsfLog)
		}
	}
}

// listPhases says, from a command's -vv log, how many round trips each
// step of opening the session took, and the rest of total.
func listPhases(log string, total time.Duration) string {
	var phases []string
	var in time.Duration
	for _, m := range phaseRE.FindAllStringSubmatch(log, -1) {
		if d, err := time.ParseDuration(m[2]); err == nil {
			phases = append(phases, fmt.Sprintf("%s=%.1f", m[1], d.Seconds()/wanRTT.Seconds()))
			in += d
		}
	}
	return strings.Join(append(phases, fmt.Sprintf("rest=%.1f", (total-in).Seconds()/wanRTT.Seconds())), " ")
}

// TestBenchWANRTT is the `wan rtt` line of `make bench-wan` on its own,
// quicker to repeat: twelve public providers, the far home host (80 ms
// round trip, 0.5 % loss each way, 20 Mbit/s up, 100 down), iperf3 over
// that path, then RTT_SIZE (64 MiB) uploaded from it and downloaded back to
// it by a new device. It runs only with JELLYFISH_BENCH_WAN set.
func TestBenchWANRTT(t *testing.T) {
	if os.Getenv("JELLYFISH_BENCH_WAN") == "" {
		t.Skip("a benchmark: make bench-wan")
	}
	size := envSize(t, "RTT_SIZE", 64<<20)
	provs, far := farLab(t)
	farUp, farDown := iperfPath(t, far, provs[0])
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	nodes, boot := startProviders(t, ctx, provs, "--tier", "2")
	remote := newRemote(t, ctx, far, "rtt", boot, 6, 2)
	src := randomFile(t, size)
	r := storeFile(t, far, remote, nodes, src, "jellyfish:far", transferTime(float64(size)*8/6, wanHomeUp/4))
	limit := min(wanHomeUp, farUp)
	fmt.Printf("wan rtt: goodput=%.1f Mbit/s limit=%.1f Mbit/s ratio=%.2f rtt=%v loss=%g%% (%d segments stored short)\n",
		mbit(r.rate()), mbit(limit), r.rate()/limit, wanRTT, wanLoss, r.short)
	for _, l := range r.problems {
		t.Logf("rtt upload log: %s", l)
	}
	keepLog(t, "RTT_LOG", r.log)

	// The download back to the same host, by a device with nothing
	// cached: the limit is its downlink and what one TCP flow carries
	// over the path (the providers' own links are not shaped).
	took, problems := fetchFile(t, far, remote, src, "jellyfish:far", size)
	got := float64(size) * 8 / took.Seconds()
	dlimit := min(float64(wanHomeDown), farDown)
	fmt.Printf("wan rtt download: goodput=%.1f Mbit/s limit=%.1f Mbit/s ratio=%.2f rtt=%v loss=%g%% (limit min(downlink, one TCP flow from a provider))\n",
		mbit(got), mbit(dlimit), got/dlimit, wanRTT, wanLoss)
	for _, l := range problems {
		t.Logf("rtt download log: %s", l)
	}
}

// farLab makes the lab of TestBenchWANList and TestBenchWANRTT: twelve
// public providers and the far home host, shaped like `make bench-wan`'s.
func farLab(t *testing.T) (provs []*netlab.Host, far *netlab.Host) {
	t.Helper()
	lab := netlab.New(t)
	for i := range 12 {
		provs = append(provs, lab.Public(fmt.Sprintf("p%d", i+1)))
	}
	far = lab.Home("far", netlab.PortRestricted)
	far.Shape(netlab.Link{Up: wanHomeUp, Down: wanHomeDown, RTT: wanRTT, Loss: wanLoss})
	return provs, far
}
