// Package vfs_test runs rclone's VFS test suite (vfs/vfstest) against the
// Jellyfish backend, in the VFS cache modes users pick.
//
// How vfstest runs without every cloud backend: vfs/vfstest's fs.go has
// `import _ "github.com/rclone/rclone/backend/all"`, so importing the
// package, for any of its test functions, compiles and registers every
// backend rclone has (about 230 extra packages: the AWS, Azure, Google,
// Storj… SDKs, most of them missing from our go.mod). Its tests can only
// be driven through vfstest.RunTests, which keeps its state in unexported
// package variables, so the package must be imported whole. A build
// overlay cannot help: the go command refuses overlays of files in the
// module cache. Instead TestVFSSuite builds the test of ./suite (which
// imports vfstest and calls RunTests against a Jellyfish network) against
// a shadow of the rclone module: a directory of symlinks into the module
// cache, identical except that backend/all/all.go registers only the local
// backend, selected with a temporary `-modfile` (our go.mod and go.sum plus
// one replace line). vfstest itself is compiled unmodified from the module
// cache; nothing is copied into the repository. The shadow lives at a fixed
// path under the temp dir because the build cache keys packages by their
// directory: a second run reuses the compiled packages. The suite's test
// file carries the jellyfish_vfstest build tag, so `go test ./...` and
// `go vet ./...` never compile it without the shadow; this test checks that
// the shadowed build really has no cloud backend in it.
//
// The suite runs in-process on the VFS (useVFS); the real FUSE mount is
// tested by fstests/mount.
package vfs_test

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// cacheModes selects vfstest's runs by what follows "CacheMode=" in their
// names: off, off,Links=true, minimal, writes, full,
// full,WriteBack=100ms and full,WriteBack=100ms,Links=true. All run by
// default; off, writes and full must pass whenever selected.
var cacheModes = flag.String("vfs-modes", ".*", "regexp of the vfstest runs (the part of their names after CacheMode=) to run")

const suitePkg = "github.com/jellyfish-p2p/jellyfish/fstests/vfs/suite"

// allReplacement is the source that stands in for rclone's backend/all.
const allReplacement = `// Package all registers only the local backend: the Jellyfish VFS suite
// build replaces rclone's backend/all with this file.
package all

import _ "github.com/rclone/rclone/backend/local"
`

// shadowRclone returns the shadow of the rclone module, making it if it
// is missing: every entry a symlink into the module cache except
// backend/all, whose all.go is allReplacement.
func shadowRclone(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}\n{{.Dir}}", "github.com/rclone/rclone").Output()
	if err != nil {
		t.Fatalf("go list -m rclone: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		t.Fatalf("go list -m rclone: %q", out)
	}
	version, src := f[0], f[1]
	root := filepath.Join(os.TempDir(), "jellyfish-vfstest")
	shadow := filepath.Join(root, "rclone@"+version)
	if b, err := os.ReadFile(filepath.Join(shadow, "backend", "all", "all.go")); err == nil && string(b) == allReplacement {
		return shadow
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(root, "new-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp) // symlinks only: RemoveAll does not follow them
	link := func(from, to string, skip string) {
		entries, err := os.ReadDir(from)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() == skip {
				continue
			}
			if err := os.Symlink(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	link(src, tmp, "backend")
	if err := os.MkdirAll(filepath.Join(tmp, "backend", "all"), 0o755); err != nil {
		t.Fatal(err)
	}
	link(filepath.Join(src, "backend"), filepath.Join(tmp, "backend"), "all")
	if err := os.WriteFile(filepath.Join(tmp, "backend", "all", "all.go"), []byte(allReplacement), 0o644); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(shadow) // an incomplete or outdated shadow
	if err := os.Rename(tmp, shadow); err != nil {
		// Another run made it at the same moment.
		if b, err2 := os.ReadFile(filepath.Join(shadow, "backend", "all", "all.go")); err2 != nil || string(b) != allReplacement {
			t.Fatalf("install the rclone shadow: %v", err)
		}
	}
	return shadow
}

// writeModfile writes a copy of our go.mod (and go.sum) that replaces
// rclone by its shadow and returns its path.
func writeModfile(t *testing.T, dir, shadow string) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	gomod := strings.TrimSpace(string(out))
	mod, err := os.ReadFile(gomod)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(strings.TrimSuffix(gomod, ".mod") + ".sum")
	if err != nil {
		t.Fatal(err)
	}
	mod = append(mod, fmt.Sprintf("\nreplace github.com/rclone/rclone => %s\n", shadow)...)
	p := filepath.Join(dir, "go.mod")
	if err := os.WriteFile(p, mod, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var buildFlags = []string{"-tags", "noselfupdate,jellyfish_vfstest"}

// checkDeps fails unless the overlaid build of the suite includes vfstest
// and the jellyfish backend but no rclone backend that needs a cloud SDK.
func checkDeps(t *testing.T, modfile string) {
	t.Helper()
	args := append([]string{"list", "-modfile", modfile, "-deps", "-test"}, buildFlags...)
	out, err := exec.Command("go", append(args, suitePkg)...).Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := map[string]bool{}
	for _, d := range strings.Fields(string(out)) {
		deps[d] = true
	}
	for _, want := range []string{"github.com/rclone/rclone/vfs/vfstest", "github.com/jellyfish-p2p/jellyfish/backend/jellyfish", "github.com/rclone/rclone/backend/local"} {
		if !deps[want] {
			t.Errorf("suite build lacks %s", want)
		}
	}
	for _, unwanted := range []string{"github.com/rclone/rclone/backend/s3", "github.com/rclone/rclone/backend/drive", "github.com/aws/aws-sdk-go-v2/aws", "github.com/Azure/azure-sdk-for-go/sdk/azcore"} {
		if deps[unwanted] {
			t.Errorf("suite build still includes %s: the shadow of backend/all did not apply", unwanted)
		}
	}
}

// result is one vfstest test's outcome in the child's -test.v output.
type result struct {
	name, status, reason string
}

var (
	resultLine = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+)`)
	runLine    = regexp.MustCompile(`^=== (?:RUN|NAME|CONT)\s+(\S+)`)
	logLine    = regexp.MustCompile(`^\s+\S+\.go:\d+: (.*)`)
)

// parseResults reads the outcomes from the suite's -test.v output. With
// -test.v a test's t.Skip message is printed while it runs, after its
// "=== RUN" line, so a skip's reason is the last message of its test.
func parseResults(out []byte) []result {
	var res []result
	last := map[string]string{}
	current := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := runLine.FindStringSubmatch(line); m != nil {
			current = m[1]
			continue
		}
		if m := resultLine.FindStringSubmatch(line); m != nil {
			r := result{name: m[2], status: m[1]}
			if r.status == "SKIP" {
				r.reason = last[r.name]
			}
			res = append(res, r)
			continue
		}
		if m := logLine.FindStringSubmatch(line); m != nil && current != "" {
			last[current] = m[1]
		}
	}
	return res
}

// TestVFSSuite builds ./suite against the rclone shadow and runs rclone's VFS suite
// in the runs selected by -vfs-modes (default all seven).
func TestVFSSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("the VFS suite takes minutes")
	}
	dir := t.TempDir()
	modfile := writeModfile(t, dir, shadowRclone(t))
	checkDeps(t, modfile)
	if t.Failed() {
		t.FailNow()
	}
	bin := filepath.Join(dir, "suite.test")
	build := exec.Command("go", append(append([]string{"test", "-c", "-o", bin, "-modfile", modfile}, buildFlags...), suitePkg)...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the VFS suite: %v\n%s", err, out)
	}

	timeout := 15 * time.Minute
	if dl, ok := t.Deadline(); ok {
		timeout = time.Until(dl) - 30*time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	run := fmt.Sprintf("^TestVFS$/^CacheMode=(%s)$", *cacheModes)
	cmd := exec.CommandContext(ctx, bin, "-test.v", "-test.run", run, "-test.timeout", timeout.String())
	cmd.Dir = dir
	// The suite's output goes to this test's log as it comes (live with
	// -v) and is kept for the summary.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			out.Write(sc.Bytes())
			out.WriteByte('\n')
			t.Log(sc.Text())
		}
	}()
	start := time.Now()
	err = cmd.Start()
	pw.Close()
	if err == nil {
		err = cmd.Wait()
	}
	<-copied
	pr.Close()
	elapsed := time.Since(start)

	res := parseResults(out.Bytes())
	type counts struct{ pass, fail, skip int }
	perMode := map[string]*counts{}
	var modes []string
	var skips, fails []string
	for _, r := range res {
		parts := strings.Split(r.name, "/")
		if len(parts) != 3 {
			continue
		}
		c := perMode[parts[1]]
		if c == nil {
			c = &counts{}
			perMode[parts[1]] = c
			modes = append(modes, parts[1])
		}
		switch r.status {
		case "PASS":
			c.pass++
		case "FAIL":
			c.fail++
			fails = append(fails, r.name)
		case "SKIP":
			c.skip++
			skips = append(skips, fmt.Sprintf("%s: %s", r.name, r.reason))
		}
	}
	t.Logf("VFS suite ran in %v", elapsed.Round(time.Second))
	for _, m := range modes {
		c := perMode[m]
		t.Logf("%s: %d passed, %d failed, %d skipped", m, c.pass, c.fail, c.skip)
	}
	for _, s := range skips {
		t.Logf("skipped %s", s)
	}
	if err != nil || len(fails) > 0 {
		t.Errorf("VFS suite: %v; failed: %s", err, strings.Join(fails, ", "))
		return
	}
	want := regexp.MustCompile("^(" + *cacheModes + ")$")
	for _, m := range []string{"off", "writes", "full"} {
		if want.MatchString(m) && (perMode["CacheMode="+m] == nil || perMode["CacheMode="+m].pass == 0) {
			t.Errorf("%s was selected but no test of it passed", m)
		}
	}
}
