package journal

import (
	"os"
	"syscall"
)

// datasync makes f's bytes and size durable. fdatasync skips the
// metadata a reader does not need (times), which halves the cost of an
// append's sync on ext4.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
