package netlab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/nodestatus"
)

// NodePort is the TCP and UDP port lab nodes listen on, and StatusAddr
// where they serve their status page (on the host's own loopback).
const (
	NodePort   = 4001
	StatusAddr = "127.0.0.1:7781"
)

// Build builds the jellyfish binary into dir and returns its path.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "jellyfish")
	cmd := exec.Command("go", "build", "-tags", "noselfupdate", "-o", bin, "github.com/jellyfish-p2p/jellyfish/cmd/jellyfish")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build jellyfish: %v\n%s", err, out)
	}
	return bin, nil
}

// Node is a `jellyfish node` process on a lab host.
type Node struct {
	Host *Host
	// ID is the node's peer ID.
	ID string
	// Dir is its data folder.
	Dir string

	cmd  *exec.Cmd
	out  *SyncBuffer
	done chan error
}

// SyncBuffer is a bytes.Buffer a process may write to while the test
// reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// StartNode runs bin's `jellyfish node` on h, listening on NodePort over
// TCP and QUIC, with its status page on StatusAddr, admitting every
// account up to its space (--admit-all: the lab's nodes are all the
// tester's own), and extra args after those. It waits for the status page
// and reads the node's ID from it.
func (h *Host) StartNode(t testing.TB, bin string, args ...string) *Node {
	t.Helper()
	n := &Node{Host: h, Dir: t.TempDir(), out: &SyncBuffer{}, done: make(chan error, 1)}
	all := append([]string{"node", "--data-dir", n.Dir,
		"--listen", fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", NodePort),
		"--listen", fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", NodePort),
		"--status-addr", StatusAddr, "--log-level", "debug", "--admit-all"}, args...)
	n.cmd = h.Command(bin, all...)
	n.cmd.Env = append(os.Environ(), "HOME="+n.Dir)
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.done <- n.cmd.Wait() }()
	t.Cleanup(func() {
		n.Kill()
		if t.Failed() {
			t.Logf("log of the node on %s:\n%s", h.Name, n.out)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		s, err := n.Status(ctx)
		if err == nil {
			n.ID = s.Node.ID
			return n
		}
		select {
		case err := <-n.done:
			n.done <- err
			t.Fatalf("the node on %s exited: %v\n%s", h.Name, err, n.out)
		case <-ctx.Done():
			t.Fatalf("the node on %s serves no status page: %v\n%s", h.Name, err, n.out)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Addr is the multiaddr other nodes bootstrap from: the host's public
// address (its router's, behind a NAT), NodePort over TCP, and the ID.
func (n *Node) Addr() string {
	return fmt.Sprintf("/ip4/%s/tcp/%d/p2p/%s", n.Host.PublicIP, NodePort, n.ID)
}

// Status reads the node's /status.json.
func (n *Node) Status(ctx context.Context) (*nodestatus.Snapshot, error) {
	body, err := n.Host.Get(ctx, StatusAddr, "/status.json")
	if err != nil {
		return nil, err
	}
	var s nodestatus.Snapshot
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, fmt.Errorf("status of %s: %w", n.Host.Name, err)
	}
	return &s, nil
}

// Log is what the node wrote so far.
func (n *Node) Log() string { return n.out.String() }

// Kill ends the process at once (SIGKILL), as a crash or power cut does.
func (n *Node) Kill() {
	if n.cmd.Process == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	err := <-n.done
	n.done <- err
}
