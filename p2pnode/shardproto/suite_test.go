package shardproto

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
)

// The hostile-peer suite (make bench-hostile). Each attack runs from a
// separate process, this test binary started again as TestHostileAttacker,
// held to half a core by a CPU cgroup: 50 identities on 4 loopback
// addresses, each running the attack as fast as the holder lets it, for
// the suite's duration (5 minutes by default). Meanwhile an honest client
// in this process stores and reads back 100 MiB rounds of 4 MiB shards on
// the holder, as it did with the same attacker process connected and
// idle. Each attack prints
//
//	hostile ATTACK: honest-ratio=X heap-growth-mib=Y goroutine-growth=Z lost=L ...
//
// and fails when the honest throughput falls below half the idle one, the
// heap grows by more than 64 MiB or the goroutines by more than 500 over
// the idle baseline, the heap or goroutines at the end differ from the
// first fifth of the attack by more than 10 % (plus a small slack), or an
// honest shard is lost.

const (
	// envHostile runs TestHostileSuite: "1" for every attack, or a
	// comma-separated list of attack names.
	envHostile = "JELLYFISH_HOSTILE"
	// envHostileDuration is how long each attack runs (a Go duration).
	envHostileDuration = "JELLYFISH_HOSTILE_DURATION"
	// envHostileAttack and envHostileTarget are set for the attacker
	// process: the attack, and the holder's address with its peer ID.
	envHostileAttack = "JELLYFISH_HOSTILE_ATTACK"
	envHostileTarget = "JELLYFISH_HOSTILE_TARGET"
)

// hostileAttacks are the suite's attacks, each run by every attacker
// identity with hostileWorkers streams at a time.
var hostileAttacks = []string{"half-headers", "stream-flood", "slow-puts", "stalled-bodies", "huge-lengths", "challenge-flood"}

var hostileWorkers = map[string]int{
	"half-headers":    DefaultMaxPeerStreams,
	"stream-flood":    4 * DefaultMaxPeerPending,
	"slow-puts":       DefaultMaxPeerStreams,
	"stalled-bodies":  DefaultMaxPeerStreams,
	"huge-lengths":    DefaultMaxPeerStreams,
	"challenge-flood": 2,
}

const (
	hostileIdentities = 50
	hostileAddrPrefix = "127.0.9"
	hostileAddrs      = 4
	honestShard       = 4 << 20
	honestRound       = 25 // shards of honestShard: 100 MiB
)

func TestHostileSuite(t *testing.T) {
	sel := os.Getenv(envHostile)
	if sel == "" {
		t.Skipf("the hostile-peer suite runs with %s=1 (make bench-hostile): minutes per attack", envHostile)
	}
	attacks := hostileAttacks
	if sel != "1" {
		attacks = strings.Split(sel, ",")
	}
	dur := 5 * time.Minute
	if s := os.Getenv(envHostileDuration); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("%s: %v", envHostileDuration, err)
		}
		dur = d
	}
	cg, err := newHalfCoreCgroup()
	if err != nil {
		t.Fatalf("the attacker process needs a CPU cgroup: %v", err)
	}
	defer cg.remove()

	e := newProductionEnv(t)
	target := fmt.Sprintf("%s/p2p/%s", e.holder.Addrs()[0], e.holder.ID())
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(len(attacks)+2)*(dur+2*time.Minute))
	defer cancel()
	seed := uint64(1)

	// The baseline: the attacker process connected and idle.
	idle := startAttacker(t, cg, "idle", target)
	time.Sleep(5 * time.Second)
	var base hostileRun
	if err := base.round(ctx, e, &seed); err != nil {
		t.Fatalf("honest round beside an idle attacker: %v", err)
	}
	baseRate := base.rate()
	baseHeap, baseG := heapInUse(), runtime.NumGoroutine()
	idle.stop(t)
	t.Logf("hostile idle: honest %.1f MiB/s (%d MiB in %v), heap %.1f MiB, %d goroutines",
		baseRate/(1<<20), base.bytes>>20, base.took.Round(time.Millisecond), float64(baseHeap)/(1<<20), baseG)

	var prev, lastStats ServiceStats
	lastStats.Resets = map[string]int64{}
	for _, attack := range attacks {
		if _, ok := hostileWorkers[attack]; !ok {
			t.Fatalf("unknown attack %q (have %s)", attack, strings.Join(hostileAttacks, ", "))
		}
		a := startAttacker(t, cg, attack, target)
		time.Sleep(10 * time.Second) // the attack reaches full strength
		var run hostileRun
		start := time.Now()
		// The heap and goroutines after each round: the medians of the
		// first and the last fifth of the attack are compared, so one
		// sample taken while many streams are in flight does not decide.
		var early, late samples
		for time.Since(start) < dur {
			if err := run.round(ctx, e, &seed); err != nil {
				t.Errorf("%s: honest round: %v", attack, err)
				break
			}
			h, g := heapInUse(), runtime.NumGoroutine()
			switch el := time.Since(start); {
			case el <= dur/5:
				early.add(h, g)
			case el >= dur-dur/5:
				late.add(h, g)
			}
		}
		if len(early.heap) == 0 || len(late.heap) == 0 {
			h, g := heapInUse(), runtime.NumGoroutine()
			early.add(h, g)
			late.add(h, g)
		}
		earlyHeap, earlyG := early.medians()
		lateHeap, lateG := late.medians()
		out := a.stop(t)
		ratio := run.rate() / baseRate
		heapGrowth := (float64(max(earlyHeap, lateHeap)) - float64(baseHeap)) / (1 << 20)
		gGrowth := max(earlyG, lateG) - baseG
		// The holder's counts since the previous attack.
		ss := e.svc.Stats()
		prev, lastStats = lastStats, ss
		lastStats.Resets = maps.Clone(ss.Resets)
		ss.Evicted -= prev.Evicted
		ss.Refused -= prev.Refused
		ss.RefusalsHeld -= prev.RefusalsHeld
		for k := range ss.Resets {
			ss.Resets[k] -= prev.Resets[k]
		}
		t.Logf("hostile %s: honest-ratio=%.3f heap-growth-mib=%.1f goroutine-growth=%d lost=%d honest=%.1fMiB/s rounds=%d heap-first-fifth=%.1fMiB heap-end=%.1fMiB goroutines-first-fifth=%d goroutines-end=%d attacker: %s holder: evicted=%d refused=%d held=%d resets=%v",
			attack, ratio, heapGrowth, gGrowth, run.lost, run.rate()/(1<<20), run.rounds,
			float64(earlyHeap)/(1<<20), float64(lateHeap)/(1<<20), earlyG, lateG, out,
			ss.Evicted, ss.Refused, ss.RefusalsHeld, ss.Resets)
		switch {
		case run.lost > 0:
			t.Errorf("%s: %d honest shards lost", attack, run.lost)
		case ratio < 0.5:
			t.Errorf("%s: honest throughput %.2f of the idle baseline, want at least 0.5", attack, ratio)
		case heapGrowth > 64:
			t.Errorf("%s: heap grew by %.1f MiB, want at most 64", attack, heapGrowth)
		case gGrowth > 500:
			t.Errorf("%s: %d more goroutines, want at most 500", attack, gGrowth)
		case !flat(float64(earlyHeap), float64(lateHeap), 8<<20):
			t.Errorf("%s: heap %.1f MiB in the first fifth, %.1f MiB in the last: it grows", attack, float64(earlyHeap)/(1<<20), float64(lateHeap)/(1<<20))
		case !flat(float64(earlyG), float64(lateG), 50):
			t.Errorf("%s: %d goroutines in the first fifth, %d in the last: they grow", attack, earlyG, lateG)
		}
		// The holder settles before the next attack.
		time.Sleep(5 * time.Second)
	}
}

// newProductionEnv is newEnv with the holder's and the client's hosts
// made as a Jellyfish node makes its host (node.NewHost: its transports,
// resource limits with the shard service's, no metrics), so the suite
// measures what a provider pays, not a test host's resource-manager
// tracing.
func newProductionEnv(t *testing.T) *env {
	t.Helper()
	mk := func() host.Host {
		h, err := node.NewHost(ed25519Key(t), node.HostConfig{
			ListenAddrs:   []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")},
			ConnLow:       node.DefaultConnLow,
			ConnHigh:      node.DefaultConnHigh,
			ServiceLimits: []func(*rcmgr.ScalingLimitConfig){SetServiceLimits},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	e := &env{holder: mk(), dir: t.TempDir(), ch: mk(), ownerKey: ed25519Key(t)}
	var err error
	if e.disk, err = shardstore.New(e.dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.disk.Close() })
	if e.svc, err = NewService(e.holder, e.disk); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.svc.Close() })
	if e.client, err = NewClient(e.ch, e.ownerKey); err != nil {
		t.Fatal(err)
	}
	connect(t, e.ch, e.holder)
	return e
}

// flat reports whether b, the median late in an attack, is at most 10 %
// or slack above a, the median early in it: a leak grows; fewer streams
// in flight at the end is not one.
func flat(a, b, slack float64) bool {
	d := b - a
	return d <= slack || d <= 0.1*a
}

// samples are heap and goroutine counts taken during an attack.
type samples struct {
	heap []uint64
	gs   []int
}

func (s *samples) add(h uint64, g int) {
	s.heap = append(s.heap, h)
	s.gs = append(s.gs, g)
}

// medians returns the median heap and goroutine count.
func (s *samples) medians() (uint64, int) {
	h, g := slices.Clone(s.heap), slices.Clone(s.gs)
	slices.Sort(h)
	slices.Sort(g)
	return h[len(h)/2], g[len(g)/2]
}

// heapInUse returns the heap in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// hostileRun counts an honest client's rounds.
type hostileRun struct {
	bytes  int64 // stored plus read back
	took   time.Duration
	rounds int
	lost   int
}

func (r *hostileRun) rate() float64 { return float64(r.bytes) / r.took.Seconds() }

// round stores honestRound new shards of honestShard bytes on the holder,
// reads each back and compares it, then deletes them (the next round's
// are new, so nothing is deduplicated). A shard that cannot be read back
// intact counts as lost; a put that fails is an error.
func (r *hostileRun) round(ctx context.Context, e *env, seed *uint64) error {
	start := time.Now()
	p := e.holder.ID()
	lease := time.Now().Add(time.Hour)
	ids := make([]codec.ShardID, honestRound)
	seeds := make([]uint64, honestRound)
	for i := range ids {
		*seed++
		seeds[i] = *seed
		data, id := honestData(*seed)
		if _, err := e.client.Put(ctx, p, id, data, lease); err != nil {
			return fmt.Errorf("put %d: %w", i, err)
		}
		ids[i] = id
		r.bytes += honestShard
	}
	for i, id := range ids {
		data, _ := honestData(seeds[i])
		rc, _, err := e.client.Get(ctx, p, id)
		if err != nil {
			r.lost++
			continue
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			r.lost++
			continue
		}
		r.bytes += honestShard
	}
	for _, id := range ids {
		if err := e.client.Delete(ctx, p, id); err != nil {
			return fmt.Errorf("delete: %w", err)
		}
	}
	r.took += time.Since(start)
	r.rounds++
	return nil
}

var (
	honestBaseOnce sync.Once
	honestBase     []byte
)

// honestData returns an honest shard for seed: one random 4 MiB block
// with seed in its first 8 bytes, so each shard is new (nothing is
// deduplicated) and making it costs the client a copy, not a generator
// run: the honest side should wait on the holder, not on its own CPU.
func honestData(seed uint64) ([]byte, codec.ShardID) {
	honestBaseOnce.Do(func() { honestBase, _ = shard(0x5eed, honestShard) })
	b := bytes.Clone(honestBase)
	binary.BigEndian.PutUint64(b, seed)
	return b, codec.IDOf(b)
}

// cpuCgroup is a CPU cgroup that holds its processes to half a core.
type cpuCgroup struct {
	dir   string
	procs string // the file a PID is written to
}

// newHalfCoreCgroup makes a cgroup limited to 50 ms of CPU per 100 ms:
// cgroup v2 (cpu.max) where the cpu controller is enabled, else cgroup v1's
// cpu hierarchy (cpu.cfs_quota_us).
func newHalfCoreCgroup() (*cpuCgroup, error) {
	name := fmt.Sprintf("jellyfish-hostile-%d", os.Getpid())
	var errs []error
	for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if b, err := os.ReadFile(filepath.Join(root, "cgroup.subtree_control")); err != nil || !strings.Contains(string(b), "cpu") {
			continue
		}
		dir := filepath.Join(root, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, "cpu.max"), []byte("50000 100000"), 0o644); err != nil {
			os.Remove(dir)
			errs = append(errs, err)
			continue
		}
		return &cpuCgroup{dir: dir, procs: filepath.Join(dir, "cgroup.procs")}, nil
	}
	dir := filepath.Join("/sys/fs/cgroup/cpu", name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	if err := os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), []byte("100000"), 0o644); err != nil {
		os.Remove(dir)
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), []byte("50000"), 0o644); err != nil {
		os.Remove(dir)
		return nil, err
	}
	return &cpuCgroup{dir: dir, procs: filepath.Join(dir, "cgroup.procs")}, nil
}

func (c *cpuCgroup) add(pid int) error {
	return os.WriteFile(c.procs, []byte(strconv.Itoa(pid)), 0o644)
}

func (c *cpuCgroup) remove() { os.Remove(c.dir) }

// attackerProc is a running attacker process.
type attackerProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bytes.Buffer
}

// startAttacker starts this test binary again as TestHostileAttacker
// running attack against target, in cg.
func startAttacker(t *testing.T, cg *cpuCgroup, attack, target string) *attackerProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHostileAttacker$", "-test.v", "-test.timeout=0")
	cmd.Env = append(os.Environ(), envHostileAttack+"="+attack, envHostileTarget+"="+target, envHostile+"=")
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := cg.add(cmd.Process.Pid); err != nil {
		cmd.Process.Kill()
		t.Fatalf("put the attacker in its cgroup: %v", err)
	}
	a := &attackerProc{cmd: cmd, stdin: stdin, out: out}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return a
}

// stop ends the attacker (closing its stdin) and returns its summary line.
func (a *attackerProc) stop(t *testing.T) string {
	t.Helper()
	a.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- a.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("attacker process: %v\n%s", err, a.out)
		}
	case <-time.After(30 * time.Second):
		a.cmd.Process.Kill()
		<-done
		t.Errorf("attacker process did not stop\n%s", a.out)
	}
	for _, l := range strings.Split(a.out.String(), "\n") {
		if i := strings.Index(l, "attacker-summary "); i >= 0 {
			return strings.TrimSpace(l[i+len("attacker-summary "):])
		}
	}
	return "no summary"
}

// TestHostileAttacker is the attacker process of TestHostileSuite; it does
// nothing unless started by it. It runs until its standard input closes.
func TestHostileAttacker(t *testing.T) {
	attack := os.Getenv(envHostileAttack)
	if attack == "" {
		t.Skip("the attacker process of TestHostileSuite (make bench-hostile)")
	}
	target, err := peer.AddrInfoFromString(os.Getenv(envHostileTarget))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	hs := make([]host.Host, hostileIdentities)
	for i := range hs {
		h, err := libp2p.New(libp2p.ListenAddrStrings(fmt.Sprintf("/ip4/%s.%d/tcp/0", hostileAddrPrefix, i%hostileAddrs+1)))
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if err := h.Connect(ctx, *target); err != nil {
			t.Fatal(err)
		}
		hs[i] = h
	}
	var ops, answered, refused atomic.Int64
	var wg sync.WaitGroup
	if attack != "idle" {
		for _, h := range hs {
			key, _, err := crypto.GenerateEd25519Key(crand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			for range hostileWorkers[attack] {
				wg.Go(func() {
					for ctx.Err() == nil {
						ok, err := hostileOp(ctx, attack, h, target.ID, key)
						ops.Add(1)
						switch {
						case ok:
							answered.Add(1)
						case err != nil:
							refused.Add(1)
							// Refused before a stream: do not spin.
							select {
							case <-ctx.Done():
							case <-time.After(10 * time.Millisecond):
							}
						}
					}
				})
			}
		}
	}
	<-ctx.Done()
	wg.Wait()
	fmt.Printf("attacker-summary ops=%d answered=%d refused-before-a-stream=%d\n", ops.Load(), answered.Load(), refused.Load())
}

// challengeShards is the shard each attacker identity references for its
// challenges, put once per owner key (a put of a shard the holder has adds
// only a reference).
var (
	challengeShardOnce sync.Once
	challengeData      []byte
	challengeID        codec.ShardID
)

// hostileOp runs one operation of attack from h against holder and waits
// until the holder ends it. ok: the holder answered it in full (a served
// challenge); err: no stream could be opened.
func hostileOp(ctx context.Context, attack string, h host.Host, holder peer.ID, key crypto.PrivKey) (ok bool, err error) {
	switch attack {
	case "challenge-flood":
		// A fresh owner key per challenge: each is a new owner with its
		// own allowance, and keys are free.
		challengeShardOnce.Do(func() { challengeData, challengeID = shard(77, 2<<20) })
		k, _, err := crypto.GenerateEd25519Key(crand.Reader)
		if err != nil {
			return false, err
		}
		c, err := NewClient(h, k)
		if err != nil {
			return false, err
		}
		if _, err := c.Put(ctx, holder, challengeID, challengeData, time.Now().Add(time.Hour)); err != nil {
			return false, err
		}
		var salt [32]byte
		crand.Read(salt[:])
		_, err = c.Challenge(ctx, holder, challengeID, salt)
		return err == nil, nil
	}
	st, err := h.NewStream(ctx, holder, ID)
	if err != nil {
		return false, err
	}
	defer st.Reset()
	// A write the holder no longer reads ends when the process stops.
	defer context.AfterFunc(ctx, func() { st.Reset() })()
	switch attack {
	case "half-headers":
		// A 200-byte get header of which 5 bytes are sent.
		st.Write([]byte{0, 0, 0, 200, msgGet})
	case "stream-flood":
		st.Write([]byte{0, 0, 0})
	case "huge-lengths":
		var b [5]byte
		binary.BigEndian.PutUint32(b[:4], 0xffffffff)
		b[4] = msgPut
		st.Write(b[:])
	case "slow-puts", "stalled-bodies":
		kb, err := crypto.MarshalPublicKey(key.GetPublic())
		if err != nil {
			return false, err
		}
		var id codec.ShardID
		crand.Read(id[:])
		size := int64(16 << 20)
		ts := time.Now()
		lease := ts.Add(time.Hour)
		sig, err := key.Sign(putSigned(holder, id, size, lease, ts))
		if err != nil {
			return false, err
		}
		req := &request{typ: msgPut, id: id, size: size, lease: lease, ts: ts, key: kb, sig: sig}
		if writeFrame(st, req.encode()) != nil {
			return false, nil
		}
		ended := make(chan struct{})
		go func() {
			io.Copy(io.Discard, st)
			close(ended)
		}()
		if attack == "stalled-bodies" {
			// Half a megabyte of body, then nothing.
			st.Write(make([]byte, 512<<10))
		} else {
			// 1 KiB every 250 ms, to keep the reservation.
			chunk := make([]byte, 1<<10)
			tick := time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
		loop:
			for {
				select {
				case <-ctx.Done():
					return false, nil
				case <-ended:
					break loop
				case <-tick.C:
					if _, err := st.Write(chunk); err != nil {
						break loop
					}
				}
			}
		}
		select {
		case <-ended:
		case <-ctx.Done():
		}
		return false, nil
	}
	// Hold the stream until the holder ends it.
	ended := make(chan struct{})
	go func() {
		io.Copy(io.Discard, st)
		close(ended)
	}()
	select {
	case <-ended:
	case <-ctx.Done():
	}
	return false, nil
}
