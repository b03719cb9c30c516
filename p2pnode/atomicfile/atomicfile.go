// Package atomicfile replaces small files so that a crash or an error
// leaves either the old contents or the new ones, never a mix, and so that
// the new contents are on disk once Write returns.
//
// It imports nothing of Jellyfish: the backend, the commands and the
// network layer all use it.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// Write replaces path with data. See WriteFunc.
func Write(path string, data []byte, perm fs.FileMode) error {
	return WriteFunc(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFunc replaces path with what fill writes: it creates a temporary
// file next to path (O_EXCL, mode perm before the umask), lets fill write
// it, syncs it, renames it over path and syncs the folder. If anything
// before the rename fails, including fill, the temporary file is removed
// and path keeps its old contents (or stays absent). An error syncing the
// folder after the rename is returned too; path then already holds the
// new contents, but a crash may still undo that.
func WriteFunc(path string, perm fs.FileMode, fill func(io.Writer) error) (err error) {
	const op = "atomicfile"
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, tmp, err := createTemp(dir, base, perm)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			err = errors.Join(fmt.Errorf("%s: %s: %w", op, path, err), removeIfExists(tmp))
		}
	}()
	if err := fill(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("%s: %s renamed, folder not synced: %w", op, path, err)
	}
	return nil
}

// createTemp creates ".<base>.tmp-<random>" in dir with O_EXCL.
func createTemp(dir, base string, perm fs.FileMode) (*os.File, string, error) {
	var rnd [8]byte
	for range 10 {
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, "", err
		}
		name := filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(rnd[:]))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, name, err
	}
	return nil, "", fmt.Errorf("no free temporary name for %s in %s", base, dir)
}

func removeIfExists(name string) error {
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// syncDir makes a rename in dir durable. Windows cannot sync a folder,
// and its renames need no such step.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
