// Command memcheck encodes (and optionally decodes) a large generated
// stream with the codec and reports the process's peak resident memory
// (VmHWM), to show that memory stays bounded whatever the stream's length.
//
//	go run ./codec/internal/memcheck -size 2GiB -k 10 -m 20
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
)

// prng is an endless pseudo-random stream that never holds more than the
// caller's buffer.
type prng struct {
	r    *rand.ChaCha8
	left int64
}

func (p *prng) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n, _ := p.r.Read(b)
	p.left -= int64(n)
	return n, nil
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suffix) {
			s, mult = strings.TrimSuffix(s, suffix), m
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err
}

func vmHWM() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func main() {
	sizeFlag := flag.String("size", "2GiB", "stream length")
	k := flag.Int("k", 10, "data shards")
	m := flag.Int("m", 20, "parity shards")
	seg := flag.Int("segment-size", codec.DefaultSegmentSize, "segment size")
	flag.Parse()
	size, err := parseSize(*sizeFlag)
	if err != nil {
		log.Fatal(err)
	}
	p := codec.Params{K: *k, M: *m, SegmentSize: *seg, Compression: codec.CompressZstd}
	enc, err := codec.NewEncoder(p)
	if err != nil {
		log.Fatal(err)
	}
	key, _ := codec.NewKey()
	src := &prng{r: rand.NewChaCha8([32]byte{1}), left: size}
	start := time.Now()
	var stored int64
	l, err := enc.Encode(context.Background(), src, key, func(s *codec.Segment) error {
		for i := range s.Shards {
			stored += int64(s.Shards[i].Len())
		}
		s.Release()
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	el := time.Since(start)
	fmt.Printf("encoded %d bytes (%s) k=%d m=%d segment=%d cores=%d in %.1fs (%.0f MB/s), stored %d bytes; peak RSS %s\n",
		l.Size, *sizeFlag, p.K, p.M, p.SegmentSize, runtime.GOMAXPROCS(0), el.Seconds(), float64(l.Size)/el.Seconds()/1e6, stored, vmHWM())
}
