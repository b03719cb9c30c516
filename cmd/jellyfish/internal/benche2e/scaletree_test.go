package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPlanTreeShape(t *testing.T) {
	const n = 20000
	tree, folderOf, sizes, err := planTree("/x", n, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(tree.folders) != n/20 {
		t.Errorf("%d folders, want %d", len(tree.folders), n/20)
	}
	if d := tree.maxDepth(); d != treeMaxDepth {
		t.Errorf("deepest folder at %d, want %d", d, treeMaxDepth)
	}
	perFolder := map[string]int{}
	large := 0
	for i := range n {
		perFolder[tree.folders[folderOf[i]]]++
		switch s := sizes[i]; {
		case s >= treeLargeMin && s <= treeLargeMax:
			large++
		case s < 0 || s > treeSmallMax:
			t.Fatalf("file %d: size %d", i, s)
		}
	}
	// Entries of a folder: its files and its subfolders.
	for _, f := range tree.folders {
		if i := strings.LastIndexByte(f, '/'); i >= 0 {
			perFolder[f[:i]]++
		}
	}
	if got := perFolder[tree.wide]; got != n/10 {
		t.Errorf("wide folder holds %d entries, want %d", got, n/10)
	}
	if got := perFolder[tree.list]; got != treeListFiles {
		t.Errorf("listed folder holds %d entries, want %d", got, treeListFiles)
	}
	if got := strings.Count(tree.list, "/") + 1; got != 6 {
		t.Errorf("listed folder %s at depth %d, want 6", tree.list, got)
	}
	if share := float64(large) / n; share < 0.04 || share > 0.06 {
		t.Errorf("%.3f of the files are large, want about 0.05", share)
	}
	for _, i := range tree.ordinary {
		if f := tree.folders[i]; f == tree.wide || f == tree.list {
			t.Errorf("%s is among the ordinary folders", f)
		}
	}
	again, folderOf2, sizes2, _ := planTree("/x", n, 7)
	if !slices.Equal(again.folders, tree.folders) || !slices.Equal(folderOf, folderOf2) || !slices.Equal(sizes, sizes2) {
		t.Error("the same seed planned another tree")
	}
	other, _, _, _ := planTree("/x", n, 8)
	if slices.Equal(other.folders, tree.folders) {
		t.Error("another seed planned the same folders")
	}
}

func TestGenTreeDeterministic(t *testing.T) {
	read := func(root string) map[string]string {
		m := map[string]string{}
		filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			if !e.IsDir() {
				b, _ := os.ReadFile(p)
				rel, _ := filepath.Rel(root, p)
				m[rel] = string(b)
			}
			return nil
		})
		return m
	}
	dir := t.TempDir()
	a, err := genTree(context.Background(), filepath.Join(dir, "a"), 300, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := genTree(context.Background(), filepath.Join(dir, "b"), 300, 3); err != nil {
		t.Fatal(err)
	}
	ma, mb := read(filepath.Join(dir, "a")), read(filepath.Join(dir, "b"))
	if len(ma) != 300 {
		t.Fatalf("%d files, want 300", len(ma))
	}
	var total int64
	for k, v := range ma {
		if mb[k] != v {
			t.Fatalf("%s differs between two trees of one seed", k)
		}
		total += int64(len(v))
	}
	if total != a.bytes {
		t.Errorf("%d bytes written, planned %d", total, a.bytes)
	}
}
