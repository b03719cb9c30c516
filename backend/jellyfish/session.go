package jellyfish

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/lib/atexit"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/journal"
	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/placement"
	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/atomicfile"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/caretaker"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// network is what a session needs from the peer network: the shard
// protocol as the account's owner, the provider nodes to place shards on,
// and the DHT's records. The real one is a client-mode node of this process.
type network interface {
	Shards(owner crypto.PrivKey) (shardIO, error)
	Providers(ctx context.Context) ([]peer.ID, error)
	Records() account.Records
	OwnedCapacity(ctx context.Context, owner peer.ID) (bytes int64, nodes int, err error)
	Peers() int
	Close() error
}

// providerGrouper is an optional ability of a network: the placement
// groups (verified owner, network) of the providers it listed.
type providerGrouper interface {
	ProviderGroups(nodes []peer.ID) []placement.Node
}

var _ providerGrouper = (*clientNet)(nil)

// groupsOf returns nw's ProviderGroups, or nil when it cannot tell.
func groupsOf(nw network) func([]peer.ID) []placement.Node {
	if g, ok := nw.(providerGrouper); ok {
		return g.ProviderGroups
	}
	return nil
}

// session is one account's state in this process, shared by every Fs of
// the account (rclone opens several per command, on sub-paths). It wires
// together the parts that do the work: the namespace and this device's
// log (nsLog), the object store (objects.go), the packer of small files
// (pack.go), the journal (recover.go) and cleanup (cleanup.go).
type session struct {
	key     string
	opt     *Options
	now     func() time.Time // Jellyfish's own clock (see openSession)
	net     network
	acct    *account.Account
	mgr     *account.Manager
	device  ns.DeviceID
	unlock  func()
	slotDir string // this device's slot: key cache, journal, log cache, cleanup state

	log      *nsLog
	heads    *accountHeads
	store    *objectStore
	meta     *metaObjects
	enc      *codec.Encoder // file contents
	packEnc  *codec.Encoder // packs of small files
	repairs  repairQueue
	packs    packer
	packSegs segCache // decoded pack segments, for reads of packed files
	refs     refCache // references read through indirect ones
	clean    cleaner
	journal  *journal.Journal
	logCache *ns.LogCache // nil without one

	// bg runs the session's background work (record refreshes) under bgCtx.
	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc
	// closeOnce makes close run once (rclone's exit and CloseSession may
	// both ask); closeErr is what it returned.
	closeOnce sync.Once
	closeErr  error

	// changes lists the paths changed in this process, by this device or by
	// others, for ChangeNotify; changesBase is the index of changes[0].
	chMu        sync.Mutex
	changes     []string
	changesBase int

	timerMu    sync.Mutex
	flushTimer *time.Timer
	// timerFlushes counts the scheduled flushes not yet ended (waiting
	// or running); closing waits for them before it leaves the network.
	// closing: no flush is scheduled any more. Both under timerMu.
	timerFlushes sync.WaitGroup
	closing      bool

	locMu sync.Mutex
	locs  []ns.Location // shard holders waiting for the next flush

	// confirmed: this device was found in the account record at its
	// first flush (see flush).
	confirmed atomic.Bool
	// listedAt is when this device was last seen in the account record,
	// registeredAt when this session last added it (see listCheckDue).
	listMu       sync.Mutex
	listedAt     time.Time
	registeredAt time.Time
	// opened is the account record as the session read it when it opened
	// (raw), and when: the device's join starts from it (see register).
	opened   []byte
	openedAt time.Time
	// registering is set while a full account record is being made room
	// in for this device (see listedToPublish).
	registering atomic.Bool
	// recMu makes this session's changes to the account record's device
	// list (joining, retiring) one at a time: two updates made from the
	// same read would lose one.
	recMu sync.Mutex
	// joined wakes the keep-alive round when this device adds itself to
	// the account record.
	joined chan struct{}
	// prefetch starts listing the providers with the first change: the
	// first pack or file stored needs them, and the listing (a walk of
	// the key space and a record per node) overlaps the first changes.
	prefetch sync.Once
	// joining is set while a join runs in the background (startJoin);
	// early counts that join and the providers' prefetch, which closing
	// waits for.
	joining   atomic.Bool
	early     sync.WaitGroup
	earlyMu   sync.Mutex
	earlyShut bool // closing waited for early: nothing more starts
	// roomAtOpen: the account record read at opening had room for one
	// more device.
	roomAtOpen bool
	// published: this session published a batch (see close).
	published atomic.Bool
	// flushes counts flushes, to trim the log cache now and then.
	flushes atomic.Uint64
	// keptAlive counts the background keep-alive rounds finished (records
	// re-signed, maintenance run when due).
	keptAlive atomic.Uint64
}

// maxChanges bounds the change list kept for ChangeNotify.
const maxChanges = 1 << 16

func (s *session) noteChanges(paths []string) {
	s.chMu.Lock()
	defer s.chMu.Unlock()
	s.changes = append(s.changes, paths...)
	// Trim in halves, so each change is copied at most once on average.
	if over := len(s.changes) - maxChanges; over > maxChanges {
		s.changes = append(s.changes[:0:0], s.changes[over:]...)
		s.changesBase += over
	}
}

// changeCursor returns the cursor of the next change.
func (s *session) changeCursor() int {
	s.chMu.Lock()
	defer s.chMu.Unlock()
	return s.changesBase + len(s.changes)
}

// changesSince returns the paths changed since cursor and the new cursor.
func (s *session) changesSince(cursor int) ([]string, int) {
	s.chMu.Lock()
	defer s.chMu.Unlock()
	end := s.changesBase + len(s.changes)
	if cursor < s.changesBase {
		fs.Logf(nil, "jellyfish: change notifications fell behind: %d changes missed", s.changesBase-cursor)
		cursor = s.changesBase
	}
	out := append([]string(nil), s.changes[cursor-s.changesBase:]...)
	return out, end
}

// sessions holds the live sessions of this process, one per account,
// network and set of options. rclone creates Fs values freely and never
// closes them, so this registry is what lets them share one client node
// and one namespace.
var (
	sessionsMu sync.Mutex
	sessions   = map[string]*session{}
)

// flushDelay is how long a write waits for company before its batch is
// flushed; well inside the 5 s promise.
const flushDelay = time.Second

// flushRetry is how long a failed flush waits before it is tried again.
const flushRetry = 5 * time.Second

// logCacheMax bounds the slot's log cache on disk: the checkpoint nodes
// and batches this device read or wrote, least recently used dropped
// first. A million-file namespace's checkpoint is about 150 MB.
const logCacheMax = 1 << 30

func getSession(ctx context.Context, opt *Options, now func() time.Time) (*session, error) {
	key := opt.sessionKey()
	sessionsMu.Lock()
	defer sessionsMu.Unlock()
	if s, ok := sessions[key]; ok {
		return s, nil
	}
	s, err := newSession(ctx, key, opt, now)
	if err != nil {
		return nil, err
	}
	sessions[key] = s
	return s, nil
}

// sessionKey is every option that changes what a session does: two
// remotes that differ in any of them get sessions of their own. The
// password is hashed (in memory only), so a remote with a wrong password
// never shares a session that logged in with the right one.
func (o *Options) sessionKey() string {
	pw := sha256.Sum256([]byte(o.Password))
	return fmt.Sprintf("%s|%x|%s|%d+%d|%d|%d|%s|%d|%d|%d|%d|%d+%d|%v|%v|%s|%v|%v|%v",
		o.Username, pw[:8], o.Bootstrap, o.DataShards, o.ParityShards, o.SuccessShards, o.SegmentSize, o.Compression,
		o.InlineMax, o.PackMax, o.PackSize, o.CheckpointEvery, o.MetaDataShards, o.MetaParityShards,
		o.Lease, o.CleanupGrace, o.DataDir, o.InsecureTestKDF, o.Maintenance, o.DeviceRetireAfter)
}

func newSession(ctx context.Context, key string, opt *Options, now func() time.Time) (s *session, err error) {
	user, err := account.NormalizeUsername(opt.Username)
	if err != nil {
		return nil, err
	}
	if opt.Password == "" {
		return nil, errors.New("jellyfish: no password configured for this remote (run `jellyfish config`)")
	}
	if err := opt.check(); err != nil {
		return nil, err
	}
	slotDir, unlock, err := lockSlot(filepath.Join(opt.dataDir(), string(user)))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	joinStart := time.Now()
	nw, err := connect(ctx, opt, slotDir, now)
	if err != nil {
		return nil, err
	}
	fs.Debugf(nil, "jellyfish: session phase join: %v", time.Since(joinStart))
	defer func() {
		if err != nil {
			nw.Close()
		}
	}()
	// Everything the session stamps, signs and times uses the clock the
	// network corrected.
	now = nw.(*clientNet).Now
	s, err = openSession(ctx, key, opt, user, slotDir, unlock, nw, now)
	if err != nil {
		return nil, err
	}
	// rclone runs its exit functions when a command ends and when a
	// signal ends it (it never calls Shutdown then): flush, then leave the
	// network so providers do not keep this process's connections open.
	atexit.Register(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.close(ctx); err != nil {
			fs.Errorf(nil, "jellyfish: at exit: %v", err)
		}
	})
	return s, nil
}

// openSession logs in to the account over nw, in the locked device slot
// slotDir, loads the namespace and commits what journals left. now is the
// clock of Jellyfish's own time (stamps, leases, record lifetimes,
// retention). Tests call it with an in-memory network and a clock they
// move.
func openSession(ctx context.Context, key string, opt *Options, user account.Username, slotDir string, unlock func(), nw network, now func() time.Time) (s *session, err error) {
	mopts := []account.Option{account.WithClock(now)}
	if opt.InsecureTestKDF {
		mopts = append(mopts, account.InsecureTestKDF())
	}
	mgr := account.NewManager(nw.Records(), mopts...)
	phase := time.Now()
	// mark logs how long a step of opening the session took (`-vv`: what
	// a cold start costs, step by step).
	mark := func(name string) {
		fs.Debugf(nil, "jellyfish: session phase %s: %v", name, time.Since(phase))
		phase = time.Now()
	}
	acct := loadKeyCache(slotDir, user, opt.Password, opt.InsecureTestKDF)
	if acct != nil {
		// Keys cached under this password: unless another device
		// rotated the account away from them.
		if err := mgr.CheckRotated(ctx, acct); err != nil {
			return nil, err
		}
	} else {
		if acct, err = mgr.Login(ctx, user, opt.Password); err != nil {
			if errors.Is(err, account.ErrBadLogin) && !errors.Is(err, account.ErrExpiredLogin) {
				return nil, fmt.Errorf("%w: create the account with `jellyfish account create` or `jellyfish config`", err)
			}
			return nil, err
		}
		if other := cachedAccountID(slotDir); other != "" && other != acct.ID() {
			// The slot served another account of this username (the
			// one a rotation left): start it afresh for this one.
			dest, err := retireSlot(slotDir, other, now())
			if err != nil {
				return nil, fmt.Errorf("jellyfish: the device slot %s holds another account's state and could not be set aside: %w", slotDir, err)
			}
			fs.Logf(nil, "jellyfish: this device slot held account %s (this password now opens %s); its state was moved to %s", other, acct.ID(), dest)
		}
		if err := saveKeyCache(slotDir, acct, opt.Password, opt.InsecureTestKDF); err != nil {
			fs.Debugf(nil, "jellyfish: cache account keys: %v", err)
		}
	}
	fileParams := codec.Params{K: opt.DataShards, M: opt.ParityShards, SegmentSize: int(opt.SegmentSize), Compression: opt.compression()}
	enc, err := codec.NewEncoder(fileParams)
	if err != nil {
		return nil, err
	}
	packEnc, err := packEncoder(fileParams)
	if err != nil {
		return nil, err
	}
	metaEnc, err := codec.NewEncoder(opt.metaParams())
	if err != nil {
		return nil, err
	}
	s = &session{key: key, opt: opt, net: nw, acct: acct, mgr: mgr, unlock: unlock, slotDir: slotDir, enc: enc, packEnc: packEnc, now: now, joined: make(chan struct{}, 1)}
	s.clean.now = s.now
	threshold := defaultThreshold
	if opt.SuccessShards > 0 {
		threshold = func(k, m int) int { return min(int(opt.SuccessShards), k+m) }
	}
	shards, err := nw.Shards(acct.Identity)
	if err != nil {
		return nil, err
	}
	s.store = &objectStore{
		shards: shards, providers: nw.Providers, groups: groupsOf(nw), lease: time.Duration(opt.Lease),
		threshold: threshold, slots: newTransferSlots(maxTransfers, maxHolderTransfers), repairs: &s.repairs, now: s.now,
	}
	s.logCache = openLogCache(slotDir, acct.Root)
	s.meta = &metaObjects{store: s.store, enc: metaEnc, cache: s.logCache}
	device, former, err := s.slotDevice(ctx)
	if err != nil {
		return nil, err
	}
	s.device = device
	if s.heads, err = newAccountHeads(acct, mgr, nw.Records(), device, filepath.Join(slotDir, "head")); err != nil {
		return nil, err
	}
	s.heads.now = s.now
	s.heads.onListed = func() { s.noteListed(false) }
	s.log = newNSLog(device, s.meta, s.heads, ns.NewClock(s.now), logConfig{checkpointEvery: opt.CheckpointEvery})
	s.log.now = s.now
	s.log.changed = s.noteChanges
	s.log.onReplace = s.clean.replaced
	s.log.onGarbage = s.clean.garbage
	s.log.schedule = s.scheduleFlush
	s.log.beforePublish = s.listedToPublish
	s.store.locate = s.locate
	if r, ok := nw.(interface {
		Gone(context.Context) error
		Alive() context.Context
	}); ok {
		s.store.gone, s.store.alive = r.Gone, r.Alive
	}
	mark("account")
	pub, err := s.checkListed(ctx)
	if err != nil {
		if !errors.Is(err, account.ErrNotFound) && !errors.Is(err, record.ErrStale) {
			return nil, err
		}
		// The network forgot the account record (no device ran for over
		// its lifetime), or serves only one older than this slot's node
		// has seen (a process killed while publishing a newer one):
		// publish it again from this slot's copy.
		if cerr := s.careForRecords(ctx); cerr != nil {
			return nil, fmt.Errorf("%w (and no copy of it here could be published again: %v)", err, cerr)
		}
		if pub, err = s.checkListed(ctx); err != nil {
			if errors.Is(err, account.ErrNotFound) {
				return nil, fmt.Errorf("%w: the network no longer holds this account's record (records expire %d days after the last device or linked node kept them) and this device has no copy of it; a device or `jellyfish node --account-config` that used the account more recently has one", err, int(account.RecordLifetime.Hours()/24))
			}
			return nil, err
		}
	}
	mark("device")
	s.heads.prime(pub)
	touched, err := s.log.load(ctx)
	if err != nil {
		return nil, err
	}
	mark("files")
	if h := s.log.restored; h != nil && h.Tip != nil && h.Version >= 2 {
		// Other devices find this one's batches through its head.
		if err := s.heads.Restore(ctx, h); err != nil {
			fs.Errorf(nil, "jellyfish: publishing this device's head again: %v (the next change publishes it)", err)
		}
	}
	s.loadCleanupState()
	if err := s.openJournal(ctx); err != nil {
		return nil, err
	}
	if former != nil && former.forked != nil {
		s.recoverForked(ctx, former)
	}
	s.resolveConflicts(ctx, touched)
	if s.log.upgrade {
		// Fold an account of the flat format into a checkpoint tree now.
		if err := s.flush(ctx); err != nil {
			fs.Errorf(nil, "jellyfish: upgrading the file list: %v (will retry)", err)
		}
	}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		// At start, then every few hours while the process runs (a mount
		// may run for months): records are re-signed and maintenance
		// runs when due.
		t := time.NewTicker(keepAliveEvery)
		defer t.Stop()
		for {
			s.refreshRecords(s.bgCtx)
			// Retiring devices is the work of devices that write (it may
			// write a checkpoint); one that only reads leaves it to them.
			if s.wasListed() {
				s.recMu.Lock()
				err := s.reviewDevices(s.bgCtx, false)
				s.recMu.Unlock()
				if err != nil && s.bgCtx.Err() == nil {
					fs.Errorf(nil, "jellyfish: retiring unused devices: %v", err)
				}
			}
			if opt.Maintenance {
				s.maintainIfDue(s.bgCtx)
			}
			s.keptAlive.Add(1)
			select {
			case <-s.bgCtx.Done():
				return
			case <-t.C:
			case <-s.joined:
				// Listed now: its head and its part in retiring devices
				// start at once, not hours later.
			}
		}
	}()
	return s, nil
}

// metaParams are the codec parameters of metadata objects (log batches,
// checkpoint nodes, references stored apart): one segment of up to 4 MiB,
// so their references stay small.
func (o *Options) metaParams() codec.Params {
	return codec.Params{K: o.MetaDataShards, M: o.MetaParityShards, SegmentSize: codec.DefaultSegmentSize, Compression: codec.CompressZstd}
}

// maxMetaShards bounds the shards of a metadata object: the head record
// holds one reference to such an object, and must stay under the record
// size limit however many providers there are.
const maxMetaShards = 32

// check refuses options the formats cannot serve, before anything is
// stored.
func (o *Options) check() error {
	if t := o.MetaDataShards + o.MetaParityShards; t > maxMetaShards || o.MetaDataShards < 1 {
		return fmt.Errorf("jellyfish: meta_data_shards + meta_parity_shards is %d: at least 1 data shard and at most %d in all", t, maxMetaShards)
	}
	return nil
}

// refreshAfter: records with less than this much life left are re-signed
// when a session starts, so an account and its devices' logs stay in the
// network as long as they are used, however rarely they change.
const refreshAfter = 21 * 24 * time.Hour

// keepAliveEvery is how often a running session checks its records and
// whether maintenance is due.
const keepAliveEvery = 6 * time.Hour

// refreshRecords keeps the account's records alive from this session: its
// own head through the head publisher, and the login record, the account
// record and every other device's head through the caretaker.
func (s *session) refreshRecords(ctx context.Context) {
	// A device the account record does not list has no head to keep: it
	// registers, and publishes its head, when it first writes.
	if s.wasListed() {
		if err := s.heads.refresh(ctx, refreshAfter); err != nil && ctx.Err() == nil {
			fs.Debugf(nil, "jellyfish: refresh head: %v", err)
		}
	}
	if err := s.careForRecords(ctx); err != nil && ctx.Err() == nil {
		fs.Debugf(nil, "jellyfish: refresh account records: %v", err)
	}
}

// newCaretaker returns the caretaker of the account's records. Its copies
// live in the device slot, so records the network forgot while no device
// ran (over 35 days) are published again from them.
func (s *session) newCaretaker() (*caretaker.Caretaker, error) {
	own := account.HeadKey(s.acct.ID(), account.DeviceID(s.device))
	return caretaker.New(caretaker.Config{
		Records: s.net.Records(), Account: s.acct, Dir: filepath.Join(s.slotDir, "caretaker"),
		Clock: s.now, MinLeft: refreshAfter, Skip: func(key string) bool { return key == own },
	})
}

// careForRecords runs one caretaker round.
func (s *session) careForRecords(ctx context.Context) error {
	c, err := s.newCaretaker()
	if err != nil {
		return err
	}
	st, err := c.Tick(ctx)
	if st.Resigned+st.Restored > 0 {
		fs.Debugf(nil, "jellyfish: account records: %d checked, %d re-signed, %d published again", st.Checked, st.Resigned, st.Restored)
	}
	return err
}

// scheduleFlush starts a flush after delay unless one is scheduled.
func (s *session) scheduleFlush(delay time.Duration) {
	s.timerMu.Lock()
	defer s.timerMu.Unlock()
	if s.flushTimer != nil || s.closing {
		return
	}
	s.timerFlushes.Add(1)
	s.flushTimer = time.AfterFunc(delay, func() {
		defer s.timerFlushes.Done()
		s.timerMu.Lock()
		s.flushTimer = nil
		s.timerMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := s.flush(ctx); err != nil {
			fs.Errorf(nil, "jellyfish: flush: %v (will retry)", err)
		}
	})
}

// flush stores pending changes (and the packs their files are in).
func (s *session) flush(ctx context.Context) error {
	if !s.confirmed.Load() && s.log.pendingCount() > 0 {
		// Storing the packs needs no place in the account record: it
		// overlaps a join still running (startJoin), which the check
		// below waits for.
		if s.joining.Load() {
			if err := s.storePacks(ctx, true); err != nil {
				return err
			}
		}
		// A device registering at the same moment as another may have lost
		// its place in the account record after it checked; before its
		// batches are published it checks again, so they are not published
		// where nobody looks.
		if err := s.ensureListed(ctx); err != nil {
			return err
		}
		s.confirmed.Store(true)
	}
	var locs []ns.Location
	before := s.log.ownSeq()
	err := s.log.flush(ctx, s.flushHooks(&locs))
	if err != nil && len(locs) > 0 {
		s.locMu.Lock()
		s.locs = append(locs, s.locs...)
		s.locMu.Unlock()
	}
	if err == nil && s.log.ownSeq() != before {
		s.published.Store(true)
		if s.listCheckDue() {
			// Batches are read only while their device is listed: a
			// concurrent update may have replaced this device's entry
			// after it checked, or another device retired it while it
			// was idle. Checked after publishing, so a device that
			// retires it later sees these batches.
			if lerr := s.ensureListed(ctx); lerr != nil {
				fs.Errorf(nil, "jellyfish: %v", lerr)
			}
		}
	}
	if err == nil && s.logCache != nil && s.flushes.Add(1)%64 == 0 {
		// A long-running process (a mount) keeps the cache bounded too.
		if _, terr := s.logCache.Trim(logCacheMax); terr != nil {
			fs.Debugf(nil, "jellyfish: log cache: %v", terr)
		}
	}
	return err
}

// flushHooks connect a flush to the packer and to the locations repair
// recorded; locs receives the locations taken, so that a failed flush can
// put them back.
func (s *session) flushHooks(locs *[]ns.Location) flushHooks {
	return flushHooks{
		storePacks: func(ctx context.Context) ([]ns.Pack, error) {
			if err := s.storePacks(ctx, true); err != nil {
				return nil, err
			}
			return s.takePackRecords(), nil
		},
		restorePacks: s.restorePackRecords,
		locations: func() []ns.Location {
			s.locMu.Lock()
			defer s.locMu.Unlock()
			*locs, s.locs = s.locs, nil
			return *locs
		},
	}
}

// recordLocations queues holders of shards found after their objects were
// stored (by repair), for the next flush: readers then try them after the
// holders an object's reference names. Locations merge by union, so they
// never conflict with other devices' changes.
func (s *session) recordLocations(locs []ns.Location) {
	s.locMu.Lock()
	s.locs = append(s.locs, locs...)
	s.locMu.Unlock()
	s.scheduleFlush(flushDelay)
}

// commit applies and journals new changes (see nsLog.commit).
func (s *session) commit(ctx context.Context, entries []ns.Entry, data []journal.Data) error {
	if err := s.joinForChange(ctx); err != nil {
		return err
	}
	return s.log.commit(ctx, entries, data, commitNew)
}

// close flushes pending changes, leaves the network and releases the
// device slot. The session is unusable afterwards and leaves the registry.
// Changes a failed final flush could not store stay in the journal, and
// the error says so: the next process of the account on this machine
// stores them. Only the first call does it; later ones return its error.
func (s *session) close(ctx context.Context) error {
	s.closeOnce.Do(func() { s.closeErr = s.closeNow(ctx) })
	return s.closeErr
}

func (s *session) closeNow(ctx context.Context) error {
	sessionsMu.Lock()
	if sessions[s.key] == s {
		delete(sessions, s.key)
	}
	sessionsMu.Unlock()
	s.bgCancel()
	s.bg.Wait()
	s.earlyMu.Lock()
	s.earlyShut = true
	s.earlyMu.Unlock()
	s.early.Wait()
	s.log.mu.Lock()
	s.log.closed = true
	s.log.mu.Unlock()
	err := s.flush(ctx)
	if err != nil {
		err = s.notStored(err)
	} else if s.published.Load() {
		// A last look: a concurrent update that replaced this device's
		// entry after its last check would hide what it stored.
		if lerr := s.ensureListed(ctx); lerr != nil {
			err = lerr
		}
	}
	if serr := s.saveCleanupState(); serr != nil {
		fs.Debugf(nil, "jellyfish: save cleanup state: %v", serr)
	}
	// A scheduled flush still running (it took the changes the flush
	// above waited for) ends before the journal and the network close:
	// its last check of the account record must not find the network
	// gone.
	s.timerMu.Lock()
	s.closing = true
	if s.flushTimer != nil && s.flushTimer.Stop() {
		s.timerFlushes.Done()
	}
	s.flushTimer = nil
	s.timerMu.Unlock()
	s.timerFlushes.Wait()
	if s.journal != nil {
		if jerr := s.journal.Close(); jerr != nil {
			err = errors.Join(err, fmt.Errorf("jellyfish: journal: %w", jerr))
		}
	}
	if s.logCache != nil {
		if _, terr := s.logCache.Trim(logCacheMax); terr != nil {
			fs.Debugf(nil, "jellyfish: log cache: %v", terr)
		}
	}
	if cerr := s.net.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	s.unlock()
	return err
}

// notStored turns a failed final flush into an error that names what is
// not on the network yet and where it is kept.
func (s *session) notStored(err error) error {
	paths := s.log.pendingPaths()
	if len(paths) == 0 {
		return err
	}
	var names []string
	for _, p := range paths {
		if len(names) == 5 {
			names = append(names, fmt.Sprintf("and %d more", len(paths)-5))
			break
		}
		names = append(names, fmt.Sprintf("%q", p))
	}
	where := "this process's memory only"
	if s.journal != nil {
		where = "the journal in " + filepath.Join(s.slotDir, journalDir) + "; the next jellyfish command for this account on this machine stores them"
	}
	return fmt.Errorf("jellyfish: %d changes are not stored on the network yet (%s): kept in %s: %w",
		len(paths), strings.Join(names, ", "), where, err)
}

// lockSlot takes the first free device slot under dir. A slot is one
// device: one head record, one writer. Concurrent processes of one account
// on one machine take different slots, so no head ever has two writers,
// and the number of heads stays bounded by how many run at once.
func lockSlot(dir string) (string, func(), error) {
	for i := range 64 {
		slot := filepath.Join(dir, fmt.Sprintf("slot-%d", i))
		if err := os.MkdirAll(slot, 0o700); err != nil {
			return "", nil, fmt.Errorf("jellyfish: data dir: %w", err)
		}
		if unlock, ok := tryLockSlot(slot); ok {
			return slot, unlock, nil
		}
	}
	return "", nil, fmt.Errorf("jellyfish: all 64 device slots under %s are in use", dir)
}

// loadDevice returns the slot's device ID, creating it on first use
// (fresh: an ID drawn now, which nothing in the network can name yet).
func loadDevice(slot string) (d ns.DeviceID, fresh bool, err error) {
	p := filepath.Join(slot, "device")
	b, err := os.ReadFile(p)
	if err == nil {
		return d, false, d.UnmarshalText(bytes.TrimSpace(b))
	}
	if !errors.Is(err, os.ErrNotExist) {
		return d, false, err
	}
	if _, err := rand.Read(d[:]); err != nil {
		return d, false, err
	}
	txt, _ := d.MarshalText()
	return d, true, atomicfile.Write(p, append(txt, '\n'), 0o600)
}

func deviceIDs(pub *account.Public) []ns.DeviceID {
	out := make([]ns.DeviceID, 0, len(pub.Devices))
	for _, d := range pub.Devices {
		out = append(out, ns.DeviceID(d.ID))
	}
	return out
}

func truncateName(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}

// openLogCache opens the slot's log cache, or returns nil (logged) if it
// cannot: the log is then read from the network every time.
func openLogCache(slotDir string, root account.RootKey) *ns.LogCache {
	key, err := logCacheKey(root)
	if err == nil {
		var c *ns.LogCache
		if c, err = ns.OpenLogCache(filepath.Join(slotDir, "log-cache"), key); err == nil {
			return c
		}
	}
	fs.Debugf(nil, "jellyfish: no log cache: %v", err)
	return nil
}

// poll applies what other devices flushed since the last poll and returns
// the paths whose entries changed. Conflicts it finds are resolved at
// once: the losing versions are kept as conflict copies.
func (s *session) poll(ctx context.Context) ([]string, error) {
	changed, err := s.log.poll(ctx)
	s.noteChanges(changed)
	changed = append(changed, s.resolveConflicts(ctx, changed)...)
	return changed, err
}

// resolveConflicts keeps every losing version of a concurrently written
// path among paths as a conflict copy beside it, and writes the winner
// again over all heads, so the path has one head. Two devices resolving
// the same conflict write the same copies and the same winner, which merge
// without a new conflict.
func (s *session) resolveConflicts(ctx context.Context, paths []string) []string {
	if len(paths) == 0 {
		return nil
	}
	cs, err := s.log.view().Conflicts(ctx, paths)
	if err != nil {
		fs.Errorf(nil, "jellyfish: looking for conflicts: %v", err)
	}
	var changed []string
	for _, c := range cs {
		var copies []ns.Entry
		for _, l := range c.Losers {
			cp := l
			cp.Path = ns.ConflictName(c.Path, l.Stamp)
			cp.Bases = nil
			copies = append(copies, cp)
			changed = append(changed, cp.Path)
			fs.Logf(nil, "jellyfish: %q was changed on two devices at once: keeping the other version as %q", c.Path, cp.Path)
		}
		// Copies get fresh bases; the winner supersedes every head.
		if err := s.log.commit(ctx, copies, nil, commitNew); err != nil {
			fs.Errorf(nil, "jellyfish: keep conflict copies of %q: %v", c.Path, err)
			continue
		}
		w := c.Winner
		w.Bases = c.Heads
		if err := s.log.commit(ctx, []ns.Entry{w}, nil, commitKeepBases); err != nil {
			fs.Errorf(nil, "jellyfish: resolve conflict at %q: %v", c.Path, err)
		}
	}
	return changed
}

// logStatus reports this device's log: newest batch and checkpointed and
// collected sequence numbers.
func (s *session) logStatus() map[string]uint64 {
	s.log.mu.RLock()
	defer s.log.mu.RUnlock()
	out := map[string]uint64{"batch": s.log.own.seq, "collected": s.log.own.collected, "log_layer_paths": uint64(s.log.logL.Len())}
	if s.log.own.cp != nil {
		out["checkpoint"] = s.log.own.cp.Seq
	}
	return out
}

// shutdown flushes pending changes.
func (s *session) shutdown(ctx context.Context) error {
	return s.flush(ctx)
}

// localStatus reports what the device slot keeps on disk: the journal of
// changes not yet stored on the network, and the log cache.
func (s *session) localStatus() map[string]int64 {
	out := map[string]int64{}
	if n, err := journal.Size(filepath.Join(s.slotDir, journalDir)); err == nil {
		out["journal_bytes"] = n
	}
	if s.logCache != nil {
		if n, err := s.logCache.Size(); err == nil {
			out["log_cache_bytes"] = n
		}
	}
	return out
}
