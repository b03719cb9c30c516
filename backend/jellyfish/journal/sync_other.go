//go:build !linux

package journal

import "os"

// datasync makes f's bytes and size durable.
func datasync(f *os.File) error { return f.Sync() }
