package jellyfish

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rclone/rclone/fs"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns/btree"
	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/placement"
	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/karma"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/atomicfile"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
)

// Maintenance keeps what the namespace references stored: it renews the
// lease of every shard at each of its holders (what is no longer
// referenced is left to lapse), audits a few shards of each holder with a
// random leaf proof against the shard ID, and repairs segments whose
// healthy shards fell below the repair threshold: k shards are fetched,
// the missing ones rebuilt (no key needed) and placed on other providers,
// and their new holders written as location records in this device's log
// (merged by union; entries are never rewritten). A holder that does not
// answer is not a loss at once: its shards count as lost only once it has
// failed for lostAfter.

// maintainOptions tune one maintenance round.
type maintainOptions struct {
	// Audits is how many shards of each holder get a leaf proof.
	Audits int
	// LostAfter: a holder failing this long loses its shards.
	LostAfter time.Duration
	// Threshold returns how many healthy shards a segment keeps before
	// it is repaired.
	Threshold func(k, m int) int
	// Repair: false only counts what would be repaired.
	Repair bool
}

// defaultLostAfter is how long a holder may fail (unreachable, refusing)
// before its shards are rebuilt elsewhere: a node off for a day or a
// weekend is not lost.
const defaultLostAfter = 72 * time.Hour

// holderTimeout bounds a round's renewals and audits at one holder: a
// holder that accepts requests and then hangs costs a round this much,
// and counts as not answering. A variable so that tests can shorten it.
var holderTimeout = 2 * time.Minute

// defaultRepairThreshold repairs a segment once fewer than k + m/2 of its
// shards are healthy: half the parity is spent, the other half still
// covers the losses until the next round (docs/design.md §6 has the
// numbers behind it).
func defaultRepairThreshold(k, m int) int { return k + (m+1)/2 }

// maintainStats is what a round did; the backend command prints it.
type maintainStats struct {
	Objects  int `json:"objects"`
	Segments int `json:"segments"`
	Shards   int `json:"shards"`
	Holders  int `json:"holders"`
	Renewed  int `json:"renewed"`
	// RenewedBytes are the bytes of the shards renewed, each holder's
	// copy counted: what providers hold for this account's live data.
	RenewedBytes int64 `json:"renewed_bytes"`
	Missing      int   `json:"missing"`
	Unreachable  int   `json:"holders_unreachable"`
	LostHolders  int   `json:"holders_lost"`
	Audited      int   `json:"audited"`
	AuditFailed  int   `json:"audit_failed"`
	// AuditEvidence counts the failed audits whose holder signed what
	// showed the failure (kept in maintain.json).
	AuditEvidence int `json:"audit_evidence"`
	// Reports counts the kept evidence handed to the providers this round
	// (DeletedPart reports, shard request 11), ReportsRecorded the
	// providers that recorded one (those watching the holder).
	Reports         int `json:"reports_sent"`
	ReportsRecorded int `json:"reports_recorded"`
	// HoldingsStated counts the holders told what this account keeps at
	// each holder renewed this round (shard request 12), HoldingsCounted
	// those that counted it (they vetted a node of the account),
	// HoldingsCurrent those not told because they counted nearly the same
	// lately, HoldingsEntries the entries sent in all.
	HoldingsStated  int    `json:"holdings_stated"`
	HoldingsCounted int    `json:"holdings_counted"`
	HoldingsCurrent int    `json:"holdings_current"`
	HoldingsEntries int    `json:"holdings_entries_sent"`
	Weak            int    `json:"segments_below_threshold"`
	Repaired        int    `json:"segments_repaired"`
	Placed          int    `json:"shards_placed"`
	RepairBytes     int64  `json:"repair_bytes"`
	Unrepairable    int    `json:"segments_unrepairable"`
	RepairFailed    int    `json:"repairs_failed"`
	LeaseRenewedTo  string `json:"lease_until"`
	// SegmentsByCode and RepairedByCode split segments and repairs by
	// their code ("10+20", "2+6").
	SegmentsByCode map[string]int `json:"segments_by_code"`
	RepairedByCode map[string]int `json:"repaired_by_code"`
}

// holderState is what the device remembers between rounds, in the
// slot's maintain.json.
type holderState struct {
	// Failing maps a holder to when it first failed a renewal (Unix
	// seconds): no answer, a refusal, or a receipt that did not verify.
	// None of these is evidence, and none is kept.
	Failing map[string]int64 `json:"failing"`
	// FailingAudits are the failed audits for which the holder signed
	// what showed the failure, least recently failed first, at most
	// maxAuditFailures of them and maxAuditFailuresPerHolder per holder.
	FailingAudits []auditFailure `json:"failing_audits,omitempty"`
	// LastRound is when the last round that renewed every reachable
	// holder ended, and LeaseUntil what it renewed to (Unix seconds).
	LastRound  int64 `json:"last_round,omitempty"`
	LeaseUntil int64 `json:"lease_until,omitempty"`
	// StatedBase is the holdings statement every holder was last told,
	// or would have been had the account listed a node (holder → shard
	// bytes; its holders are those rounds renewed since, nearly all
	// those the last round renewed), StatedTo when each holder last
	// counted one (Unix seconds): stateHoldings tells a holder again
	// only when the statement moved away from the base or restateEvery
	// passed.
	StatedBase map[string]int64 `json:"stated_base,omitempty"`
	StatedTo   map[string]int64 `json:"stated_to,omitempty"`
}

const maintainStateFile = "maintain.json"

// Bounds of the audit evidence kept in maintain.json. An entry holds at
// most two signed answers; a NotFound is a few hundred bytes, a proof
// answer with its one-leaf proof about 17 KiB (23 KiB in JSON), so the
// evidence stays at about 1.5 MiB at most however many holders fail.
const (
	maxAuditFailures          = 32
	maxAuditFailuresPerHolder = 4
)

// auditFailure is a shard a holder failed the audit of, with the holder's
// signed answers from the first failure and the latest.
type auditFailure struct {
	Holder string         `json:"holder"` // peer ID
	Shard  string         `json:"shard"`  // shard ID, hex
	Count  int            `json:"count"`  // failed audits with evidence
	First  auditEvidence  `json:"first"`
	Latest *auditEvidence `json:"latest,omitempty"` // from the second failure on
	// Reported is when the evidence was handed to the providers (Unix
	// seconds; 0: not yet), RecordedBy how many recorded it.
	Reported   int64 `json:"reported,omitempty"`
	RecordedBy int   `json:"recorded_by,omitempty"`
}

// auditEvidence is what anyone can check offline to see that a holder
// failed an audit: its signed answer, and its signed renewal of the same
// round showing it claimed to hold the shard then.
type auditEvidence struct {
	At int64 `json:"at"` // this device's clock, Unix seconds
	// Answer is a marshalled shardproto.NotFoundAnswer, or a
	// shardproto.ProofAnswer whose proofs do not verify against the shard
	// ID (shardproto.VerifyAuditAnswer checks either).
	Answer []byte `json:"answer"`
	// Renewal is a marshalled shardproto.RenewInclusion: the holder's
	// receipt for the renewal of that round and the shard's place in it
	// (shardproto.VerifyRenewInclusion). Absent if the renewal did not
	// cover the shard.
	Renewal []byte `json:"renewal,omitempty"`
}

func (f *auditFailure) last() int64 {
	if f.Latest != nil {
		return f.Latest.At
	}
	return f.First.At
}

// recordAudit keeps the evidence of a failed audit: as the latest of an
// entry for the same holder and shard, or in a new entry that replaces,
// when the holder or the list is at its cap, the least recently failed
// entry of the holder or of the list.
func (hs *holderState) recordAudit(holder peer.ID, id codec.ShardID, ev auditEvidence) {
	h, sh := holder.String(), id.String()
	for i := range hs.FailingAudits {
		if f := &hs.FailingAudits[i]; f.Holder == h && f.Shard == sh {
			f.Count++
			f.Latest = &ev
			hs.sortAudits()
			return
		}
	}
	evict, mine := -1, 0
	for i := range hs.FailingAudits {
		if f := &hs.FailingAudits[i]; f.Holder == h {
			mine++
			if evict < 0 || f.last() < hs.FailingAudits[evict].last() {
				evict = i
			}
		}
	}
	if mine < maxAuditFailuresPerHolder {
		evict = -1
		if len(hs.FailingAudits) >= maxAuditFailures {
			evict = 0 // sorted: the least recently failed
		}
	}
	if evict >= 0 {
		hs.FailingAudits = slices.Delete(hs.FailingAudits, evict, evict+1)
	}
	hs.FailingAudits = append(hs.FailingAudits, auditFailure{Holder: h, Shard: sh, Count: 1, First: ev})
	hs.sortAudits()
}

func (hs *holderState) sortAudits() {
	slices.SortStableFunc(hs.FailingAudits, func(a, b auditFailure) int { return cmp.Compare(a.last(), b.last()) })
}

// judgeAudit says whether an audit's error shows the holder failed it
// and, when the holder signed what shows it, returns that evidence with
// the holder's renewal of the shard from renewals. A timeout, a refused
// dial or any other unanswered request is no failure and no evidence; an
// unsigned "not found" or a bad signature is a failure without evidence.
func judgeAudit(err error, id codec.ShardID, renewals []shardproto.Renewal, now time.Time) (failed bool, ev *auditEvidence) {
	var nf *shardproto.NotFoundError
	var bp *shardproto.BadProofError
	switch {
	case errors.As(err, &nf):
		ev = &auditEvidence{Answer: nf.Answer.Marshal()}
	case errors.As(err, &bp):
		ev = &auditEvidence{Answer: bp.Answer.Marshal()}
	case errors.Is(err, shardproto.ErrNotFound), errors.Is(err, shardproto.ErrIntegrity), errors.Is(err, shardproto.ErrBadReceipt):
		return true, nil
	default:
		return false, nil
	}
	ev.At = now.Unix()
	for _, r := range renewals {
		if ri, err := r.Inclusion(id); err == nil {
			ev.Renewal = ri.Marshal()
			break
		}
	}
	return true, ev
}

func (s *session) loadHolderState() holderState {
	st := holderState{Failing: map[string]int64{}}
	b, err := os.ReadFile(filepath.Join(s.slotDir, maintainStateFile))
	if err == nil {
		if err := json.Unmarshal(b, &st); err != nil {
			fs.Debugf(nil, "jellyfish: ignoring %s: %v", maintainStateFile, err)
		}
	}
	if st.Failing == nil {
		st.Failing = map[string]int64{}
	}
	return st
}

func (s *session) saveHolderState(st holderState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(s.slotDir, maintainStateFile), b, 0o600)
}

// liveObjects returns every object the namespace needs, each once: the
// contents of live entries (conflicting versions included), packs, the
// nodes of every device's latest checkpoint and every device's batches
// after its collected mark.
func (s *session) liveObjects(ctx context.Context) ([]*ObjRef, error) {
	// Other devices' latest changes first: what they stored is live too.
	if _, err := s.poll(ctx); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []*ObjRef
	add := func(ref *ObjRef) {
		b, err := ref.Marshal()
		if err != nil || seen[string(b)] {
			return
		}
		seen[string(b)] = true
		out = append(out, ref)
	}
	addRaw := func(b []byte) {
		if len(b) == 0 || seen[string(b)] {
			return
		}
		if ref, err := UnmarshalObjRef(b); err == nil {
			seen[string(b)] = true
			out = append(out, ref)
		}
	}
	if err := s.contentObjects(ctx, add); err != nil {
		return nil, err
	}
	// The log: what any device loading the namespace may read.
	l := s.log
	devs, err := l.heads.Devices(ctx)
	if err != nil {
		return nil, err
	}
	tips, failed, err := l.readTipsPartial(ctx, devs)
	if err != nil {
		return nil, err
	}
	for d, t := range failed {
		// What it wrote since this device last read it cannot be
		// renewed or repaired until its newest batch reads again.
		fs.Errorf(nil, "jellyfish: maintenance: device %s: %v", d, t.err)
	}
	roots := map[string]bool{}
	for _, t := range tips {
		if t.head.Tip == nil {
			continue
		}
		addRaw(t.head.Tip)
		if t.batch != nil && t.batch.Checkpoint != nil {
			roots[string(t.batch.Checkpoint.Root)] = true
		}
		bs, err := l.fetchBatches(ctx, t, t.collected())
		if err != nil {
			return nil, err
		}
		// Every batch after the collected mark is named by a later one
		// (in its list of earlier batches, or as its one predecessor) or
		// is the tip.
		for _, b := range bs {
			for _, p := range b.Prevs {
				if p.Seq > t.collected() {
					addRaw(p.Ref)
				}
			}
			if b.PrevSeq > t.collected() {
				addRaw(b.Prev)
			}
		}
	}
	for root := range roots {
		tr, err := btree.New(l.treeConfig(), []byte(root))
		if err != nil {
			return nil, err
		}
		if err := tr.Walk(ctx, func(ref []byte, _ int) error { addRaw(ref); return nil }); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// slotRef is one shard of a live object and where it is believed held.
type slotRef struct {
	obj, seg, idx int
	id            codec.ShardID
}

// shardHealth is what a round learnt of one shard at one holder.
type shardHealth uint8

const (
	healthUnknown shardHealth = iota // holder did not answer (yet)
	healthGood                       // renewed and, if audited, proved
	healthLost                       // missing, failed its audit, or holder lost
)

// sessionMaintainEvery: a session starts a maintenance round in the
// background when the last one this device finished is older than this,
// so an account used at least once in a lease (90 days) keeps its leases
// without a node. A round cut short by the session's end is run again by
// the next session.
const sessionMaintainEvery = 7 * 24 * time.Hour

// maintainIfDue runs a maintenance round when this device's last one is
// older than sessionMaintainEvery.
func (s *session) maintainIfDue(ctx context.Context) {
	hs := s.loadHolderState()
	if hs.LastRound == 0 {
		// A new device: what it finds was stored or maintained lately;
		// its first round is due a week from now.
		hs.LastRound = s.now().Unix()
		if err := s.saveHolderState(hs); err != nil {
			fs.Debugf(nil, "jellyfish: maintenance state: %v", err)
		}
		return
	}
	// A last round in the future was stamped by a clock that has gone
	// back since (one ahead by more than the network corrects): waiting
	// for it could outlast the leases, so the round is due now.
	if age := s.now().Sub(time.Unix(hs.LastRound, 0)); age >= 0 && age < sessionMaintainEvery {
		return
	}
	if _, err := s.maintain(ctx, maintainOptions{Audits: 1, Repair: true}); err != nil && ctx.Err() == nil {
		fs.Logf(nil, "jellyfish: maintenance: %v", err)
	}
}

// maintain runs one maintenance round.
func (s *session) maintain(ctx context.Context, opt maintainOptions) (maintainStats, error) {
	var st maintainStats
	if opt.LostAfter == 0 {
		opt.LostAfter = defaultLostAfter
	}
	if opt.Threshold == nil {
		opt.Threshold = defaultRepairThreshold
	}
	objs, err := s.liveObjects(ctx)
	if err != nil {
		return st, fmt.Errorf("jellyfish: maintenance: listing what the namespace uses: %w", err)
	}
	st.Objects = len(objs)
	st.SegmentsByCode, st.RepairedByCode = map[string]int{}, map[string]int{}
	// Every holder of every shard: the reference's, then locations.
	byHolder := map[peer.ID][]slotRef{}
	for oi, ref := range objs {
		code := fmt.Sprintf("%d+%d", ref.Layout.K, ref.Layout.M)
		for seg := range ref.Layout.Segments {
			st.Segments++
			st.SegmentsByCode[code]++
			for idx, id := range ref.Layout.Segments[seg].IDs {
				st.Shards++
				sr := slotRef{oi, seg, idx, id}
				if h := ref.HolderOf(seg, idx); h != "" {
					byHolder[h] = append(byHolder[h], sr)
				}
				if s.store.locate != nil {
					for _, h := range s.store.locate(ctx, id) {
						if h != ref.HolderOf(seg, idx) {
							byHolder[h] = append(byHolder[h], sr)
						}
					}
				}
			}
		}
	}
	st.Holders = len(byHolder)
	now := s.now()
	until := now.Add(s.store.lease)
	st.LeaseRenewedTo = until.UTC().Format(time.RFC3339)
	hs := s.loadHolderState()
	type key struct {
		slotRef
		holder peer.ID
	}
	var mu sync.Mutex
	health := map[key]shardHealth{}
	set := func(k key, h shardHealth) {
		mu.Lock()
		health[k] = h
		mu.Unlock()
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	renewedAt := map[peer.ID]int64{} // shard bytes renewed at each holder
	for holder, refs := range byHolder {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			// A dead holder's dial times out; one that answers slowly
			// is not waited for longer than this.
			ctx, cancel := context.WithTimeout(ctx, holderTimeout)
			defer cancel()
			ids := make([]codec.ShardID, 0, len(refs))
			for _, r := range refs {
				ids = append(ids, r.id)
			}
			missing, renewals, err := s.store.shards.RenewReceipts(ctx, holder, ids, until)
			mu.Lock()
			if err != nil {
				first, ok := hs.Failing[holder.String()]
				if !ok || first > now.Unix() {
					// New, or stamped by a clock that has gone back
					// since: counted from now, or the holder would not
					// be lost (nor its shards rebuilt) until the clock
					// caught up.
					first = now.Unix()
					hs.Failing[holder.String()] = first
				}
				lost := now.Sub(time.Unix(first, 0)) >= opt.LostAfter
				if lost {
					st.LostHolders++
				} else {
					st.Unreachable++
				}
				mu.Unlock()
				fs.Debugf(nil, "jellyfish: maintenance: holder %s: %v (failing since %v)", holder.ShortString(), err, time.Unix(first, 0).UTC())
				h := healthUnknown
				if lost {
					h = healthLost
				}
				for _, r := range refs {
					set(key{r, holder}, h)
				}
				return
			}
			delete(hs.Failing, holder.String())
			gone := map[codec.ShardID]bool{}
			for _, id := range missing {
				gone[id] = true
			}
			st.Renewed += len(ids) - len(missing)
			st.Missing += len(missing)
			for _, r := range refs {
				if !gone[r.id] {
					b := int64(shardSize(objs[r.obj].Layout, r.seg))
					st.RenewedBytes += b
					renewedAt[holder] += b
				}
			}
			mu.Unlock()
			var held []slotRef
			for _, r := range refs {
				if gone[r.id] {
					set(key{r, holder}, healthLost)
				} else {
					set(key{r, holder}, healthGood)
					held = append(held, r)
				}
			}
			// Audits: a random leaf of a few shards it says it holds.
			for _, i := range mrand.Perm(len(held))[:min(opt.Audits, len(held))] {
				r := held[i]
				size := shardSize(objs[r.obj].Layout, r.seg)
				leaf := mrand.Int64N((int64(size) + codec.LeafSize - 1) / codec.LeafSize)
				_, _, err := s.store.shards.Proof(ctx, holder, r.id, []int64{leaf})
				failed, ev := judgeAudit(err, r.id, renewals, now)
				mu.Lock()
				st.Audited++
				if failed {
					st.AuditFailed++
					kept := ""
					if ev != nil {
						st.AuditEvidence++
						hs.recordAudit(holder, r.id, *ev)
						kept = " (its signed answer is kept)"
					}
					mu.Unlock()
					fs.Logf(nil, "jellyfish: maintenance: holder %s failed the audit of shard %s: %v%s", holder.ShortString(), r.id.Short(), err, kept)
					set(key{r, holder}, healthLost)
					continue
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ctx.Err() == nil {
		hs.LastRound, hs.LeaseUntil = now.Unix(), until.Unix()
	}
	if err := s.saveHolderState(hs); err != nil {
		fs.Debugf(nil, "jellyfish: maintenance state: %v", err)
	}
	// Segments below the threshold.
	type segKey struct{ obj, seg int }
	good := map[segKey]map[int][]peer.ID{}
	unknown := map[segKey]map[int]bool{}
	for k, h := range health {
		sk := segKey{k.obj, k.seg}
		switch h {
		case healthGood:
			if good[sk] == nil {
				good[sk] = map[int][]peer.ID{}
			}
			good[sk][k.idx] = append(good[sk][k.idx], k.holder)
		case healthUnknown:
			if unknown[sk] == nil {
				unknown[sk] = map[int]bool{}
			}
			unknown[sk][k.idx] = true
		}
	}
	if ctx.Err() == nil && s.stateHoldings(ctx, &hs, renewedAt, &st) {
		if err := s.saveHolderState(hs); err != nil {
			fs.Debugf(nil, "jellyfish: maintenance state: %v", err)
		}
	}
	providers, perr := s.net.Providers(ctx)
	if perr == nil && s.reportEvidence(ctx, &hs, providers, now, &st) {
		if err := s.saveHolderState(hs); err != nil {
			fs.Debugf(nil, "jellyfish: maintenance state: %v", err)
		}
	}
	var locs []ns.Location
	var errs []error
	for oi, ref := range objs {
		for seg := range ref.Layout.Segments {
			sk := segKey{oi, seg}
			k, m := ref.Layout.K, ref.Layout.M
			healthy := len(good[sk])
			counted := healthy
			for idx := range unknown[sk] {
				if good[sk][idx] == nil {
					counted++
				}
			}
			if counted >= opt.Threshold(k, m) {
				continue
			}
			st.Weak++
			if healthy < k {
				st.Unrepairable++
				fs.Errorf(nil, "jellyfish: maintenance: a segment has %d healthy shards of the %d it needs (%d more holders not answering): it cannot be repaired now", healthy, k, counted-healthy)
				continue
			}
			if !opt.Repair || perr != nil {
				continue
			}
			placed, n, err := s.repairSegment(ctx, ref, seg, good[sk], unknown[sk], providers)
			if err != nil {
				st.RepairFailed++
				errs = append(errs, err)
				continue
			}
			st.Repaired++
			st.RepairedByCode[fmt.Sprintf("%d+%d", k, m)]++
			st.Placed += len(placed)
			st.RepairBytes += n
			locs = append(locs, placed...)
		}
	}
	if len(locs) > 0 {
		s.recordLocations(locs)
		if err := s.flush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("recording repaired shards' holders: %w", err))
		}
	}
	if perr != nil && st.Weak > st.Unrepairable {
		errs = append(errs, fmt.Errorf("no providers to repair onto: %w", perr))
	}
	fs.Infof(nil, "jellyfish: maintenance: %d objects, %d shards at %d holders; %d renewed, %d missing, %d holders not answering, %d lost; %d audits, %d failed (%d with signed evidence kept); %d segments repaired (%d shards, %d bytes), %d cannot be",
		st.Objects, st.Shards, st.Holders, st.Renewed, st.Missing, st.Unreachable, st.LostHolders, st.Audited, st.AuditFailed, st.AuditEvidence, st.Repaired, st.Placed, st.RepairBytes, st.Unrepairable)
	return st, errors.Join(uniqueErrs(errs)...)
}

// shardSize is the length of every shard of segment seg of l.
func shardSize(l *codec.Layout, seg int) int {
	return codec.HeaderSize + (l.Segments[seg].CipherLen+l.K-1)/l.K
}

// repairSegment rebuilds the shards of segment seg that have no healthy
// holder (and whose holder is not merely slow to answer) from k healthy
// ones, places each on a provider holding nothing of the segment, and
// returns their locations and the bytes stored.
func (s *session) repairSegment(ctx context.Context, ref *ObjRef, seg int, good map[int][]peer.ID, unknown map[int]bool, providers []peer.ID) ([]ns.Location, int64, error) {
	info := &ref.Layout.Segments[seg]
	k := ref.Layout.K
	want := []int{}
	busy := map[peer.ID]bool{}
	for idx := range info.IDs {
		if hs := good[idx]; len(hs) > 0 {
			for _, h := range hs {
				busy[h] = true
			}
			continue
		}
		if unknown[idx] {
			continue
		}
		want = append(want, idx)
	}
	if len(want) == 0 {
		return nil, 0, nil
	}
	size := shardSize(ref.Layout, seg)
	var shards [][]byte
	idxs := make([]int, 0, len(good))
	for idx := range good {
		idxs = append(idxs, idx)
	}
	mrand.Shuffle(len(idxs), func(i, j int) { idxs[i], idxs[j] = idxs[j], idxs[i] })
	for _, idx := range idxs {
		if len(shards) == k {
			break
		}
		for _, h := range good[idx] {
			b, err := s.store.getShard(ctx, h, info.IDs[idx], size)
			if err == nil {
				shards = append(shards, b)
				break
			}
			fs.Debugf(nil, "jellyfish: repair: shard %d from %s: %v", idx, h.ShortString(), err)
		}
	}
	rebuilt, err := codec.RebuildShards(ref.Layout, seg, shards, want)
	if err != nil {
		return nil, 0, fmt.Errorf("jellyfish: repair: %w", err)
	}
	// Targets: what a placement plan picks with the shards the segment
	// has counted on their holders (and those not answering, which may
	// still hold theirs), so the rebuilt shards go to nodes, owners and
	// networks holding least of it; the holders that lost theirs are left
	// out. The salt starts the plan at a random node.
	plan := placement.NewPlan(s.store.groupsOf(providers), placement.GroupCap(k, ref.Layout.M), mrand.Uint64(), 0, len(info.IDs))
	plan.LimitRelayed(ref.Layout.M)
	index := make(map[peer.ID]int, len(providers))
	for j, p := range providers {
		index[p] = j
	}
	for idx := range info.IDs {
		switch hs, h := good[idx], ref.HolderOf(seg, idx); {
		case len(hs) > 0:
			for _, g := range hs {
				if j, ok := index[g]; ok {
					plan.Add(j)
				}
			}
		case unknown[idx]:
			if j, ok := index[h]; ok {
				plan.Add(j)
			}
		default:
			if j, ok := index[h]; ok {
				plan.Exclude(j)
			}
		}
	}
	lease := s.now().Add(s.store.lease)
	var locs []ns.Location
	var stored int64
	for n, idx := range want {
		id := info.IDs[idx]
		for try := 0; try < 3; try++ {
			j, ok := plan.Next()
			if !ok {
				break
			}
			p := providers[j]
			_, err := s.store.shards.RepairReader(ctx, p, id, int64(len(rebuilt[n])), bytes.NewReader(rebuilt[n]), lease)
			if err == nil {
				locs = append(locs, ns.Location{Shard: ns.ShardID(id), Holder: []byte(p)})
				stored += int64(len(rebuilt[n]))
				break
			}
			plan.Remove(j)
			plan.Exclude(j)
			fs.Debugf(nil, "jellyfish: repair: place shard %s on %s: %v", id.Short(), p.ShortString(), err)
		}
	}
	if len(locs) == 0 {
		return nil, 0, fmt.Errorf("jellyfish: repair: no provider took any of %d rebuilt shards", len(want))
	}
	return locs, stored, nil
}

// lifetimeStatus says, for `backend status`, how long the account lasts if
// no device and no node comes back: when its records expire (the earliest
// of the login, account and this device's head record) and until when
// this device's last maintenance round renewed the leases, and how many
// nodes the account record lists (a node run for the account re-signs
// records; one run with --maintain renews leases too; status tells which
// of them are linked both ways).
func (s *session) lifetimeStatus(ctx context.Context) map[string]any {
	out := map[string]any{}
	keys := []string{account.AccountKey(s.acct.ID()), account.HeadKey(s.acct.ID(), account.DeviceID(s.device))}
	if l := s.acct.LoginKey(); l != nil {
		if k, err := account.LoginKey(l.GetPublic()); err == nil {
			keys = append(keys, k)
		}
	}
	var first time.Time
	for _, k := range keys {
		raw, err := s.net.Records().Get(ctx, k)
		if err != nil {
			continue // a device without a head yet
		}
		rec, err := account.VerifyOwned(k, raw)
		if err != nil {
			continue
		}
		if first.IsZero() || rec.Expires.Before(first) {
			first = rec.Expires
		}
	}
	now := s.now()
	if !first.IsZero() {
		out["records_expire"] = first.UTC().Format(time.RFC3339)
	}
	hs := s.loadHolderState()
	if hs.LeaseUntil > 0 {
		out["leases_renewed_until"] = time.Unix(hs.LeaseUntil, 0).UTC().Format(time.RFC3339)
		out["last_maintenance"] = time.Unix(hs.LastRound, 0).UTC().Format(time.RFC3339)
	} else {
		out["last_maintenance"] = "never on this device"
	}
	nodes := 0
	if pub, err := s.mgr.Lookup(ctx, s.acct.ID()); err == nil {
		nodes = len(pub.Nodes)
	}
	out["listed_nodes"] = nodes
	switch {
	case !first.IsZero() && !first.After(now):
		out["warning"] = fmt.Sprintf("the account's records expired on %s: the network may forget the account; this device publishes them again while it runs", first.UTC().Format(time.DateOnly))
	case nodes == 0 && !first.IsZero():
		days := int(first.Sub(now).Hours() / 24)
		out["warning"] = fmt.Sprintf("the account record lists no node: if no device uses it for %d days its records expire and the network forgets it (its files with it); a device that used it can bring it back while it keeps its slot. Run `jellyfish node --account-config ... --maintain jellyfish:` to keep it alive", days)
	}
	return out
}

// reporter is the optional ability of a shardIO to hand a provider
// evidence that a holder deleted a shard it kept: shardproto.Client.Report.
type reporter interface {
	Report(ctx context.Context, p peer.ID, r karma.DeletedPart) (string, error)
}

// The network's shard client states holdings and hands on reports.
var (
	_ holdingser = (*shardproto.Client)(nil)
	_ reporter   = (*shardproto.Client)(nil)
)

// holdingser is the optional ability of a shardIO to state to a provider
// what holders keep for the account: shardproto.Client.Holdings.
type holdingser interface {
	Holdings(ctx context.Context, p peer.ID, hs []shardproto.Holding) (string, error)
}

// Rates of holdings statements. A holder keeps an entry for
// provider.HoldingsTTL (15 days) unless stated again.
const (
	// holdingsProbe is the most entries the first request to a holder
	// carries: a holder that does not count the account's word (it vetted
	// no node of it) says so after these, and is told no more.
	holdingsProbe = 32
	// restateEvery is how long a holder that counted a statement is not
	// told it again while it says nearly the same (holdingsDrift): rounds
	// run daily where a node maintains the account, and a statement a day
	// to each holder, naming every holder, is traffic that grows with the
	// square of the holders. Three chances within the holders' TTL.
	restateEvery = 5 * 24 * time.Hour
	// holdingsDrift is how far an entry may move from the statement all
	// holders were last told (a fraction of it) and still count as the
	// same; holdersChurn how many holders (a fraction of those it named)
	// may have come or gone.
	holdingsDrift = 1.0 / 8
	holdersChurn  = 1.0 / 16
)

// stateHoldings tells the holders renewed this round what the account
// keeps at each of them (the shard bytes renewed there; 16 holders at a
// time, 10 s each). A holder that vetted a node of the account counts it
// toward the other holders' credit (docs/design.md §6.8): this is how a
// node that keeps others' shards earns more than the floor. Statements of
// more than shardproto.MaxHoldings holders go in several requests.
//
// It states only what can count: nothing for an account whose record
// lists no node (no holder counts a word that no vetted node backs), no
// more than a probe's worth to a holder that does not count it, and
// nothing to a holder that counted it less than restateEvery ago while
// the statement stays near the one every holder was told (hs.StatedBase,
// nearBase). It reports whether it changed hs.
func (s *session) stateHoldings(ctx context.Context, hs *holderState, renewedAt map[peer.ID]int64, st *maintainStats) bool {
	hi, ok := s.store.shards.(holdingser)
	if !ok || len(renewedAt) == 0 {
		return false
	}
	all := make([]shardproto.Holding, 0, len(renewedAt))
	for h, b := range renewedAt {
		if b > 0 {
			all = append(all, shardproto.Holding{Holder: h, Bytes: b})
		}
	}
	slices.SortFunc(all, func(a, b shardproto.Holding) int { return cmp.Compare(a.Holder, b.Holder) })
	now := s.now()
	changed := false
	if hs.nearBase(all) {
		// New holders join the base: each is told below, as a holder
		// that has not counted it yet; the others learn of them when it
		// is told again.
		for _, h := range all {
			if _, ok := hs.StatedBase[h.Holder.String()]; !ok {
				hs.StatedBase[h.Holder.String()], changed = h.Bytes, true
			}
		}
	} else {
		hs.StatedBase = make(map[string]int64, len(all))
		for _, h := range all {
			hs.StatedBase[h.Holder.String()] = h.Bytes
		}
		hs.StatedTo, changed = nil, true
	}
	if pub, err := s.mgr.Lookup(ctx, s.acct.ID()); err == nil && len(pub.Nodes) == 0 {
		fs.Debugf(nil, "jellyfish: maintenance: no holdings stated: the account record lists no node, so no holder would count them")
		return changed
	}
	var holders []peer.ID
	for _, h := range all {
		// A time in the future was stamped by a clock that has gone back
		// since: the holder is told again.
		at, ok := hs.StatedTo[h.Holder.String()]
		if age := now.Sub(time.Unix(at, 0)); ok && age >= 0 && age < restateEvery {
			st.HoldingsCurrent++
			continue
		}
		holders = append(holders, h.Holder)
	}
	// Holders no longer named are forgotten.
	for h := range hs.StatedTo {
		if _, ok := hs.StatedBase[h]; !ok {
			delete(hs.StatedTo, h)
			changed = true
		}
	}
	var mu sync.Mutex
	askEach(ctx, holders, func(ctx context.Context, p peer.ID) {
		counted, sent := false, 0
		for len(all[sent:]) > 0 {
			n := shardproto.MaxHoldings
			if sent == 0 {
				n = holdingsProbe
			}
			part := all[sent:][:min(n, len(all)-sent)]
			msg, err := hi.Holdings(ctx, p, part)
			if err != nil {
				fs.Debugf(nil, "jellyfish: maintenance: holdings to %s: %v", p.ShortString(), err)
				break
			}
			sent += len(part)
			if counted = strings.HasPrefix(msg, "counted"); !counted {
				break
			}
		}
		mu.Lock()
		defer mu.Unlock()
		st.HoldingsEntries += sent
		if sent > 0 {
			st.HoldingsStated++
		}
		if counted && sent == len(all) {
			st.HoldingsCounted++
			if hs.StatedTo == nil {
				hs.StatedTo = map[string]int64{}
			}
			hs.StatedTo[p.String()], changed = now.Unix(), true
		}
	})
	fs.Debugf(nil, "jellyfish: maintenance: told %d holders what each keeps for the account (%d entries); %d counted it; %d had it already", st.HoldingsStated, st.HoldingsEntries, st.HoldingsCounted, st.HoldingsCurrent)
	return changed
}

// lastHolders returns the holders this device's recent maintenance rounds
// renewed (the base's: nearly all those the last round renewed, and at
// most a holdersChurn of holders that have gone since), sorted.
func (s *session) lastHolders() []string {
	hs := s.loadHolderState()
	out := make([]string, 0, len(hs.StatedBase))
	for h := range hs.StatedBase {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}

// nearBase reports whether the statement all says nearly what
// hs.StatedBase does: each holder both name within holdingsDrift of its
// base entry, and the holders only one of them names (new this round, or
// not renewed this round: in a large account some holder is always down)
// at most a holdersChurn of the base.
func (hs *holderState) nearBase(all []shardproto.Holding) bool {
	if len(hs.StatedBase) == 0 {
		return false
	}
	both, churn := 0, 0
	for _, h := range all {
		b, ok := hs.StatedBase[h.Holder.String()]
		if !ok {
			churn++
			continue
		}
		both++
		if math.Abs(float64(h.Bytes-b)) > float64(b)*holdingsDrift {
			return false
		}
	}
	churn += len(hs.StatedBase) - both
	return float64(churn) <= float64(len(hs.StatedBase))*holdersChurn
}

// reportEvidence hands every failed audit kept with the holder's signed
// renewal and not reported yet to every provider (16 at a time, 10 s
// each): those that watch the holder, because an account it is linked to
// stores on them, count the deleted shard against it (docs/design.md
// §6.12). An entry counts as reported once a provider answered, whether it
// recorded it or watches no such holder; it is sent again next round when
// none answered. It reports whether it changed hs.
func (s *session) reportEvidence(ctx context.Context, hs *holderState, providers []peer.ID, now time.Time, st *maintainStats) bool {
	rp, ok := s.store.shards.(reporter)
	if !ok || len(providers) == 0 {
		return false
	}
	changed := false
	for i := range hs.FailingAudits {
		f := &hs.FailingAudits[i]
		if f.Reported != 0 {
			continue
		}
		ev := f.First
		if f.Latest != nil && len(f.Latest.Renewal) > 0 {
			ev = *f.Latest
		}
		id, err := codec.ParseShardID(f.Shard)
		holder, herr := peer.Decode(f.Holder)
		if err != nil || herr != nil || len(ev.Renewal) == 0 {
			continue // no renewal of the shard: not evidence for others
		}
		r := karma.DeletedPart{Holder: string(holder), Shard: karma.ShardRef(id), Receipt: ev.Renewal, Answer: ev.Answer}
		var (
			mu                 sync.Mutex
			answered, recorded int
		)
		others := slices.DeleteFunc(slices.Clone(providers), func(p peer.ID) bool { return p == holder })
		askEach(ctx, others, func(ctx context.Context, p peer.ID) {
			msg, err := rp.Report(ctx, p, r)
			if err != nil {
				fs.Debugf(nil, "jellyfish: maintenance: report of %s to %s: %v", holder.ShortString(), p.ShortString(), err)
				return
			}
			mu.Lock()
			answered++
			if msg == "recorded" {
				recorded++
			}
			mu.Unlock()
		})
		st.Reports++
		st.ReportsRecorded += recorded
		if answered > 0 {
			f.Reported, f.RecordedBy, changed = now.Unix(), recorded, true
			fs.Logf(nil, "jellyfish: maintenance: reported holder %s's failed audit of shard %s to %d providers, %d of which watch it", holder.ShortString(), id.Short(), answered, recorded)
		}
	}
	return changed
}
