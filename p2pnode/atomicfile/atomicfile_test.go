package atomicfile_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/atomicfile"
)

// entries lists dir's names, to show no temporary file is left.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteCreatesAndReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	if err := atomicfile.Write(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Write(p, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "two" {
		t.Fatalf("read %q, %v", b, err)
	}
	if runtime.GOOS != "windows" {
		fi, _ := os.Stat(p)
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v", fi.Mode().Perm())
		}
	}
	if n := entries(t, dir); len(n) != 1 {
		t.Fatalf("folder holds %v", n)
	}
}

func TestWriteRelativePath(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := atomicfile.Write("rel", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile("rel"); err != nil || string(b) != "x" {
		t.Fatalf("read %q, %v", b, err)
	}
}

// TestFailedFillKeepsOld: a writer that fails half way leaves the old
// contents and no temporary file.
func TestFailedFillKeepsOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := atomicfile.Write(p, []byte("old contents"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := atomicfile.WriteFunc(p, 0o600, func(w io.Writer) error {
		if _, err := w.Write([]byte("new, half")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want boom", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old contents" {
		t.Fatalf("after failure: %q", b)
	}
	if n := entries(t, dir); len(n) != 1 || n[0] != "f" {
		t.Fatalf("folder holds %v", n)
	}
}

// TestFailedRenameKeepsOld: when the rename fails (here the target is a
// non-empty folder) the target is untouched and the temporary file gone.
func TestFailedRenameKeepsOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "target")
	if err := os.MkdirAll(filepath.Join(p, "inside"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Write(p, []byte("x"), 0o600); err == nil {
		t.Fatal("replacing a non-empty folder succeeded")
	}
	if fi, err := os.Stat(filepath.Join(p, "inside")); err != nil || !fi.IsDir() {
		t.Fatalf("target changed: %v", err)
	}
	if n := entries(t, dir); len(n) != 1 || n[0] != "target" {
		t.Fatalf("folder holds %v", n)
	}
}

// TestMissingFolder fails without creating anything.
func TestMissingFolder(t *testing.T) {
	p := filepath.Join(t.TempDir(), "no", "f")
	if err := atomicfile.Write(p, []byte("x"), 0o600); err == nil {
		t.Fatal("write into a missing folder succeeded")
	}
	if _, err := os.Stat(filepath.Dir(p)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("folder: %v", err)
	}
}
