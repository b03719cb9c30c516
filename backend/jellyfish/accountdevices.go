package jellyfish

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
)

// DeviceStatus is one device of an account's record, as
// `jellyfish account devices` shows it.
type DeviceStatus struct {
	ID   account.DeviceID
	Name string
	// Seen is when the device was last in use, as its head says; zero if
	// it has no head (it never used the backend: a `jellyfish account
	// login` device) or one that does not say.
	Seen time.Time
	// Batch is the device's newest log batch; 0 if it never wrote.
	Batch uint64
	// Held: the checkpoints the other devices load hold its changes, so
	// it can leave the account record without any going missing.
	Held bool
	// Err says why its log could not be read, if it could not.
	Err error
}

// ErrNotHeld: a device's changes are in no checkpoint the other devices
// load, so removing it would hide them.
var ErrNotHeld = errors.New("jellyfish: its changes are in no checkpoint the other devices load yet")

// accountView reads an account's devices and their logs, as no device of
// its own (the account commands' short-lived client node).
type accountView struct {
	acct  *account.Account
	mgr   *account.Manager
	heads *accountHeads
	log   *nsLog
}

func newAccountView(nw network, a *account.Account) (*accountView, error) {
	shards, err := nw.Shards(a.Identity)
	if err != nil {
		return nil, err
	}
	store := &objectStore{shards: shards, providers: nw.Providers, groups: groupsOf(nw), slots: newTransferSlots(maxTransfers, maxHolderTransfers), repairs: &repairQueue{}, now: time.Now}
	enc, err := codec.NewEncoder(codec.Params{K: 1, M: 1, SegmentSize: codec.DefaultSegmentSize, Compression: codec.CompressZstd})
	if err != nil {
		return nil, err
	}
	mgr := account.NewManager(nw.Records())
	heads, err := newAccountHeads(a, mgr, nw.Records(), ns.DeviceID{}, "")
	if err != nil {
		return nil, err
	}
	log := newNSLog(ns.DeviceID{}, &metaObjects{store: store, enc: enc}, heads, ns.NewClock(nil), logConfig{})
	return &accountView{acct: a, mgr: mgr, heads: heads, log: log}, nil
}

// devices returns the account record's devices, with each one's head and
// newest batch where they could be read.
func (v *accountView) devices(ctx context.Context) (*account.Public, map[ns.DeviceID]*deviceTip, map[ns.DeviceID]error, error) {
	pub, err := v.mgr.Lookup(ctx, v.acct.ID())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read account record: %w", err)
	}
	devs := deviceIDs(pub)
	tips := make([]*deviceTip, len(devs))
	errs := make([]error, len(devs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, d := range devs {
		g.Go(func() error {
			h, err := v.heads.Read(gctx, d)
			if err != nil || h == nil {
				errs[i] = err
				return nil
			}
			t := &deviceTip{head: h}
			if h.Tip != nil {
				if t.batch, err = v.log.readBatch(gctx, h.Tip); err != nil {
					errs[i] = fmt.Errorf("newest batch: %w", err)
					return nil
				}
			}
			tips[i] = t
			return nil
		})
	}
	g.Wait()
	out, bad := map[ns.DeviceID]*deviceTip{}, map[ns.DeviceID]error{}
	for i, d := range devs {
		if tips[i] != nil {
			out[d] = tips[i]
		}
		if errs[i] != nil {
			bad[d] = errs[i]
		}
	}
	return pub, out, bad, ctx.Err()
}

// ListDevices returns the devices of account a, read over client c.
func ListDevices(ctx context.Context, c *client.Client, a *account.Account) ([]DeviceStatus, error) {
	return listDevices(ctx, &clientNet{c: c, now: time.Now}, a)
}

func listDevices(ctx context.Context, nw network, a *account.Account) ([]DeviceStatus, error) {
	v, err := newAccountView(nw, a)
	if err != nil {
		return nil, err
	}
	pub, tips, bad, err := v.devices(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]DeviceStatus, 0, len(pub.Devices))
	for _, pd := range pub.Devices {
		d := ns.DeviceID(pd.ID)
		st := DeviceStatus{ID: pd.ID, Name: pd.Name, Err: bad[d]}
		if t := tips[d]; t != nil {
			st.Seen, st.Batch = deviceSeen(t.head), t.head.BatchSeq
		}
		if st.Err == nil {
			ok, _ := retirable(tips, []ns.DeviceID{d})
			st.Held = len(ok) == 1
		}
		out = append(out, st)
	}
	return out, nil
}

// FindDevice returns the device of devs that which names: its ID or the
// start of its hex form (at least 4 digits), or its name.
func FindDevice(devs []DeviceStatus, which string) (DeviceStatus, error) {
	var found []DeviceStatus
	lower := strings.ToLower(which)
	for _, d := range devs {
		id := hex.EncodeToString(d.ID[:])
		if (len(lower) >= 4 && strings.HasPrefix(id, lower)) || d.Name == which {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return DeviceStatus{}, fmt.Errorf("no device of the account is %q (give its ID, at least 4 hex digits of it, or its name)", which)
	}
	var ids []string
	for _, d := range found {
		ids = append(ids, hex.EncodeToString(d.ID[:]))
	}
	return DeviceStatus{}, fmt.Errorf("%q names %d devices (%s): give more of the ID", which, len(found), strings.Join(ids, ", "))
}

// RemoveDevice removes device id from account a's record, read and
// written over client c. It refuses (ErrNotHeld) while the checkpoints the
// other devices load do not hold the device's changes: nobody would read
// them any more.
func RemoveDevice(ctx context.Context, c *client.Client, a *account.Account, id account.DeviceID) error {
	return removeDevice(ctx, &clientNet{c: c, now: time.Now}, a, id)
}

func removeDevice(ctx context.Context, nw network, a *account.Account, id account.DeviceID) error {
	v, err := newAccountView(nw, a)
	if err != nil {
		return err
	}
	d := ns.DeviceID(id)
	pub, tips, bad, err := v.devices(ctx)
	if err != nil {
		return err
	}
	if !pub.Has(id) {
		return fmt.Errorf("device %s is not in the account record", d)
	}
	if err := bad[d]; err != nil {
		return fmt.Errorf("device %s: its log cannot be read, so whether its changes are held cannot be told: %w", d, err)
	}
	for e, err := range bad {
		if e != d {
			return fmt.Errorf("device %s: %w (whether its checkpoint holds device %s's changes cannot be told)", e, err, d)
		}
	}
	if ok, _ := retirable(tips, []ns.DeviceID{d}); len(ok) == 0 {
		return fmt.Errorf("%w: device %s wrote up to batch %d; run `jellyfish backend checkpoint REMOTE:` on another device of the account, then remove it again", ErrNotHeld, d, tips[d].head.BatchSeq)
	}
	// A last look at its head: a device that wrote since stays.
	if h, err := v.heads.Read(ctx, d); err != nil {
		return err
	} else if t := tips[d]; h != nil && (t == nil || h.BatchSeq != t.head.BatchSeq) {
		return fmt.Errorf("device %s is writing right now: not removed", d)
	}
	_, err = v.mgr.Update(ctx, a, account.RemoveDevices(id))
	return err
}

// LocalDevices returns the devices of the account user's slots in the
// data dir dataDir ("" for the default one), by slot name.
func LocalDevices(dataDir string, user account.Username) map[account.DeviceID]string {
	if dataDir == "" {
		dataDir = (&Options{}).dataDir()
	}
	out := map[account.DeviceID]string{}
	slots, _ := filepath.Glob(filepath.Join(dataDir, string(user), "slot-*"))
	for _, slot := range slots {
		b, err := os.ReadFile(filepath.Join(slot, "device"))
		var d ns.DeviceID
		if err == nil && d.UnmarshalText([]byte(strings.TrimSpace(string(b)))) == nil {
			out[account.DeviceID(d)] = filepath.Base(slot)
		}
	}
	return out
}
