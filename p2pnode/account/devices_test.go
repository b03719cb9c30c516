package account

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// lastRecords is a record store in which a later record of the same
// sequence number can replace an earlier one that a writer already read
// back (on the DHT: two writers publishing at once, and the tie going to
// the later one); a lower sequence number never replaces a higher one.
type lastRecords struct {
	mu sync.Mutex
	m  map[string][]byte
	// beforePut, if set, runs (outside the lock) before each put.
	beforePut func(key string, value []byte)
}

func (r *lastRecords) Put(ctx context.Context, key string, value []byte) error {
	if r.beforePut != nil {
		r.beforePut(key, value)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.m[key]; ok {
		o, err1 := verifyOwned(key, old)
		n, err2 := verifyOwned(key, value)
		if err1 == nil && err2 == nil && n.Seq < o.Seq {
			return nil // refused, as a node with a higher record does
		}
	}
	r.m[key] = value
	return nil
}

func (r *lastRecords) Get(ctx context.Context, key string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.m[key]
	if !ok {
		return nil, ErrNotFound
	}
	return v, nil
}

func devID(i int) DeviceID { return DeviceID{byte(i), 0xd} }

// TestUpdateConcurrent: sixteen devices add themselves to the
// account record at once. Edits applied to a record another writer
// replaced meanwhile are applied again to the newer one, and a device
// that checks once more after the others are done (as the backend does
// at its next flush) is listed: no registration is lost.
func TestUpdateConcurrent(t *testing.T) {
	ctx := context.Background()
	recs := &lastRecords{m: map[string][]byte{}}
	m := NewManager(recs, InsecureTestKDF())
	a, err := m.Create(ctx, alice, goodPw)
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := m.Update(ctx, a, AddDevice(Device{ID: devID(i), Name: fmt.Sprint("dev", i)})); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := m.Update(ctx, a, AddDevice(Device{ID: devID(i), Name: fmt.Sprint("dev", i)})); err != nil {
			t.Fatal(err)
		}
	}
	pub, err := m.Lookup(ctx, a.ID())
	if err != nil {
		t.Fatal(err)
	}
	if len(pub.Devices) != n {
		t.Fatalf("%d devices listed, want %d", len(pub.Devices), n)
	}
}

// TestUpdateLateRecord: a writer that read the record before
// another device registered publishes after that device's read-back. The
// device's own check finds it missing, and adding itself again keeps the
// other writer's change.
func TestUpdateLateRecord(t *testing.T) {
	ctx := context.Background()
	recs := &lastRecords{m: map[string][]byte{}}
	m := NewManager(recs, InsecureTestKDF())
	a, err := m.Create(ctx, alice, goodPw)
	if err != nil {
		t.Fatal(err)
	}
	key := AccountKey(a.ID())
	// B's put waits until A has added itself and read the record back.
	bReady, aDone := make(chan struct{}), make(chan struct{})
	recs.beforePut = func(k string, v []byte) {
		if k != key {
			return
		}
		rec, _ := verifyOwned(k, v)
		p, _ := ParsePublic(rec.Body)
		if p.Has(devID(2)) && !p.Has(devID(1)) {
			close(bReady)
			<-aDone
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := m.Update(ctx, a, AddDevice(Device{ID: devID(2), Name: "b"})); err != nil {
			t.Error(err)
		}
	}()
	<-bReady
	recs.beforePut = nil
	pub, err := m.Update(ctx, a, AddDevice(Device{ID: devID(1), Name: "a"}))
	if err != nil || !pub.Has(devID(1)) {
		t.Fatalf("a: %v %+v", err, pub)
	}
	close(aDone)
	wg.Wait()
	if pub, _ := m.Lookup(ctx, a.ID()); pub.Has(devID(1)) || !pub.Has(devID(2)) {
		t.Fatalf("the late record should have replaced a's: %+v", pub.Devices)
	}
	pub, err = m.Update(ctx, a, AddDevice(Device{ID: devID(1), Name: "a"}))
	if err != nil || !pub.Has(devID(1)) || !pub.Has(devID(2)) {
		t.Fatalf("after a's check: %v %+v", err, pub.Devices)
	}
}

// TestUpdateFull: adding a device to a full list fails with
// ErrDevicesFull; removing one in the same edit makes room.
func TestUpdateFull(t *testing.T) {
	ctx := context.Background()
	m, _ := testManager(t)
	a, err := m.Create(ctx, alice, goodPw)
	if err != nil {
		t.Fatal(err)
	}
	for i := range MaxDevices {
		if _, err := m.Update(ctx, a, AddDevice(Device{ID: devID(i)})); err != nil {
			t.Fatal(err)
		}
	}
	extra := Device{ID: DeviceID{0xee}}
	if _, err := m.Update(ctx, a, AddDevice(extra)); !errors.Is(err, ErrDevicesFull) {
		t.Fatalf("add to a full list: %v", err)
	}
	pub, err := m.Update(ctx, a, Edits(RemoveDevices(devID(0)), AddDevice(extra)))
	if err != nil || !pub.Has(extra.ID) || pub.Has(devID(0)) || len(pub.Devices) != MaxDevices {
		t.Fatalf("remove and add: %v %d devices", err, len(pub.Devices))
	}
	// Nothing to change publishes nothing.
	if _, err := m.Update(ctx, a, RemoveDevices(devID(0))); err != nil {
		t.Fatal(err)
	}
}
