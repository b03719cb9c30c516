package shardstore

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// syncFS flushes the file system holding the store (syncfs(2): every
// dirty file and directory of it, and its journal) and reports whether it
// could. A kernel or sandbox without syncfs reports false, and the caller
// syncs file by file.
func (d *Disk) syncFS() (bool, error) {
	f, err := d.root.Open(".")
	if err != nil {
		return true, err
	}
	defer f.Close()
	d.syncs.Add(1)
	err = unix.Syncfs(int(f.Fd()))
	if errors.Is(err, unix.ENOSYS) {
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("syncfs: %w", err)
	}
	return true, nil
}
