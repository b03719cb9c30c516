package account

import (
	"bytes"
	"context"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// Has reports whether the device list names id.
func (p *Public) Has(id DeviceID) bool {
	return slices.ContainsFunc(p.Devices, func(d Device) bool { return d.ID == id })
}

// Device returns the listed device id.
func (p *Public) Device(id DeviceID) (Device, bool) {
	i := slices.IndexFunc(p.Devices, func(d Device) bool { return d.ID == id })
	if i < 0 {
		return Device{}, false
	}
	return p.Devices[i], true
}

// Remove drops id from the device list and reports whether it was there.
func (p *Public) Remove(id DeviceID) bool {
	n := len(p.Devices)
	p.Devices = slices.DeleteFunc(p.Devices, func(d Device) bool { return d.ID == id })
	return len(p.Devices) != n
}

func (p *Public) clone() *Public {
	c := *p
	c.Nodes = slices.Clone(p.Nodes)
	c.Devices = slices.Clone(p.Devices)
	return &c
}

// ErrDevicesFull: the account record lists MaxDevices devices already.
var ErrDevicesFull = fmt.Errorf("account: the account record lists %d devices, the most it can", MaxDevices)

// Edit changes an account record's device or node list towards what its
// caller wants ("this device is listed", "device X is not") and reports
// whether it changed anything. It must be idempotent: applied to a record
// that already is as it wants, it changes nothing and returns false.
type Edit func(p *Public) (changed bool, err error)

// updateAttempts bounds how often Update applies its edit again
// when concurrent writers keep replacing the record.
const updateAttempts = 8

// Update applies edit to the account record (its device and node lists)
// and publishes the result, safely against other devices doing the same at
// the same time. It returns the record as last read back. (PublishAccount
// replaces the record with what its caller read earlier, whatever was
// published since.)
//
// The record has no compare-and-swap: two writers that read the same
// record and publish the next sequence number both succeed, and nodes keep
// one of the two. So the edit is applied to the newest record; just before
// publishing, the record is read again and, if another writer replaced it
// meanwhile, the edit is applied to that one instead (a writer never
// publishes a list it did not read just before); after publishing, the
// record is read back and the edit applied to what is found: if that would
// change anything, a concurrent record won, and after a random pause (so
// the writers racing do not race again) the edit is applied to the winner.
// A concurrent writer whose record lands after the read-back can still
// replace this one: a device that must stay listed checks again later
// (the backend does after each flush).
func (m *Manager) Update(ctx context.Context, a *Account, edit Edit) (*Public, error) {
	return m.UpdateFrom(ctx, a, edit, nil)
}

// UpdateFrom is Update whose first attempt edits known, the account
// record as its caller read it a moment ago (raw, as LookupRecord returns
// it), instead of reading it first; nil known, or one that does not
// verify, is read as Update does. The record is still read again just
// before publishing and read back after, so an older known costs an
// attempt, never an update.
func (m *Manager) UpdateFrom(ctx context.Context, a *Account, edit Edit, known []byte) (*Public, error) {
	key := AccountKey(a.ID())
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(20+mrand.IntN(100*attempt)) * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		var (
			rec *record.Record
			pub *Public
			err error
		)
		if attempt == 0 && known != nil {
			rec, pub, err = openAccount(key, known)
		}
		if rec == nil {
			if rec, pub, err = m.readAccount(ctx, key); err != nil {
				return nil, err
			}
		}
		changed, err := edit(pub)
		if err != nil || !changed {
			return pub, err
		}
		if attempt == updateAttempts {
			return nil, fmt.Errorf("account: the device list changed under %d updates in a row (other devices updating it at the same time)", attempt)
		}
		// Read again just before publishing: a record published since
		// the one the edit was applied to is edited instead.
		again, _, err := m.readAccount(ctx, key)
		if err != nil {
			return nil, err
		}
		if again.Seq != rec.Seq || !bytes.Equal(again.Body, rec.Body) {
			continue
		}
		body, err := pub.marshal()
		if err != nil {
			return nil, err
		}
		r := record.Record{Kind: KindAccount, Seq: rec.Seq + 1, Expires: m.clock().Add(m.lifetime), Body: body}
		raw, err := r.Sign(key, a.Identity)
		if err != nil {
			return nil, err
		}
		if err := m.recs.Put(ctx, key, raw); err != nil {
			return nil, err
		}
		_, back, err := m.readAccount(ctx, key)
		if err != nil {
			return nil, err
		}
		if changed, err := edit(back.clone()); err == nil && !changed {
			return back, nil
		}
		// A concurrent record won: apply the edit to it.
	}
}

// readAccount reads and checks the account record at key.
func (m *Manager) readAccount(ctx context.Context, key string) (*record.Record, *Public, error) {
	raw, err := m.recs.Get(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	return openAccount(key, raw)
}

// openAccount checks and decodes raw, the account record at key.
func openAccount(key string, raw []byte) (*record.Record, *Public, error) {
	rec, err := verifyOwned(key, raw)
	if err != nil {
		return nil, nil, err
	}
	var p Public
	if err := p.unmarshal(rec.Body); err != nil {
		return nil, nil, err
	}
	return rec, &p, nil
}

// AddDevice returns an edit that lists d under d's name (renaming it if
// it is listed under another), failing with ErrDevicesFull when there is
// no room for it.
func AddDevice(d Device) Edit {
	return func(p *Public) (bool, error) {
		for i := range p.Devices {
			if p.Devices[i].ID == d.ID {
				if p.Devices[i].Name == d.Name {
					return false, nil
				}
				p.Devices[i].Name = d.Name
				return true, nil
			}
		}
		if len(p.Devices) >= MaxDevices {
			return false, ErrDevicesFull
		}
		p.Devices = append(p.Devices, d)
		return true, nil
	}
}

// AddNode returns an edit that lists node id, failing when the node list
// is full.
func AddNode(id peer.ID) Edit {
	return func(p *Public) (bool, error) {
		if slices.Contains(p.Nodes, id) {
			return false, nil
		}
		if len(p.Nodes) >= MaxNodes {
			return false, fmt.Errorf("account: the account record lists %d nodes, the most it can", MaxNodes)
		}
		p.Nodes = append(p.Nodes, id)
		return true, nil
	}
}

// RemoveDevices returns an edit that drops ids from the list.
func RemoveDevices(ids ...DeviceID) Edit {
	return func(p *Public) (bool, error) {
		changed := false
		for _, id := range ids {
			changed = p.Remove(id) || changed
		}
		return changed, nil
	}
}

// Edits combines edits, applied in order.
func Edits(edits ...Edit) Edit {
	return func(p *Public) (bool, error) {
		changed := false
		for _, e := range edits {
			c, err := e(p)
			if err != nil {
				return false, err
			}
			changed = changed || c
		}
		return changed, nil
	}
}
