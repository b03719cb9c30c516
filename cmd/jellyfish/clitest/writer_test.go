package clitest

import (
	"io"
	"sync"
)

// lockedWriter makes a buffer safe to write from exec's copier goroutine
// while the test reads it after the process exited.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
