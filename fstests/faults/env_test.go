package faults_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/config/configmap"
	"github.com/zeebo/blake3"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish"
	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/fstests/jftest"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
)

// binary is the jellyfish command built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "jellyfish-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "jellyfish")
	build := exec.Command("go", "build", "-tags", "noselfupdate", "-o", binary, "github.com/jellyfish-p2p/jellyfish/cmd/jellyfish")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "faults: build the jellyfish binary: %v\n", err)
		return 1
	}
	return m.Run()
}

// remoteName is the name of the remote every test's config defines.
const remoteName = "jellyfish"

// env is one test's network, account and rclone config file.
type env struct {
	t    *testing.T
	net  *jftest.Network
	acct *jftest.Account
	conf string            // rclone config file
	opts map[string]string // the remote's options, as written to conf

	// dataDirs are the data dirs children rotate over; see start.
	dataDirs []string
	next     int
}

// childDataDirs is how many data dirs (devices of the account, at most
// 32) the children of a test rotate over. Since processes leave the network
// at exit with an identity of their own, one would do; rotating also makes
// the children several devices, which the tests are glad to cover.
const childDataDirs = 6

// baseOptions are the remote options of every test: 4+4 redundancy, so on
// 8 nodes each shard of a segment lands on a distinct node.
func baseOptions(extra map[string]string) map[string]string {
	opts := map[string]string{"data_shards": "4", "parity_shards": "4", "cleanup_grace": "0s"}
	for k, v := range extra {
		opts[k] = v
	}
	return opts
}

// newEnv starts an n-node network with the default quotas, creates an
// account and writes a config file for it.
func newEnv(t *testing.T, n int, extra map[string]string) *env {
	t.Helper()
	return newEnvOn(t, jftest.StartNetwork(t, n), extra)
}

// newEnvOn creates an account on net and writes a config file for it.
func newEnvOn(t *testing.T, net *jftest.Network, extra map[string]string) *env {
	t.Helper()
	acct := net.CreateAccount(t, "faults")
	e := &env{t: t, net: net, acct: acct, opts: baseOptions(extra)}
	e.conf = writeConfig(t, acct, e.opts)
	return e
}

// writeConfig writes an rclone config file with one remote for acct and
// returns its path.
func writeConfig(t *testing.T, acct *jftest.Account, opts map[string]string) string {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "rclone.conf")
	body := "[" + remoteName + "]\n" + acct.RemoteConfig(t, opts)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return conf
}

// newFs opens the account's remote in this process, with the same options
// (and data dir) as the config file. The session is flushed when the test
// ends, before the network closes.
func (e *env) newFs(ctx context.Context) fs.Fs {
	e.t.Helper()
	m := configmap.Simple{}
	for _, line := range strings.Split(e.acct.RemoteConfig(e.t, e.opts), "\n") {
		k, v, ok := strings.Cut(line, " = ")
		if ok {
			m[k] = v
		}
	}
	// RemoteConfig picks a fresh data dir each call: keep the config
	// file's, so this process and the children share the slot directory.
	m["data_dir"] = configValue(e.t, e.conf, "data_dir")
	f, err := jellyfish.NewFs(ctx, remoteName, "", withDefaults(m))
	if err != nil {
		e.t.Fatalf("NewFs: %v", err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := f.Features().Shutdown(ctx); err != nil {
			e.t.Logf("shutdown: %v", err)
		}
	})
	return f
}

// withDefaults adds the backend's defaults to the options in m.
func withDefaults(m configmap.Simple) configmap.Mapper {
	ri, err := fs.Find("jellyfish")
	if err != nil {
		panic(err)
	}
	return fs.ConfigMap(ri.Prefix, ri.Options, "", m)
}

// useLiveBootstrap points the config file's bootstrap option at nodes
// alive now, for tests that killed nodes the config named.
func (e *env) useLiveBootstrap() {
	e.t.Helper()
	b, err := os.ReadFile(e.conf)
	if err != nil {
		e.t.Fatal(err)
	}
	old := "bootstrap = " + configValue(e.t, e.conf, "bootstrap")
	body := strings.Replace(string(b), old, "bootstrap = "+e.net.Bootstrap(), 1)
	if err := os.WriteFile(e.conf, []byte(body), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// configValue returns an option of the remote in a config file.
func configValue(t *testing.T, conf, key string) string {
	t.Helper()
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " = "); ok && k == key {
			return v
		}
	}
	t.Fatalf("%s has no %s", conf, key)
	return ""
}

// child is a jellyfish process.
type child struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr lockedBuffer
	done   chan struct{}
	err    error // set when done is closed
	start  time.Time
}

// lockedBuffer collects a child's stderr while the test reads it.
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

// childTimeout bounds every child: a hang fails the test instead of
// stalling it.
const childTimeout = 90 * time.Second

// start runs `jellyfish --config CONF args...` in the background. The
// process is killed when the test ends if it still runs.
//
// Children rotate over childDataDirs data dirs, the config's first.
func (e *env) start(args ...string) *child {
	e.t.Helper()
	if e.dataDirs == nil {
		e.dataDirs = []string{configValue(e.t, e.conf, "data_dir")}
		for len(e.dataDirs) < childDataDirs {
			e.dataDirs = append(e.dataDirs, e.t.TempDir())
		}
	}
	dir := e.dataDirs[e.next%len(e.dataDirs)]
	e.next++
	return startWith(e.t, e.conf, append([]string{"--jellyfish-data-dir", dir}, args...)...)
}

func startWith(t *testing.T, conf string, args ...string) *child {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), childTimeout)
	cmd := exec.CommandContext(ctx, binary, append([]string{"--config", conf}, args...)...)
	cmd.Env = append(os.Environ(), "RCLONE_CACHE_DIR="+t.TempDir())
	cmd.WaitDelay = 5 * time.Second
	c := &child{cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &c.stdout, &c.stderr
	c.start = time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		c.err = cmd.Wait()
		cancel()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
	})
	return c
}

// exited reports whether the child has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// kill ends the child with SIGKILL and waits for it. It reports whether
// the child was still running, so the kill interrupted it.
func (c *child) kill() bool {
	running := !c.exited()
	_ = c.cmd.Process.Kill()
	<-c.done
	return running
}

// wait waits for the child to end and returns its error.
func (c *child) wait() error {
	<-c.done
	return c.err
}

// run runs a jellyfish command to its end and returns stdout, stderr and
// its exit error.
func (e *env) run(args ...string) ([]byte, string, error) {
	e.t.Helper()
	c := e.start(args...)
	err := c.wait()
	return c.stdout.Bytes(), c.stderr.String(), err
}

func runWith(t *testing.T, conf string, args ...string) ([]byte, string, error) {
	t.Helper()
	c := startWith(t, conf, args...)
	err := c.wait()
	return c.stdout.Bytes(), c.stderr.String(), err
}

// mustRun runs a jellyfish command that must succeed and returns stdout.
func (e *env) mustRun(args ...string) []byte {
	e.t.Helper()
	out, stderr, err := e.run(args...)
	if err != nil {
		e.t.Fatalf("jellyfish %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// storedBytes returns the bytes of shards committed on the live providers.
func (e *env) storedBytes() int64 {
	var n int64
	for _, i := range e.net.Net.Live() {
		if p := e.net.Fleet.Provider(i); p != nil {
			n += p.Store().Usage().Used
		}
	}
	return n
}

// waitFor polls cond every 20 ms until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %v waiting for %s", d, what)
		case <-tick.C:
		}
	}
}

// randomBytes returns n random bytes.
func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// writeFile writes data to dir/name, creating parents, and returns the
// path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// blake3Hex returns the BLAKE3 hash of b as rclone prints it.
func blake3Hex(b []byte) string {
	h := blake3.New()
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// shardFile is one shard file on a provider's disk.
type shardFile struct {
	node   int
	path   string
	header codec.Header
}

// shardFiles lists the shard files under the data dir of every node slot
// (live or killed) whose header says k data and m parity shards: file
// contents, not metadata, when k+m differs from the metadata's 2+6.
func (e *env) shardFiles(k, m int) []shardFile {
	e.t.Helper()
	var out []shardFile
	for i := range e.net.Net.Len() {
		root := filepath.Join(e.net.Net.Dir(), fmt.Sprintf("node-%d", i), provider.ShardsDir, "shards")
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || len(d.Name()) != 64 {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			data, err := io.ReadAll(f)
			if err != nil {
				return err
			}
			h, err := codec.ParseHeader(data)
			if err != nil {
				return nil // corrupted by a test, or not a shard
			}
			if int(h.K) == k && int(h.M) == m {
				out = append(out, shardFile{node: i, path: p, header: h})
			}
			return nil
		})
		if err != nil {
			e.t.Fatal(err)
		}
	}
	return out
}

// corrupt flips bytes in the payload of a shard file, keeping its length
// and header.
func corrupt(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int{codec.HeaderSize, (codec.HeaderSize + len(b)) / 2, len(b) - 1} {
		if off < len(b) {
			b[off] ^= 0xa5
		}
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
