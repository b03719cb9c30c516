package jfcmd

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/jellyfish-p2p/jellyfish/codec"
)

func init() {
	var (
		dir      string
		k, m     int
		segSize  int
		compress string
	)
	c := &cobra.Command{
		Use:   "codec-demo [FILE]",
		Short: "Encode a file to shards in a folder, lose some, and decode it back",
		Long: `codec-demo runs Jellyfish's storage pipeline on one machine, without a network:
the file is split into segments, compressed, encrypted and erasure-coded into
k+m shards per segment, written to DIR/shards. Then m shards of every segment
are deleted and the file is rebuilt from the rest and compared byte for byte.
Without FILE, a sample of this binary's own bytes is used.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			comp, err := codec.ParseCompression(compress)
			if err != nil {
				return err
			}
			p := codec.Params{K: k, M: m, SegmentSize: segSize, Compression: comp}
			var data []byte
			if len(args) == 1 {
				data, err = os.ReadFile(args[0])
			} else {
				data, err = sampleData()
			}
			if err != nil {
				return err
			}
			return codecDemo(cmd.Context(), cmd.OutOrStdout(), dir, p, data)
		},
	}
	c.Flags().StringVar(&dir, "dir", "jellyfish-demo", "folder for the shards")
	c.Flags().IntVar(&k, "k", 4, "data shards per segment")
	c.Flags().IntVar(&m, "m", 4, "parity shards per segment")
	c.Flags().IntVar(&segSize, "segment-size", 1<<20, "plaintext bytes per segment")
	c.Flags().StringVar(&compress, "compression", "zstd", "none, zstd or gzip")
	commands = append(commands, c)
}

// sampleData returns up to 8 MiB of the running binary: real, partly
// compressible bytes that every machine has.
func sampleData() ([]byte, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(exe)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 8<<20))
}

func codecDemo(ctx context.Context, out io.Writer, dir string, p codec.Params, data []byte) error {
	if ctx == nil {
		ctx = context.Background()
	}
	shardDir := filepath.Join(dir, "shards")
	if err := os.RemoveAll(shardDir); err != nil {
		return err
	}
	if err := os.MkdirAll(shardDir, 0o755); err != nil {
		return err
	}
	enc, err := codec.NewEncoder(p)
	if err != nil {
		return err
	}
	key, err := codec.NewKey()
	if err != nil {
		return err
	}
	shardPath := func(seg, i int) string { return filepath.Join(shardDir, fmt.Sprintf("%06d-%03d.shard", seg, i)) }
	var stored int64
	l, err := enc.Encode(ctx, bytes.NewReader(data), key, func(s *codec.Segment) error {
		defer s.Release()
		for i := range s.Shards {
			b := s.Shards[i].Bytes()
			stored += int64(len(b))
			if err := os.WriteFile(shardPath(int(s.Index), i), b, 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "encoded %d bytes into %d segments × %d shards in %s (stored %d bytes, %.2f× the input)\n",
		l.Size, len(l.Segments), p.Total(), shardDir, stored, float64(stored)/float64(max(1, l.Size)))

	// Lose m shards of every segment, chosen at random.
	lost := 0
	for seg := range l.Segments {
		perm, err := randPerm(p.Total())
		if err != nil {
			return err
		}
		for _, i := range perm[:p.M] {
			if err := os.Remove(shardPath(seg, i)); err != nil {
				return err
			}
			lost++
		}
	}
	fmt.Fprintf(out, "deleted %d shards (%d of every segment)\n", lost, p.M)

	dec, err := codec.NewDecoder(l, key)
	if err != nil {
		return err
	}
	fetch := codec.FetcherFunc(func(ctx context.Context, seg int, info codec.SegmentInfo) ([][]byte, error) {
		var shards [][]byte
		for i := range info.IDs {
			b, err := os.ReadFile(shardPath(seg, i))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, err
			}
			shards = append(shards, b)
		}
		return shards, nil
	})
	r, err := dec.NewReader(ctx, fetch, 0, -1)
	if err != nil {
		return err
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("decoded %d bytes that differ from the %d bytes encoded", len(got), len(data))
	}
	fmt.Fprintf(out, "decoded %d bytes from the remaining shards: identical to the input\n", len(got))
	return nil
}

func randPerm(n int) ([]int, error) {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			return nil, err
		}
		p[i], p[j.Int64()] = p[j.Int64()], p[i]
	}
	return p, nil
}
