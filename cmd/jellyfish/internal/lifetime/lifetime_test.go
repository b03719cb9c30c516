package lifetime

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/config/configmap"
	"github.com/rclone/rclone/fs/operations"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish"
	"github.com/jellyfish-p2p/jellyfish/cmd/jellyfish/internal/sim"
	"github.com/jellyfish-p2p/jellyfish/fstests/jftest"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/caretaker"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/localnet"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
)

// simClock is Jellyfish's time in a simulation: real time plus an offset
// the simulation moves ahead a tick at a time.
type simClock struct{ off atomic.Int64 }

func (c *simClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *simClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// scenario is one lifetime run.
type scenario struct {
	name string
	days int
	// nodes are the providers at the start; spares join one for each
	// that leaves, as long as there are any.
	nodes, spares int
	// churn is the fraction of nodes that leave for good each month;
	// goneTenths the tenths of the original nodes at least gone by the
	// end (the churn's random plan is drawn again until it does).
	churn      float64
	goneTenths int
	// node: the owner runs a node that cares for the records and
	// maintains the data every day.
	node  bool
	files int
}

// seed returns the run's seed: JELLYFISH_SIM_SEED if set, else a new one.
func seed(t *testing.T) uint64 {
	if s := os.Getenv("JELLYFISH_SIM_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("JELLYFISH_SIM_SEED=%q: %v", s, err)
		}
		return v
	}
	return rand.Uint64()
}

// long says whether the year-long scenarios run (make test-long).
func long() bool { return os.Getenv("JELLYFISH_LIFETIME") == "long" }

// scenarios returns the runs of this invocation: 90 days on 20 nodes in
// make test, a year on 40 in make test-long.
func scenarios() (withNode, noNode scenario) {
	if long() {
		return scenario{name: "year-40-nodes", days: 365, nodes: 40, spares: 64, churn: 0.10, goneTenths: 7, node: true, files: 60},
			scenario{name: "year-40-nodes-no-node", days: 365, nodes: 40, spares: 64, churn: 0.10, goneTenths: 7, files: 60}
	}
	// Over 90 days, 10 % a month would not take a segment of 10+20 below
	// its repair threshold: the short run churns a quarter of the nodes
	// a month, so it repairs.
	return scenario{name: "90-days-20-nodes", days: 90, nodes: 20, spares: 20, churn: 0.25, goneTenths: 4, node: true, files: 30},
		scenario{name: "90-days-20-nodes-no-node", days: 90, nodes: 20, spares: 20, churn: 0.25, goneTenths: 4, files: 30}
}

// TestLifetime runs the owner's-node scenario: with a node that cares and
// maintains, every file reads back at the end, a new device logs in with
// the password, and the repairs are printed next to the model's.
func TestLifetime(t *testing.T) {
	sc, _ := scenarios()
	r := run(t, sc)
	if r.lost != 0 || r.readable != r.files {
		t.Fatalf("with the owner's node %d of %d files were lost (%v)", r.lost, r.files, r.err)
	}
	if r.goneOrig*10 < r.startNodes*sc.goneTenths {
		t.Fatalf("only %d of %d original nodes gone, want %d tenths", r.goneOrig, r.startNodes, sc.goneTenths)
	}
	if r.repairs == 0 {
		t.Fatal("nodes left and nothing was repaired")
	}
	if long() && r.heldBytes > r.liveBytes*5/4 {
		// Deleted files' shards (day 30) are collected by day 150, and
		// what repair replaced went with the nodes that left.
		t.Fatalf("providers hold %d bytes for a live set of %d", r.heldBytes, r.liveBytes)
	}
}

// TestLifetimeNoNode runs the same churn with nobody maintaining: data is
// lost, and that is reported when a device tries to use the account, not
// silently.
func TestLifetimeNoNode(t *testing.T) {
	_, sc := scenarios()
	r := run(t, sc)
	if r.lost == 0 {
		t.Fatalf("%d days of churn without maintenance lost nothing: the scenario tests nothing", sc.days)
	}
	if r.err == nil {
		t.Fatal("files were lost and nothing said so")
	}
	if !errors.Is(r.err, account.ErrExpiredLogin) {
		t.Fatalf("the reader was told %q, not that the account expired", r.err)
	}
}

// result is what a run found at its end.
type result struct {
	files, readable, lost int
	repairs, placed       int
	repairBytes           int64
	segments              int
	goneOrig, startNodes  int
	minLive               int
	model                 float64 // the durability model's repairs
	liveBytes, heldBytes  int64   // renewed by the last round; held by live providers
	err                   error   // the first error a reading device reported
}

// sim is one run in progress.
type simRun struct {
	t     *testing.T
	sc    scenario
	clock *simClock
	rng   *rand.Rand
	net   *jftest.Network
	acct  *jftest.Account
	live  map[int]bool  // node slots alive now
	plan  map[int][]int // day → node slots leaving for good
	next  int           // the next spare slot to join
	gone  int           // original nodes gone for good
}

func run(t *testing.T, sc scenario) result {
	sd := seed(t)
	fmt.Printf("lifetime %s: seed %d (JELLYFISH_SIM_SEED=%d replays it)\n", sc.name, sd, sd)
	ctx := context.Background()
	clock := &simClock{}
	cfg := provider.TestnetConfig{
		QuotaBytes: 256 << 20,
		Base: localnet.Options{Clock: clock.Now, Configure: func(_ int, c *node.Config) {
			// TCP only: a dial to a node gone for good is refused at
			// once, where QUIC waits out its handshake timeout; a day of
			// maintenance then costs milliseconds, not minutes.
			var tcp []ma.Multiaddr
			for _, a := range c.ListenAddrs {
				if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
					tcp = append(tcp, a)
				}
			}
			c.ListenAddrs = tcp
		}},
		Provider: func(_ int, c *provider.Config) { c.Clock = clock.Now },
	}
	r := &simRun{t: t, sc: sc, clock: clock, rng: rand.New(rand.NewPCG(sd, 0x11fe)), live: map[int]bool{}}
	r.plan = planChurn(sc, r.rng)
	r.net = jftest.StartNetworkConfig(t, sc.nodes+sc.spares, cfg)
	for i := range sc.nodes + sc.spares {
		if i < sc.nodes {
			r.live[i] = true
		} else if err := r.net.Net.Kill(i); err != nil { // spares join later
			t.Fatal(err)
		}
	}
	r.next = sc.nodes
	r.acct = r.createAccount(ctx)

	// The owner's laptop stores the files, then sleeps, waking every 30
	// days to add two more.
	want := map[string][32]byte{}
	laptop := r.open(ctx, map[string]string{"maintenance": "false"})
	put := func(name string, size int) {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(r.rng.Uint32())
		}
		if _, err := operations.Rcat(ctx, laptop, name, io.NopCloser(bytes.NewReader(data)), clock.Now(), nil); err != nil {
			t.Fatalf("day %d: put %s: %v", r.day(), name, err)
		}
		want[name] = sha256.Sum256(data)
	}
	for i := range sc.files {
		put(fmt.Sprintf("docs/f%03d.bin", i), fileSize(r.rng, i))
	}
	if err := laptop.Features().Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	var res result
	res.startNodes = sc.nodes
	var care *caretaker.Caretaker
	var nodeFs fs.Fs
	if sc.node {
		nodeFs = r.open(ctx, map[string]string{"maintenance": "false"})
		care = r.caretaker(ctx)
	}
	start := time.Now()
	for day := 1; day <= sc.days; day++ {
		clock.Advance(24 * time.Hour)
		r.churn(day)
		if day == 1 || len(r.live) < res.minLive {
			res.minLive = len(r.live)
		}
		if day%7 == 0 {
			// Node records live 30 days; providers re-publish on a
			// real-time timer, which a simulated day does not reach.
			if err := r.net.Fleet.PublishAll(ctx, r.net.Net); err != nil {
				t.Logf("day %d: publish node records: %v", day, err)
			}
			// Collection runs on a real-time timer too: a round a week
			// on every provider (a shard goes 30 days after its lease).
			for i := range r.live {
				if p := r.net.Fleet.Provider(i); p != nil {
					if _, err := p.Collect(ctx); err != nil {
						t.Logf("day %d: node %d collects: %v", day, i, err)
					}
				}
			}
		}
		if day == 30 {
			// The owner deletes a few files: their shards are no longer
			// renewed, and providers collect them after lease + grace.
			for i := 3; i < sc.files; i += 10 { // objects of their own
				name := fmt.Sprintf("docs/f%03d.bin", i)
				o, err := laptop.NewObject(ctx, name)
				if err == nil {
					err = o.Remove(ctx)
				}
				if err != nil {
					t.Fatalf("day %d: delete %s: %v", day, name, err)
				}
				delete(want, name)
			}
		}
		if day%30 == 0 {
			put(fmt.Sprintf("later/d%03d-a.bin", day), fileSize(r.rng, day))
			put(fmt.Sprintf("later/d%03d-b.bin", day), 100)
			if err := laptop.Features().Shutdown(ctx); err != nil {
				t.Fatalf("day %d: flush: %v", day, err)
			}
		}
		if sc.node {
			if _, err := care.Tick(ctx); err != nil {
				t.Logf("day %d: caretaker: %v", day, err)
			}
			st, raw := maintain(t, ctx, nodeFs)
			res.repairs += int(st["segments_repaired"])
			res.placed += int(st["shards_placed"])
			res.repairBytes += int64(st["repair_bytes"])
			res.segments = int(st["segments"])
			res.liveBytes = int64(st["renewed_bytes"])
			// The model's repairs of this day: each segment maintained,
			// at its code's average daily rate over the horizon.
			if codes, ok := raw["segments_by_code"].(map[string]any); ok {
				for code, n := range codes {
					res.model += n.(float64) * modelRate(sc, code)
				}
			}
			if st["segments_unrepairable"] > 0 {
				t.Logf("day %d: %v segments cannot be repaired", day, st["segments_unrepairable"])
			}
		}
		if day%10 == 0 {
			t.Logf("day %d: %d nodes live, %d original gone, %d repairs, %v", day, len(r.live), r.gone, res.repairs, time.Since(start).Round(time.Second))
		}
	}
	res.goneOrig = r.gone
	if res.minLive < sc.nodes {
		t.Errorf("only %d nodes were live at one moment: the scenario wants %d at every moment (more spares)", res.minLive, sc.nodes)
	}
	t.Logf("%d simulated days in %v", sc.days, time.Since(start).Round(time.Second))

	// A device that never used the account logs in and reads everything.
	res.files = len(want)
	reader, err := r.tryOpen(ctx, nil)
	if err != nil {
		res.err = err
		res.lost = len(want)
		t.Logf("a new device cannot open the account: %v", err)
	} else {
		for name, sum := range want {
			got, err := readAll(ctx, reader, name)
			if err == nil && sha256.Sum256(got) != sum {
				err = fmt.Errorf("%s: read back different bytes", name)
			}
			if err != nil {
				res.lost++
				if res.err == nil {
					res.err = err
				}
				continue
			}
			res.readable++
		}
	}
	model := "-"
	if sc.node && res.segments > 0 {
		model = strconv.Itoa(int(math.Round(res.model)))
	}
	fmt.Printf("lifetime %s: days=%d files=%d readable=%d lost=%d repairs=%d repair-bytes=%d model-repairs=%s gone=%d/%d\n",
		sc.name, sc.days, res.files, res.readable, res.lost, res.repairs, res.repairBytes, model, res.goneOrig, res.startNodes)
	if res.err != nil {
		fmt.Printf("lifetime %s: reported: %v\n", sc.name, res.err)
	}
	for i := range r.live {
		if p := r.net.Fleet.Provider(i); p != nil {
			res.heldBytes += p.Store().Usage().Used
		}
	}
	fmt.Printf("lifetime %s: providers hold %d bytes; the last maintenance round renewed %d\n", sc.name, res.heldBytes, res.liveBytes)
	return res
}

// modelRate is the durability model's expected repairs per day of one
// segment of code ("k+m") over the scenario's horizon: a round a day,
// repair at k + ⌈m/2⌉ − 1 answering shards or fewer, nodes online until
// they leave.
func modelRate(sc scenario, code string) float64 {
	var k, m int
	if _, err := fmt.Sscanf(code, "%d+%d", &k, &m); err != nil {
		return 0
	}
	d := sim.Durability{K: k, M: m, Uptime: 1, MonthlyChurn: sc.churn, AuditDays: 1,
		Threshold: k + (m+1)/2 - 1, HorizonDays: float64(sc.days)}
	return d.Markov().Repairs / float64(sc.days)
}

// fileSize spreads files over the namespace's three ways of storing
// them: inline, packed and objects of their own.
func fileSize(rng *rand.Rand, i int) int {
	switch i % 5 {
	case 0:
		return 1 + rng.IntN(120)
	case 1, 2:
		return 1<<10 + rng.IntN(60<<10)
	}
	return 300<<10 + rng.IntN(400<<10)
}

func (r *simRun) day() int { return int(r.clock.Now().Sub(time.Now()).Hours() / 24) }

// planChurn draws which node slots leave on which day: every live node
// leaves with the day's share of the monthly churn, and a spare joins for
// each one that leaves. Plans that take fewer than the scenario's share of
// the original nodes away, or run out of spares, are drawn again (from
// the same random stream, so a seed still fixes the plan).
func planChurn(sc scenario, rng *rand.Rand) map[int][]int {
	p := 1 - math.Pow(1-sc.churn, 1/sim.DaysPerMonth)
	for {
		plan := map[int][]int{}
		live := map[int]bool{}
		for i := range sc.nodes {
			live[i] = true
		}
		next, gone, ok := sc.nodes, 0, true
		for day := 1; day <= sc.days; day++ {
			for i := range sc.nodes + sc.spares {
				if !live[i] || rng.Float64() >= p {
					continue
				}
				plan[day] = append(plan[day], i)
				delete(live, i)
				if i < sc.nodes {
					gone++
				}
				if next == sc.nodes+sc.spares {
					ok = false
					continue
				}
				live[next] = true
				next++
			}
		}
		if ok && gone*10 >= sc.nodes*sc.goneTenths {
			return plan
		}
	}
}

// churn carries out the day's departures of the plan; a spare joins for
// each node that leaves.
func (r *simRun) churn(day int) {
	for _, i := range r.plan[day] {
		if err := r.net.Net.Kill(i); err != nil {
			r.t.Fatal(err)
		}
		delete(r.live, i)
		if i < r.sc.nodes {
			r.gone++
		}
		if r.next == r.sc.nodes+r.sc.spares {
			r.t.Fatalf("day %d: no spare node left to join", day)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := r.net.Net.Restart(ctx, r.next)
		cancel()
		if err != nil {
			r.t.Fatalf("node %d joins: %v", r.next, err)
		}
		if p := r.net.Fleet.Provider(r.next); p != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := p.Publish(ctx); err != nil {
				r.t.Logf("node %d: publish its record: %v", r.next, err)
			}
			cancel()
		}
		r.live[r.next] = true
		r.next++
	}
}

// bootstrap returns the addresses of live nodes.
func (r *simRun) bootstrap() []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, f := range strings.Fields(r.net.Bootstrap()) {
		out = append(out, ma.StringCast(f))
	}
	return out
}

// createAccount creates the account on the simulation's clock.
func (r *simRun) createAccount(ctx context.Context) *jftest.Account {
	c := r.client(ctx)
	defer c.Close()
	a := &jftest.Account{Net: r.net, User: "owner", Password: "copper lantern orbit gravel 5"}
	if _, err := account.NewManager(c.Records(), account.InsecureTestKDF(), account.WithClock(r.clock.Now)).Create(ctx, "owner", a.Password); err != nil {
		r.t.Fatalf("create account: %v", err)
	}
	return a
}

// client joins the network as a client on the simulation's clock.
func (r *simRun) client(ctx context.Context) *client.Client {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, err := client.New(ctx, client.Config{DataDir: r.t.TempDir(), Bootstrap: r.bootstrap(),
		Configure: func(cfg *node.Config) { cfg.Clock = r.clock.Now }})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { c.Close() })
	return c
}

// caretaker is the owner's node's: it re-signs the account's records.
func (r *simRun) caretaker(ctx context.Context) *caretaker.Caretaker {
	c := r.client(ctx)
	a, err := account.NewManager(c.Records(), account.InsecureTestKDF(), account.WithClock(r.clock.Now)).Login(ctx, "owner", r.acct.Password)
	if err != nil {
		r.t.Fatal(err)
	}
	ct, err := caretaker.New(caretaker.Config{Records: c.Records(), Account: a, Dir: r.t.TempDir(), Clock: r.clock.Now})
	if err != nil {
		r.t.Fatal(err)
	}
	return ct
}

// open opens a new device of the account (a data dir of its own).
func (r *simRun) open(ctx context.Context, extra map[string]string) fs.Fs {
	f, err := r.tryOpen(ctx, extra)
	if err != nil {
		r.t.Fatalf("day %d: open the account: %v", r.day(), err)
	}
	return f
}

func (r *simRun) tryOpen(ctx context.Context, extra map[string]string) (fs.Fs, error) {
	m := configmap.Simple{}
	for _, line := range strings.Split(r.acct.RemoteConfig(r.t, extra), "\n") {
		if k, v, ok := strings.Cut(line, " = "); ok {
			m[k] = v
		}
	}
	ri, err := fs.Find("jellyfish")
	if err != nil {
		return nil, err
	}
	f, err := jellyfish.NewFsAt(ctx, "sim", "", fs.ConfigMap(ri.Prefix, ri.Options, "", m), r.clock.Now)
	if err != nil {
		return nil, err
	}
	r.t.Cleanup(func() {
		// Not Shutdown: the session's background work must end before the
		// test removes its data folder.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f.(*jellyfish.Fs).CloseSession(ctx)
	})
	return f, nil
}

// maintain runs one maintenance round of f and returns its figures: the
// numbers, and everything as decoded.
func maintain(t *testing.T, ctx context.Context, f fs.Fs) (map[string]float64, map[string]any) {
	t.Helper()
	out, err := f.Features().Command(ctx, "maintain", nil, nil)
	if err != nil {
		t.Logf("maintenance: %v", err)
	}
	b, _ := json.Marshal(out)
	var raw map[string]any
	json.Unmarshal(b, &raw)
	st := map[string]float64{}
	for k, v := range raw {
		if n, ok := v.(float64); ok {
			st[k] = n
		}
	}
	return st, raw
}

func readAll(ctx context.Context, f fs.Fs, name string) ([]byte, error) {
	o, err := f.NewObject(ctx, name)
	if err != nil {
		return nil, err
	}
	rc, err := o.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
