package netlab

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// FUSE reports whether this machine can make FUSE mounts, after trying to
// load the fuse module; if it cannot, the error says why.
func FUSE() error {
	if _, err := os.Stat("/dev/fuse"); errors.Is(err, os.ErrNotExist) {
		out, merr := exec.Command("modprobe", "fuse").CombinedOutput()
		if _, err := os.Stat("/dev/fuse"); err != nil {
			return fmt.Errorf("/dev/fuse does not exist and `modprobe fuse` did not create it (%v: %s)", merr, bytes.TrimSpace(out))
		}
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("cannot open /dev/fuse: %w", err)
	}
	f.Close()
	// rclone's mount (bazil.org/fuse) runs fusermount3 to mount.
	if _, err := exec.LookPath("fusermount3"); err != nil {
		return errors.New("fusermount3 is not installed (apt-get install fuse3; .ci/run does)")
	}
	return nil
}

// Mount is a `jellyfish mount` process on a lab host.
//
// The process runs as every lab command does, by `ip netns exec`, which
// gives it a mount namespace of its own; the FUSE mount exists there only.
// That is deliberate: a mount made in the machine's namespace is copied
// into every mount namespace made while it exists (each `ip netns exec` of
// any test running then), and each copy keeps the FUSE connection open
// after fusermount3 -u, so the mount process lives on until those
// processes end. Other processes reach the mount through the process's
// root, /proc/PID/root (Root), and when the process ends its namespace and
// the mount go with it: nothing is left mounted anywhere.
type Mount struct {
	Host *Host
	// Dir is the mount point in the mount process's namespace: a folder of
	// the machine's file system, empty seen from anywhere else.
	Dir string

	fusermount string
	cmd        *exec.Cmd
	out        *SyncBuffer
	done       chan struct{}
	err        error // valid once done is closed
}

// StartMount runs `bin mount remote dir flags...` on h with env added to
// its environment, and waits until dir is a mount point in the process's
// namespace. Call FUSE first. When the test ends the mount is unmounted
// and the process ended, whatever happened.
func (h *Host) StartMount(t testing.TB, bin string, env []string, remote, dir string, flags ...string) *Mount {
	t.Helper()
	fusermount, err := exec.LookPath("fusermount3")
	if err != nil {
		t.Fatal(err)
	}
	m := &Mount{Host: h, Dir: dir, fusermount: fusermount, out: &SyncBuffer{}, done: make(chan struct{})}
	m.cmd = h.Command(bin, append([]string{"mount", remote, dir}, flags...)...)
	m.cmd.Env = append(os.Environ(), env...)
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	// ip execs jellyfish, which keeps this: if the test process dies
	// without its cleanup, the mount process dies too, and its mount
	// namespace with it.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go func() {
		// The signal comes when the thread that started the process
		// ends, not the test process: this goroutine holds that thread
		// for the process's life, so that no other goroutine ends it
		// (Dial ends the threads it moves into a namespace).
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := m.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		m.err = m.cmd.Wait()
		close(m.done)
	}()
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-m.done:
		default:
			if ok, _ := m.mounted(); ok {
				if err := m.fusermount3("-u"); err != nil {
					t.Logf("netlab: %v; unmounting lazily", err)
					if err := m.fusermount3("-uz"); err != nil {
						t.Logf("netlab: %v", err)
					}
				}
			}
			m.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-m.done:
			case <-time.After(30 * time.Second):
				t.Logf("netlab: the mount process on %s ignored SIGTERM; killing it", h.Name)
				m.cmd.Process.Kill()
				<-m.done
			}
		}
		if t.Failed() {
			t.Logf("log of the mount on %s:\n%s", h.Name, m.out)
		}
	})
	deadline := time.After(2 * time.Minute)
	for {
		ok, err := m.mounted()
		if ok {
			return m
		}
		select {
		case <-m.done:
			t.Fatalf("jellyfish mount on %s exited before mounting: %v\n%s", h.Name, m.err, m.out)
		case <-deadline:
			t.Fatalf("jellyfish mount on %s: %s not mounted after 2 minutes (%v)\n%s", h.Name, dir, err, m.out)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Root is the mount point as other processes reach it: through the mount
// process's root.
func (m *Mount) Root() string {
	return fmt.Sprintf("/proc/%d/root%s", m.cmd.Process.Pid, m.Dir)
}

// Unmount unmounts with fusermount3 -u in the mount's namespace, as a user
// does in theirs, and waits up to wait for the mount process to exit. It
// fails if the process does not exit or exits with an error. A process
// still running after wait is sent SIGQUIT, so that its log shows where
// each of its goroutines was.
func (m *Mount) Unmount(wait time.Duration) error {
	if err := m.fusermount3("-u"); err != nil {
		return err
	}
	select {
	case <-m.done:
	case <-time.After(wait):
		m.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-m.done:
		case <-time.After(10 * time.Second):
		}
		return fmt.Errorf("jellyfish mount on %s still running %v after the unmount", m.Host.Name, wait)
	}
	if m.err != nil {
		return fmt.Errorf("jellyfish mount on %s exited with %v after the unmount", m.Host.Name, m.err)
	}
	return nil
}

// fusermount3 runs fusermount3 with flag on the mount point, in the mount
// process's namespace.
func (m *Mount) fusermount3(flag string) error {
	cmd := exec.Command("nsenter", fmt.Sprintf("--mount=/proc/%d/ns/mnt", m.cmd.Process.Pid), "--", m.fusermount, flag, m.Dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s %s on %s: %v: %s", m.fusermount, flag, m.Dir, m.Host.Name, err, bytes.TrimSpace(out))
	}
	return nil
}

// mounted reports whether Dir is a mount point in the mount process's
// namespace.
func (m *Mount) mounted() (bool, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", m.cmd.Process.Pid))
	if err != nil {
		return false, err
	}
	defer f.Close()
	// Field 5 is the mount point, with spaces and the like octal-escaped.
	want := strings.NewReplacer(" ", `\040`, "\t", `\011`, "\n", `\012`, `\`, `\134`).Replace(m.Dir)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fields[4] == want {
			return true, nil
		}
	}
	return false, sc.Err()
}
