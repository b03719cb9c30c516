// Package mount_test mounts a Jellyfish account with a real FUSE mount —
// the jellyfish binary's `mount` command in a child process — works on
// files through the kernel, and checks every change from two other
// devices: a fresh backend session in this process and new jellyfish
// processes (lsl, lsf, cat).
//
// Changes made through the mount reach other devices only after the mount
// process uploads them (the VFS writes cache uploads a few seconds after a
// file is closed) and flushes its namespace log (a second after the last
// change), and a new session loads the namespace once, when it starts; so
// every check polls new processes or new sessions until a deadline.
package mount_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/config/obscure"
	"github.com/rclone/rclone/fs/walk"

	_ "github.com/jellyfish-p2p/jellyfish/backend/jellyfish"
	"github.com/jellyfish-p2p/jellyfish/fstests/jftest"
)

// bin is the jellyfish binary built by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "jellyfish-mounttest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "jellyfish")
	build := exec.Command("go", "build", "-tags", "noselfupdate", "-o", bin, "github.com/jellyfish-p2p/jellyfish/cmd/jellyfish")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build jellyfish:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireFUSE skips the test, with the reason, if this machine cannot
// mount FUSE file systems, after trying to load the module. It returns the
// fusermount program to unmount with.
func requireFUSE(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); errors.Is(err, os.ErrNotExist) {
		out, merr := exec.Command("modprobe", "fuse").CombinedOutput()
		if _, err := os.Stat("/dev/fuse"); err != nil {
			t.Skipf("FUSE unavailable: /dev/fuse does not exist and `modprobe fuse` did not create it (%v: %s)", merr, bytes.TrimSpace(out))
		}
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("FUSE unavailable: cannot open /dev/fuse: %v", err)
	}
	f.Close()
	// rclone's mount (bazil.org/fuse) runs fusermount3 to mount.
	prog, err := exec.LookPath("fusermount3")
	if err != nil {
		t.Skip("FUSE unavailable: fusermount3 is not installed (apt-get install fuse3; .ci/run does)")
	}
	return prog
}

// mounted reports whether dir is a mount point of this mount namespace.
func mounted(t *testing.T, dir string) bool {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Field 5 is the mount point, with spaces and the like octal-escaped.
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fields[4] == dir {
			return true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return false
}

// lockedBuffer collects a child's output from its copying goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// env is the environment of every jellyfish child: its own HOME, so no
// user configuration or cache is touched.
func env(home string) []string {
	return append(os.Environ(), "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, ".cache"))
}

// mountProc is a running `jellyfish mount`.
type mountProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // valid after done is closed
	log  *lockedBuffer
}

// startMount runs `jellyfish --config conf mount jf: mnt --vfs-cache-mode
// writes` and waits until the mount is live. The mount is unmounted and
// the process ended when the test ends, whatever happened.
func startMount(t *testing.T, fusermount, conf, mnt, home string) *mountProc {
	t.Helper()
	p := &mountProc{done: make(chan struct{}), log: &lockedBuffer{}}
	p.cmd = exec.Command(bin, "--config", conf, "mount", "jf:", mnt,
		"--vfs-cache-mode", "writes", "--cache-dir", filepath.Join(home, "vfs-cache"), "-v")
	p.cmd.Env = env(home)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	// If this test process dies the mount process must not outlive it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if mounted(t, mnt) {
			if out, err := exec.Command(fusermount, "-u", mnt).CombinedOutput(); err != nil {
				t.Logf("cleanup: %s -u: %v: %s; unmounting lazily", fusermount, err, out)
				_ = exec.Command(fusermount, "-uz", mnt).Run()
			}
		}
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Logf("cleanup: mount process ignored SIGTERM; killing it")
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("mount process output:\n%s", p.log.String())
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for !mounted(t, mnt) {
		select {
		case <-p.done:
			t.Fatalf("jellyfish mount exited before mounting: %v\n%s", p.err, p.log.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not mounted after 2 minutes\n%s", mnt, p.log.String())
		}
	}
	return p
}

// cli runs a jellyfish command to completion and returns its stdout.
func cli(t *testing.T, home string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env(home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("jellyfish %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

// state is what a device sees: file sizes by path and directories.
type state struct {
	files map[string]int64
	dirs  []string
}

func (s state) String() string {
	var b strings.Builder
	names := make([]string, 0, len(s.files))
	for n := range s.files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&b, "%s (%d) ", n, s.files[n])
	}
	fmt.Fprintf(&b, "dirs %v", s.dirs)
	return b.String()
}

func (s state) equal(o state) bool {
	if len(s.files) != len(o.files) || !slices.Equal(s.dirs, o.dirs) {
		return false
	}
	for k, v := range s.files {
		if w, ok := o.files[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// cliState lists the account with `jellyfish lsl` and `lsf -R
// --dirs-only` in new processes.
func cliState(t *testing.T, home, conf string) (state, error) {
	st := state{files: map[string]int64{}}
	out, err := cli(t, home, "--config", conf, "lsl", "jf:")
	if err != nil {
		return st, err
	}
	// "   1536000 2024-05-06 07:08:09.000000000 docs/hello.txt"
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		size, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return st, fmt.Errorf("lsl line %q: %v", line, err)
		}
		st.files[strings.Join(f[3:], " ")] = size
	}
	out, err = cli(t, home, "--config", conf, "lsf", "-R", "--dirs-only", "jf:")
	if err != nil {
		return st, err
	}
	for _, d := range strings.Fields(string(out)) {
		st.dirs = append(st.dirs, strings.TrimSuffix(d, "/"))
	}
	slices.Sort(st.dirs)
	return st, nil
}

// freshFs opens the account as a new device of this process: a session
// keyed by its own data dir, so it loads the namespace from the network
// now rather than reusing one loaded earlier.
func freshFs(t *testing.T, acct *jftest.Account, bootstrap string) fs.Fs {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A connection-string remote is not in rclone's Fs cache, and its
	// own data dir gives it its own session.
	remote := fmt.Sprintf(":jellyfish,username=%s,password='%s',bootstrap='%s',insecure_test_kdf=true,data_shards=4,parity_shards=4,segment_size=1M,data_dir='%s':",
		acct.User, obscure.MustObscure(acct.Password), bootstrap, t.TempDir())
	f, err := fs.NewFs(ctx, remote)
	if err != nil {
		t.Fatalf("open the account in-process: %v", err)
	}
	return f
}

// fsState lists f recursively.
func fsState(t *testing.T, f fs.Fs) state {
	t.Helper()
	st := state{files: map[string]int64{}}
	objs, dirs, err := walk.GetAll(context.Background(), f, "", true, -1)
	if err != nil {
		t.Fatalf("list in-process: %v", err)
	}
	for _, o := range objs {
		st.files[o.Remote()] = o.Size()
	}
	for _, d := range dirs {
		st.dirs = append(st.dirs, d.Remote())
	}
	slices.Sort(st.dirs)
	return st
}

func readObject(t *testing.T, f fs.Fs, remote string) []byte {
	t.Helper()
	ctx := context.Background()
	o, err := f.NewObject(ctx, remote)
	if err != nil {
		t.Fatalf("in-process %s: %v", remote, err)
	}
	r, err := o.Open(ctx)
	if err != nil {
		t.Fatalf("in-process open %s: %v", remote, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("in-process read %s: %v", remote, err)
	}
	return b
}

// waitVisible polls new jellyfish processes until they list want, then
// checks the contents of want's files with `jellyfish cat` and with a
// fresh in-process session (polled too, until its listing matches).
func waitVisible(t *testing.T, acct *jftest.Account, bootstrap, home, conf string, want state, contents map[string][]byte) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var got state
	var err error
	for {
		got, err = cliState(t, home, conf)
		if err == nil && got.equal(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new processes do not see the mount's changes after 90 s:\n got %v (err %v)\nwant %v", got, err, want)
		}
	}
	for name, data := range contents {
		out, err := cli(t, home, "--config", conf, "cat", "jf:"+name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, data) {
			t.Errorf("jellyfish cat %s: %d bytes differing from the %d written through the mount", name, len(out), len(data))
		}
	}
	for {
		f := freshFs(t, acct, bootstrap)
		got = fsState(t, f)
		if got.equal(want) {
			for name, data := range contents {
				if b := readObject(t, f, name); !bytes.Equal(b, data) {
					t.Errorf("in-process %s: %d bytes differing from the %d written through the mount", name, len(b), len(data))
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("an in-process session does not see what new processes see:\n got %v\nwant %v", got, want)
		}
	}
}

// pattern returns n bytes that differ from segment to segment.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i/7919) ^ byte(i) ^ seed
	}
	return b
}

// allNodes returns the multiaddresses of every live node of the network,
// as a bootstrap option.
func allNodes(t *testing.T, net *jftest.Network) string {
	t.Helper()
	var out []string
	for _, i := range net.Net.Live() {
		for _, a := range net.Net.Node(i).Addrs() {
			if strings.Contains(a.String(), "/tcp/") {
				out = append(out, a.String())
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no TCP address on any node")
	}
	return strings.Join(out, " ")
}

// TestMount mounts an account with `jellyfish mount --vfs-cache-mode
// writes` on an 8-node network (4+4 redundancy, 1 MiB segments), writes,
// reads, appends, renames and deletes files and makes and removes
// directories through the kernel, checks each change from other devices,
// then unmounts with fusermount3 and requires the mount process to exit.
//
// Every process bootstraps from all eight nodes;
// TestMountThreeBootstrapPeers repeats it with three.
func TestMount(t *testing.T) {
	fusermount := requireFUSE(t)
	net := jftest.StartNetwork(t, 8)
	testMount(t, fusermount, net, allNodes(t, net))
}

// TestMountThreeBootstrapPeers is TestMount with the bootstrap list users
// get from jftest.Network.Bootstrap: three nodes. New processes then reach
// most holders through the DHT only; this failed ("open stream: connection
// failed") while each process reused its device slot's node identity.
func TestMountThreeBootstrapPeers(t *testing.T) {
	fusermount := requireFUSE(t)
	net := jftest.StartNetwork(t, 8)
	testMount(t, fusermount, net, net.Bootstrap())
}

func testMount(t *testing.T, fusermount string, net *jftest.Network, bootstrap string) {
	acct := net.CreateAccount(t, "mounttest")
	home := t.TempDir()
	conf := filepath.Join(home, "rclone.conf")
	// One data dir for every process: each takes its own device slot.
	section := acct.RemoteConfig(t, map[string]string{
		"data_shards": "4", "parity_shards": "4", "segment_size": "1M", "cleanup_grace": "0s",
		"bootstrap": bootstrap,
	})
	if err := os.WriteFile(conf, []byte("[jf]\n"+section), 0o600); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	p := startMount(t, fusermount, conf, mnt, home)
	at := func(name string) string { return filepath.Join(mnt, filepath.FromSlash(name)) }

	// Phase 1: make directories and write files.
	hello := pattern(1536*1024, 1) // two segments
	gone := []byte("this file will be deleted\n")
	if err := os.MkdirAll(at("docs/deep"), 0o755); err != nil {
		t.Fatalf("mkdir through the mount: %v", err)
	}
	if err := os.Mkdir(at("emptydir"), 0o755); err != nil {
		t.Fatalf("mkdir through the mount: %v", err)
	}
	if err := os.WriteFile(at("docs/hello.bin"), hello, 0o644); err != nil {
		t.Fatalf("write through the mount: %v", err)
	}
	if err := os.WriteFile(at("docs/deep/gone.txt"), gone, 0o644); err != nil {
		t.Fatalf("write through the mount: %v", err)
	}
	if b, err := os.ReadFile(at("docs/hello.bin")); err != nil || !bytes.Equal(b, hello) {
		t.Fatalf("read back through the mount: %d bytes, %v; want the %d written", len(b), err, len(hello))
	}
	entries, err := os.ReadDir(at("docs"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"deep", "hello.bin"}) {
		t.Errorf("ls docs through the mount: %v", names)
	}
	waitVisible(t, acct, bootstrap, home, conf, state{
		files: map[string]int64{"docs/hello.bin": int64(len(hello)), "docs/deep/gone.txt": int64(len(gone))},
		dirs:  []string{"docs", "docs/deep", "emptydir"},
	}, map[string][]byte{"docs/hello.bin": hello, "docs/deep/gone.txt": gone})

	// Phase 2: append, rename, delete, remove a directory.
	tail := pattern(700*1024, 2)
	f, err := os.OpenFile(at("docs/hello.bin"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("open for append through the mount: %v", err)
	}
	if _, err := f.Write(tail); err != nil {
		t.Fatalf("append through the mount: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close after append through the mount: %v", err)
	}
	appended := append(slices.Clone(hello), tail...)
	if b, err := os.ReadFile(at("docs/hello.bin")); err != nil || !bytes.Equal(b, appended) {
		t.Fatalf("read after append through the mount: %d bytes, %v; want %d", len(b), err, len(appended))
	}
	if err := os.Rename(at("docs/hello.bin"), at("docs/renamed.bin")); err != nil {
		t.Fatalf("rename through the mount: %v", err)
	}
	if err := os.Remove(at("docs/deep/gone.txt")); err != nil {
		t.Fatalf("delete through the mount: %v", err)
	}
	if err := os.Remove(at("emptydir")); err != nil {
		t.Fatalf("rmdir through the mount: %v", err)
	}
	if _, err := os.Stat(at("docs/hello.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("docs/hello.bin after the rename: %v, want not found", err)
	}
	if b, err := os.ReadFile(at("docs/renamed.bin")); err != nil || !bytes.Equal(b, appended) {
		t.Fatalf("read renamed file through the mount: %d bytes, %v; want %d", len(b), err, len(appended))
	}
	waitVisible(t, acct, bootstrap, home, conf, state{
		files: map[string]int64{"docs/renamed.bin": int64(len(appended))},
		dirs:  []string{"docs", "docs/deep"},
	}, map[string][]byte{"docs/renamed.bin": appended})

	// Unmount as a user would; the mount process must then exit by itself.
	if out, err := exec.Command(fusermount, "-u", mnt).CombinedOutput(); err != nil {
		t.Fatalf("%s -u: %v: %s", fusermount, err, out)
	}
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("jellyfish mount exited with %v after the unmount", p.err)
		}
	case <-time.After(time.Minute):
		// SIGQUIT makes the Go runtime print every goroutine's stack and
		// exit: the log then shows what the process was waiting for.
		_ = p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
		t.Fatalf("jellyfish mount still running a minute after the unmount (its goroutines are in the output below)")
	}
	if mounted(t, mnt) {
		t.Errorf("%s still mounted after the unmount", mnt)
	}
}
