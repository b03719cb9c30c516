package compat

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/fstests/netlab"
)

// pinFile names the previous version's commit (see its comment).
const pinFile = "previous-version"

// binaries are the two jellyfish binaries, built once per test process.
var binaries struct {
	once      sync.Once
	dir       string // removed by TestMain
	prev, cur string
	commit    string
	skip      string // why the tests cannot run here
	err       error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
	}
	os.Exit(code)
}

// buildBinaries returns the previous and the current jellyfish binaries,
// building them on first use; it skips t where the previous version's
// source cannot be had.
func buildBinaries(t *testing.T) (prev, cur string) {
	t.Helper()
	binaries.once.Do(func() {
		binaries.commit, binaries.skip, binaries.err = readPin(pinFile)
		if binaries.skip != "" || binaries.err != nil {
			return
		}
		binaries.dir, binaries.err = os.MkdirTemp("", "jellyfish-compat-")
		if binaries.err != nil {
			return
		}
		start := time.Now()
		binaries.prev, binaries.skip, binaries.err = buildCommit(binaries.commit, binaries.dir)
		if binaries.skip != "" || binaries.err != nil {
			return
		}
		t.Logf("built the previous version %.12s in %v", binaries.commit, time.Since(start).Round(time.Second))
		start = time.Now()
		binaries.cur, binaries.err = netlab.Build(binaries.dir)
		t.Logf("built the current version in %v", time.Since(start).Round(time.Second))
	})
	if binaries.skip != "" {
		t.Skip(binaries.skip)
	}
	if binaries.err != nil {
		t.Fatal(binaries.err)
	}
	return binaries.prev, binaries.cur
}

var hashRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// readPin reads the commit hash of the pin file: its first line that is
// neither blank nor a comment.
func readPin(path string) (commit, skip string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !hashRE.MatchString(line) {
			return "", "", fmt.Errorf("%s: %q is not a full commit hash", path, line)
		}
		return line, "", nil
	}
	if err := sc.Err(); err != nil {
		return "", "", err
	}
	return "", "", fmt.Errorf("%s names no commit", path)
}

// buildCommit writes the tree of commit (git archive, so nothing is
// registered in the repository) under dir/src-<commit> and builds its
// jellyfish command into dir. skip is set where this is no git checkout
// or the commit is not in its history.
func buildCommit(commit, dir string) (bin, skip string, err error) {
	if _, err := exec.LookPath("git"); err != nil {
		return "", "the previous version is built from git history, and git is not installed", nil
	}
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").CombinedOutput()
	if err != nil {
		return "", fmt.Sprintf("not inside a git checkout (%s): the previous version %.12s is built from the repository's history", strings.TrimSpace(string(out)), commit), nil
	}
	top := strings.TrimSpace(string(out))
	if err := exec.Command("git", "-C", top, "cat-file", "-e", commit+"^{commit}").Run(); err != nil {
		return "", fmt.Sprintf("commit %.12s (the previous version, named in fstests/compat/%s) is not in this clone's history; a shallow clone needs git fetch --unshallow", commit, pinFile), nil
	}
	src := filepath.Join(dir, "src-"+commit[:12])
	archive := exec.Command("git", "-C", top, "archive", "--format=tar", commit)
	var stderr bytes.Buffer
	archive.Stderr = &stderr
	r, err := archive.StdoutPipe()
	if err != nil {
		return "", "", err
	}
	if err := archive.Start(); err != nil {
		return "", "", err
	}
	xerr := extract(r, src)
	io.Copy(io.Discard, r)
	if err := errors.Join(xerr, archive.Wait()); err != nil {
		return "", "", fmt.Errorf("git archive %.12s: %w\n%s", commit, err, stderr.String())
	}
	bin = filepath.Join(dir, "jellyfish-"+commit[:12])
	build := exec.Command("go", "build", "-tags", "noselfupdate", "-o", bin, "./cmd/jellyfish")
	build.Dir = src
	build.Env = append(os.Environ(), "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("build the previous version %.12s: %v\n%s", commit, err, out)
	}
	return bin, "", nil
}

// extract writes the directories, files and symbolic links of a tar
// stream under dir.
func extract(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(h.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("archive path %q leaves the tree", h.Name)
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			err = writeFile(p, tr, os.FileMode(h.Mode)&0o755|0o600)
		case tar.TypeSymlink:
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				err = os.Symlink(h.Linkname, p)
			}
		}
		if err != nil {
			return err
		}
	}
}

func writeFile(p string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
