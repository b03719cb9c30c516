package netlab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// inNamespace runs f on a thread moved into network namespace ns: a
// socket or device belongs to the namespace of the thread that made it.
// The thread stays locked and is discarded when f returns (Go ends a
// goroutine's locked thread) rather than moved back.
func inNamespace(ns string, f func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		nsf, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			ch <- err
			return
		}
		defer nsf.Close()
		if err := unix.Setns(int(nsf.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ch <- f()
	}()
	return <-ch
}

// Dial opens a TCP connection from inside the host's namespace.
func (h *Host) Dial(ctx context.Context, addr string) (c net.Conn, err error) {
	err = inNamespace(h.NS, func() error {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}

// Listen opens a TCP listener inside the host's namespace; accepting
// works from anywhere.
func (h *Host) Listen(addr string) (l net.Listener, err error) {
	err = inNamespace(h.NS, func() error {
		l, err = net.Listen("tcp", addr)
		return err
	})
	return l, err
}

// Get fetches http://addr/path from inside the host's namespace.
func (h *Host) Get(ctx context.Context, addr, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := h.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return nil, err
	}
	req.Close = true
	if err := req.Write(c); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s%s from %s: %s", addr, path, h.Name, resp.Status)
	}
	return body, nil
}
