// Command netbenchsum reads the output of the network benchmarks (go test
// -bench for BenchmarkShardPut, BenchmarkRawStream and
// BenchmarkProviderPut) and of dd on standard input and prints one summary
// line per case:
//
//	shard-protocol put: 180.2 MB/s raw-stream: 240.9 MB/s ratio=0.75 (tcp-noise-yamux/parallel, store on tmpfs)
//	provider put, store on disk: 79.7 MB/s tmpfs: 138.0 MB/s ratio=0.58
//	disk write (dd, O_DIRECT, 1 MiB blocks): 450 MB/s
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

var (
	benchLine = regexp.MustCompile(`^Benchmark(ShardPut|RawStream|ProviderPut)/(\S+?)(?:-\d+)?\s+\d+\s+.*?([\d.]+) MB/s`)
	ddLine    = regexp.MustCompile(`copied, [\d.]+ s, ([\d.]+) ([kMG]B)/s`)
)

func main() {
	put, raw, prov := map[string]float64{}, map[string]float64{}, map[string]float64{}
	var dd []float64
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if m := benchLine.FindStringSubmatch(text); m != nil {
			v, _ := strconv.ParseFloat(m[3], 64)
			map[string]map[string]float64{"ShardPut": put, "RawStream": raw, "ProviderPut": prov}[m[1]][m[2]] = v
			continue
		}
		if m := ddLine.FindStringSubmatch(text); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			dd = append(dd, v*map[string]float64{"kB": 1e-3, "MB": 1, "GB": 1e3}[m[2]])
		}
	}
	cases := make([]string, 0, len(put))
	for c := range put {
		cases = append(cases, c)
	}
	// Parallel first: an owner uploads a segment's shards at once.
	sort.Slice(cases, func(i, j int) bool {
		pi, pj := strings.HasSuffix(cases[i], "/parallel"), strings.HasSuffix(cases[j], "/parallel")
		if pi != pj {
			return pi
		}
		return cases[i] < cases[j]
	})
	for _, c := range cases {
		r, ok := raw[c]
		if !ok || r == 0 {
			continue
		}
		fmt.Printf("shard-protocol put: %.1f MB/s raw-stream: %.1f MB/s ratio=%.2f (%s, store on tmpfs)\n", put[c], r, put[c]/r, c)
	}
	if d, t := prov["store=disk"], prov["store=tmpfs"]; d > 0 && t > 0 {
		fmt.Printf("provider put, store on disk: %.1f MB/s tmpfs: %.1f MB/s ratio=%.2f (full nodes, 4 puts in flight)\n", d, t, d/t)
	}
	for _, v := range dd {
		fmt.Printf("disk write (dd, O_DIRECT, 1 MiB blocks): %.0f MB/s\n", v)
	}
	if len(cases) == 0 && len(prov) == 0 {
		fmt.Fprintln(os.Stderr, "netbenchsum: no benchmark lines on standard input")
		os.Exit(1)
	}
}
