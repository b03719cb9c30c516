package compat

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	alicePassword = "orbit lantern gravel mosaic"
	bobPassword   = "tidal copper meadow lantern"
)

// tree is a folder's files by slash path.
type tree map[string][]byte

// write writes t under dir, replacing what dir held.
func (tr tree) write(t *testing.T, dir string) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	for name, data := range tr {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// randomBytes returns n bytes of the random stream of seed.
func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 0x6a656c6c79))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// text returns about n bytes of compressible text of seed.
func text(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	words := strings.Fields("jellyfish keeps files on the disks of peers encrypted compressed and erasure coded")
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		b.WriteByte(" \n"[rng.IntN(2)])
	}
	return []byte(b.String())
}

// The account's trees: a (written by the previous version, then synced
// over by the current one), b (current), d (current, on the previous
// version's device), c (previous, after the current one wrote). Between them: files stored inline in the log (up to 128
// bytes), packed (up to 1 MiB), objects of their own over several 1 MiB
// segments, and an empty file.
func treeA() tree {
	return tree{
		"tiny.txt":         []byte("written by the previous version\n"),
		"notes/march.txt":  text(1, 200<<10),
		"photos/beach.raw": randomBytes(2, 2<<20+12345),
		"empty.txt":        nil,
	}
}

func treeA2() tree {
	a := treeA()
	delete(a, "tiny.txt")
	a["notes/march.txt"] = text(3, 150<<10)
	a["photos/forest.raw"] = randomBytes(4, 1<<20+777)
	return a
}

func treeB() tree {
	return tree{
		"small.txt":    []byte("written by the current version\n"),
		"report.txt":   text(5, 300<<10),
		"archive.bin":  randomBytes(6, 3<<20+1),
		"deep/x/y.txt": text(7, 5000),
	}
}

func treeC() tree {
	return tree{
		"after.txt":  text(8, 40<<10),
		"camera.raw": randomBytes(9, 1<<20+4096),
	}
}

func treeD() tree {
	return tree{
		"upgraded.txt": text(10, 70<<10),
		"video.raw":    randomBytes(11, 1<<20+99),
	}
}

// under returns tr's files with prefix/ before each path.
func (tr tree) under(prefix string) tree {
	out := tree{}
	for name, data := range tr {
		out[prefix+"/"+name] = data
	}
	return out
}

// merge returns the union of trees.
func merge(trees ...tree) tree {
	out := tree{}
	for _, tr := range trees {
		for name, data := range tr {
			out[name] = data
		}
	}
	return out
}
