// Command benchsum reads the output of the codec benchmarks (go test -bench
// with -cpu 1,2) on standard input and prints one summary line per case:
//
//	codec encode k=10 m=20 data=random cores=1: 812 MB/s parts-bound=950 MB/s ratio=0.85 aes-gcm=5100 MB/s
//
// parts-bound is 1/Σ(1/throughput) over the case's parts, each measured
// alone on the bytes it really processes and expressed per input byte.
// With -count N every figure is the median of the N runs.
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

var line = regexp.MustCompile(`^Benchmark(Codec|Parts)/(\S+?)(?:-(\d+))?\s+\d+\s+.*?([\d.]+) MB/s(.*)$`)
var frac = regexp.MustCompile(`([\d.]+) (?:payload/plain|cipher/plain)`)

type caseKey struct {
	op, k, m, data string
	cores          int
}

// result gathers every run of a case (go test -count N repeats each
// benchmark); the summary uses medians.
type result struct {
	codecRuns []float64
	partRuns  map[string][]float64
	codec     float64
	parts     map[string]float64
	shrink    float64 // ciphertext/plaintext, from the codec benchmark
	haveCodec bool
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func main() {
	results := map[caseKey]*result{}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		m := line.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		fields := map[string]string{}
		for _, kv := range strings.Split(m[2], "/") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				fields[k] = v
			}
		}
		cores := 1
		if m[3] != "" {
			cores, _ = strconv.Atoi(m[3])
		}
		mbs, _ := strconv.ParseFloat(m[4], 64)
		key := caseKey{fields["op"], fields["k"], fields["m"], fields["data"], cores}
		r := results[key]
		if r == nil {
			r = &result{parts: map[string]float64{}, partRuns: map[string][]float64{}}
			results[key] = r
		}
		if m[1] == "Codec" {
			r.codecRuns = append(r.codecRuns, mbs)
			r.codec, r.haveCodec = median(r.codecRuns), true
			if f := frac.FindStringSubmatch(m[5]); f != nil {
				r.shrink, _ = strconv.ParseFloat(f[1], 64)
			}
		} else {
			part := fields["part"]
			r.partRuns[part] = append(r.partRuns[part], mbs)
			r.parts[part] = median(r.partRuns[part])
		}
	}
	keys := make([]caseKey, 0, len(results))
	for k := range results {
		keys = append(keys, k)
	}
	order := map[string]int{"10-20": 0, "10-10": 1, "4-4": 2}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.op != b.op {
			return a.op > b.op // encode first
		}
		if oa, ob := order[a.k+"-"+a.m], order[b.k+"-"+b.m]; oa != ob {
			return oa < ob
		}
		if a.data != b.data {
			return a.data < b.data
		}
		return a.cores < b.cores
	})
	one := map[caseKey]float64{}
	for _, k := range keys {
		if k.cores == 1 {
			one[k] = results[k].codec
		}
	}
	for _, k := range keys {
		r := results[k]
		if !r.haveCodec || len(r.parts) == 0 {
			continue
		}
		var inv float64
		names := make([]string, 0, len(r.parts))
		for name, v := range r.parts {
			inv += 1 / v
			names = append(names, name)
		}
		sort.Strings(names)
		bound := 1 / inv
		fmt.Printf("codec %s k=%s m=%s data=%s cores=%d: %.0f MB/s parts-bound=%.0f MB/s ratio=%.2f aes-gcm=%.0f MB/s",
			k.op, k.k, k.m, k.data, k.cores, r.codec, bound, r.codec/bound, r.parts["aes"])
		if k.cores > 1 {
			base := k
			base.cores = 1
			if b := one[base]; b > 0 {
				fmt.Printf(" vs-1-core=%.2f", r.codec/b)
			}
		}
		if k.op == "decode" {
			enc := k
			enc.op = "encode"
			if e := results[enc]; e != nil && e.codec > 0 {
				fmt.Printf(" vs-encode=%.2f", r.codec/e.codec)
			}
		}
		if k.op == "encode" {
			if c, ok := r.parts["check"]; ok {
				fmt.Printf(" check-share=%.2f%%", 100*r.codec/c)
			}
			if k.data == "text" && r.shrink > 0 {
				fmt.Printf(" stored=%.0f%%", 100*r.shrink)
			}
			if z, ok := r.parts["compress"]; ok {
				fmt.Printf(" zstd=%.0f MB/s", z)
			}
		}
		fmt.Println()
	}
}
