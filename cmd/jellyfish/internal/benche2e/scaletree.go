package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
)

// Shape of the scale benchmark's tree.
const (
	treeMaxDepth   = 12     // deepest folder, the tree's root being 0
	treeListFiles  = 100    // files of the folder the cold listing reads
	treeSmallShare = 0.95   // share of files of 0–4 KiB; the rest are 8–128 KiB
	treeSmallMax   = 4096   // bytes
	treeLargeMin   = 8192   // bytes
	treeLargeMax   = 131072 // bytes
	changeFileSize = 4096   // bytes of each file a change adds
)

// scaleTree is a generated tree: n files in n/20 folders nested up to
// treeMaxDepth deep. Folder paths are relative to root, slash-separated.
type scaleTree struct {
	root  string
	seed  uint64
	files int
	bytes int64
	// folders are every folder of the tree, depths their depths.
	folders []string
	depths  []int
	// wide holds files/10 files and nothing else; list holds
	// treeListFiles files and nothing else, at depth 6.
	wide, list string
	// ordinary are the indices in folders of the folders other than wide
	// and list: the ones that take random files and changes.
	ordinary []int
}

// planTree lays out the tree of n files for seed: the same n and seed give
// the same folders, names, sizes and contents.
func planTree(root string, n int, seed uint64) (*scaleTree, []int32, []int32, error) {
	if n < 100 {
		return nil, nil, nil, fmt.Errorf("a tree needs at least 100 files, not %d", n)
	}
	rng := rand.New(rand.NewPCG(seed, 0x74726565)) // "tree"
	t := &scaleTree{root: root, seed: seed, files: n}
	nFolders := max(treeMaxDepth+2, n/20)
	// parents[d] are the folders at depth d that may take children; the
	// tree's root is "" at depth 0.
	var parents [treeMaxDepth][]string
	parents[0] = []string{""}
	add := func(parent, name string, depth int, ordinary bool) string {
		p := name
		if parent != "" {
			p = parent + "/" + name
		}
		if ordinary {
			t.ordinary = append(t.ordinary, len(t.folders))
			if depth < treeMaxDepth {
				parents[depth] = append(parents[depth], p)
			}
		}
		t.folders = append(t.folders, p)
		t.depths = append(t.depths, depth)
		return p
	}
	// One chain down to the deepest level, so every depth has a parent.
	var chain []string
	parent := ""
	for d := 1; d <= treeMaxDepth; d++ {
		parent = add(parent, fmt.Sprintf("dir-%05d", len(t.folders)), d, true)
		chain = append(chain, parent)
	}
	wideIdx, listIdx := int32(len(t.folders)), int32(len(t.folders)+1)
	t.wide = add(chain[1], "dir-wide", 3, false)
	t.list = add(chain[4], "dir-list", 6, false)
	for len(t.folders) < nFolders {
		// Depth 1 + Binomial(11, 0.35): mostly 3 to 6 deep, rarely 1 or 12.
		d := 1
		for range treeMaxDepth - 1 {
			if rng.Float64() < 0.35 {
				d++
			}
		}
		ps := parents[d-1]
		add(ps[rng.IntN(len(ps))], fmt.Sprintf("dir-%05d", len(t.folders)), d, true)
	}
	// Every file's folder (an index into folders) and size.
	folderOf := make([]int32, n)
	sizes := make([]int32, n)
	nWide, nList := n/10, min(treeListFiles, n/10)
	for i := range n {
		switch {
		case i < nWide:
			folderOf[i] = wideIdx
		case i < nWide+nList:
			folderOf[i] = listIdx
		default:
			folderOf[i] = int32(t.ordinary[rng.IntN(len(t.ordinary))])
		}
		if rng.Float64() < treeSmallShare {
			sizes[i] = int32(rng.IntN(treeSmallMax + 1))
		} else {
			sizes[i] = int32(treeLargeMin + rng.IntN(treeLargeMax-treeLargeMin+1))
		}
		t.bytes += int64(sizes[i])
	}
	return t, folderOf, sizes, nil
}

// fileName is the name of file i of a tree.
func fileName(i int) string { return fmt.Sprintf("f-%07d.bin", i) }

// contentRNG returns the random stream of one file: kind separates the
// tree's files from the changes' files.
func contentRNG(seed uint64, kind byte, i int) *rand.ChaCha8 {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[0:], seed)
	binary.LittleEndian.PutUint64(key[8:], uint64(i))
	key[16] = kind
	copy(key[17:], "jellyfish-scale")
	return rand.NewChaCha8(key)
}

// genTree writes the tree of n files for seed under root (which must not
// exist yet) with parallel writers.
func genTree(ctx context.Context, root string, n int, seed uint64) (*scaleTree, error) {
	t, folderOf, sizes, err := planTree(root, n, seed)
	if err != nil {
		return nil, err
	}
	for _, f := range t.folders {
		if err := os.MkdirAll(filepath.Join(root, filepath.FromSlash(f)), 0o755); err != nil {
			return nil, err
		}
	}
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range 4 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			buf := make([]byte, treeLargeMax)
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				b := buf[:sizes[i]]
				contentRNG(seed, 'f', i).Read(b)
				p := filepath.Join(root, filepath.FromSlash(t.folders[folderOf[i]]), fileName(i))
				if err := os.WriteFile(p, b, 0o644); err != nil {
					errOnce.Do(func() { firstErr = err })
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return t, nil
}

// writeChange writes the file of change i (changeFileSize random bytes)
// at rel under the tree and returns its path.
func (t *scaleTree) writeChange(i int, rel string) (string, error) {
	b := make([]byte, changeFileSize)
	contentRNG(t.seed, 'c', i).Read(b)
	p := filepath.Join(t.root, filepath.FromSlash(rel))
	return p, os.WriteFile(p, b, 0o644)
}

// maxDepth returns the depth of the deepest folder.
func (t *scaleTree) maxDepth() int {
	d := 0
	for _, x := range t.depths {
		d = max(d, x)
	}
	return d
}
