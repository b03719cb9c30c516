package compat

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/rclone/rclone/fs/config/obscure"
)

// node is a `jellyfish node` process on 127.0.0.1.
type node struct {
	name string
	bin  string
	dir  string // data dir, kept across restarts
	port int    // TCP port, kept across restarts
	addr string // full multiaddr with /p2p/
	// flags are given to every start of the node, after the others.
	flags []string
	cmd   *exec.Cmd
	out   *syncBuffer
	log   *logLines
	// exited is closed when the process has exited, with its Wait error
	// in err.
	exited chan struct{}
	err    error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// nodeFlags are the flags a binary's `jellyfish node` gets besides data
// dir, listen address and bootstrap peers: the current one serves no
// status page (it would take the default port of others), is a DHT server
// from the start and asks no router for a port.
func nodeFlags(bin string) []string {
	if bin == binaries.cur {
		return []string{"--status-addr=", "--dht-mode", "server", "--port-mapping=false"}
	}
	return nil
}

// logLines are the JSON lines a node logged, for waiting on one.
type logLines struct {
	mu      sync.Mutex
	lines   []map[string]any
	changed chan struct{} // closed and replaced when a line comes
}

func newLogLines() *logLines { return &logLines{changed: make(chan struct{})} }

func (l *logLines) add(m map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, m)
	close(l.changed)
	l.changed = make(chan struct{})
}

// waitLog returns the first line n logged whose msg is msg, waiting up to
// a minute for it; it fails t if n exits or logs none.
func (n *node) waitLog(t *testing.T, msg string) map[string]any {
	t.Helper()
	deadline := time.After(time.Minute)
	for i := 0; ; {
		n.log.mu.Lock()
		lines, changed := n.log.lines, n.log.changed
		n.log.mu.Unlock()
		for ; i < len(lines); i++ {
			if lines[i]["msg"] == msg {
				return lines[i]
			}
		}
		select {
		case <-changed:
		case <-n.exited:
			t.Fatalf("%s (%s) exited before it logged %q: %v\n%s", n.name, filepath.Base(n.bin), msg, n.err, n.out.String())
		case <-deadline:
			t.Fatalf("%s (%s) logged no %q within a minute\n%s", n.name, filepath.Base(n.bin), msg, n.out.String())
		}
	}
}

// start runs bin's `jellyfish node` on n's data dir and port (0: any, the
// first time), bootstrapping from the addresses in boot, with extra flags
// after the others, and waits for its startup line.
func (n *node) start(t *testing.T, bin string, boot []string, extra ...string) {
	t.Helper()
	if n.cmd != nil {
		t.Fatalf("%s is running", n.name)
	}
	n.bin = bin
	args := []string{"node", "--data-dir", n.dir, "--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", n.port),
		"--log-format", "json", "--tier", "0"}
	for _, b := range boot {
		args = append(args, "--bootstrap", b)
	}
	args = append(append(append(args, nodeFlags(bin)...), n.flags...), extra...)
	n.cmd = exec.Command(bin, args...)
	n.cmd.Env = append(os.Environ(), "HOME="+n.dir)
	n.out = &syncBuffer{}
	n.log = newLogLines()
	pr, pw := io.Pipe()
	n.cmd.Stdout, n.cmd.Stderr = n.out, io.MultiWriter(n.out, pw)
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, exited := n.cmd, make(chan struct{})
	n.exited = exited
	go func() {
		n.err = cmd.Wait()
		pw.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})
	go func(log *logLines) {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				log.add(m)
			}
		}
		io.Copy(io.Discard, pr)
	}(n.log)
	n.addr = loopbackTCP(t, n.waitLog(t, "jellyfish node running"))
	a, err := ma.NewMultiaddr(n.addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.ValueForProtocol(ma.P_TCP)
	if err != nil {
		t.Fatal(err)
	}
	if n.port, err = strconv.Atoi(p); err != nil {
		t.Fatal(err)
	}
}

// loopbackTCP picks the 127.0.0.1 TCP address of a startup line.
func loopbackTCP(t *testing.T, m map[string]any) string {
	t.Helper()
	addrs, _ := m["addrs"].([]any)
	for _, a := range addrs {
		if s, _ := a.(string); strings.HasPrefix(s, "/ip4/127.0.0.1/tcp/") {
			return s
		}
	}
	t.Fatalf("startup line without a loopback TCP address: %v", m)
	return ""
}

// stop ends the node with SIGTERM; it must exit 0 within a minute.
func (n *node) stop(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.exited:
		if n.err != nil {
			t.Fatalf("%s (%s) after SIGTERM: %v\n%s", n.name, filepath.Base(n.bin), n.err, n.out.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("%s (%s) still running a minute after SIGTERM\n%s", n.name, filepath.Base(n.bin), n.out.String())
	}
	n.cmd = nil
}

// result is how a command ended.
type result struct {
	out    string // stdout and stderr
	stdout string
	code   int
}

// run runs bin with args to completion, within two minutes.
func run(t *testing.T, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	// out takes both streams, from two goroutines of exec.
	out := &syncBuffer{}
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.MultiWriter(out, &stdout), out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: no end within 2 minutes\n%s", filepath.Base(bin), strings.Join(args, " "), out.String())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return result{out: out.String(), stdout: stdout.String()}
	case errors.As(err, &ee):
		return result{out: out.String(), stdout: stdout.String(), code: ee.ExitCode()}
	}
	t.Fatalf("%s %s: %v", filepath.Base(bin), strings.Join(args, " "), err)
	return result{}
}

// remote is one account's rclone config as a device uses it.
type remote struct {
	conf string
}

// writeRemote writes an rclone config with a [jellyfish] remote for user
// on the nodes boot, its device slots in dataDir. Three data and three
// parity shards of every object, all six stored before an upload
// succeeds: on six providers each holds one shard of every segment, and
// any three of them can serve everything.
func writeRemote(t *testing.T, user, password, dataDir string, boot []string) remote {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "[jellyfish]\ntype = jellyfish\nusername = %s\npassword = %s\nbootstrap = %s\n",
		user, obscure.MustObscure(password), strings.Join(boot, " "))
	b.WriteString("data_shards = 3\nparity_shards = 3\nsuccess_shards = 6\n")
	b.WriteString("meta_data_shards = 3\nmeta_parity_shards = 3\n")
	b.WriteString("segment_size = 1Mi\n")
	fmt.Fprintf(&b, "data_dir = %s\n", dataDir)
	conf := filepath.Join(t.TempDir(), "rclone.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return remote{conf: conf}
}

// rclone runs an rclone command of bin on r's config. --retries 1: a
// failure shows as it is, never retried into success.
func (r remote) rclone(t *testing.T, bin string, args ...string) result {
	t.Helper()
	return run(t, bin, append([]string{"--config", r.conf, "--retries", "1"}, args...)...)
}

// mustRclone is rclone that must exit 0.
func (r remote) mustRclone(t *testing.T, bin string, args ...string) string {
	t.Helper()
	res := r.rclone(t, bin, args...)
	if res.code != 0 {
		t.Fatalf("%s %s: exit %d\n%s", filepath.Base(bin), strings.Join(args, " "), res.code, res.out)
	}
	return res.out
}
