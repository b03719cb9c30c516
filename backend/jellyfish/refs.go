package jellyfish

import (
	"context"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rclone/rclone/fs"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/objref"
	"github.com/jellyfish-p2p/jellyfish/codec"
)

// maxDirectRef bounds a reference kept in an entry: a larger one (a file
// of many segments) is stored as an object of its own and the entry holds
// an indirect reference to it, so entries, batches and checkpoint nodes
// stay small whatever the files' sizes.
const maxDirectRef = 8 << 10

// refCacheSize is how many references read through indirect ones a
// session keeps.
const refCacheSize = 256

// refCache keeps references read through indirect ones.
type refCache struct {
	mu    sync.Mutex
	m     map[string]*ObjRef
	order []string
}

func (c *refCache) get(k string) *ObjRef {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[k]
}

func (c *refCache) put(k string, r *ObjRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*ObjRef{}
	}
	if _, ok := c.m[k]; ok {
		return
	}
	c.m[k] = r
	c.order = append(c.order, k)
	if len(c.order) > refCacheSize {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
}

// contentOf encodes the reference of a file's contents for its entry:
// directly, or through an object holding it if it is large.
func (s *session) contentOf(ctx context.Context, ref *ObjRef) ([]byte, error) {
	b, err := ref.Marshal()
	if err != nil || len(b) <= maxDirectRef {
		return b, err
	}
	holder, err := s.meta.Put(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("store a file's reference: %w", err)
	}
	hr, err := UnmarshalObjRef(holder)
	if err != nil {
		return nil, err
	}
	return objref.Indirect(hr, ref.StoredBytes())
}

// objectOf returns the reference of an entry's object of its own (direct
// or indirect), or nil if its content is not one (inline or packed).
func (s *session) objectOf(ctx context.Context, content []byte) (*ObjRef, error) {
	c, err := objref.Parse(content)
	if err != nil {
		return nil, err
	}
	switch c.Kind {
	case objref.KindRef:
		return c.Ref, nil
	case objref.KindIndirect:
		k := string(content)
		if r := s.refs.get(k); r != nil {
			return r, nil
		}
		hb, err := c.Ref.Marshal()
		if err != nil {
			return nil, err
		}
		b, err := s.meta.Get(ctx, hb)
		if err != nil {
			return nil, fmt.Errorf("read a file's reference: %w", err)
		}
		r, err := objref.Unmarshal(b)
		if err != nil {
			return nil, err
		}
		s.refs.put(k, r)
		return r, nil
	}
	return nil, nil
}

// objectsOf returns every object an entry's content occupies: its object
// and, for an indirect reference, the object holding the reference.
func (s *session) objectsOf(ctx context.Context, content []byte) ([]*ObjRef, error) {
	c, err := objref.Parse(content)
	if err != nil {
		return nil, err
	}
	switch c.Kind {
	case objref.KindRef:
		return []*ObjRef{c.Ref}, nil
	case objref.KindIndirect:
		r, err := s.objectOf(ctx, content)
		if err != nil {
			return []*ObjRef{c.Ref}, err
		}
		return []*ObjRef{c.Ref, r}, nil
	}
	return nil, nil
}

// locatingKey marks a context of a location lookup: reading the
// checkpoint node that holds a location may itself need a location, and
// that lookup must not recurse (the node's own location cannot be inside
// it).
type locatingKey struct{}

// locate returns the holders of shard id recorded after its object was
// stored.
func (s *session) locate(ctx context.Context, id codec.ShardID) []peer.ID {
	var hs [][]byte
	if ctx.Value(locatingKey{}) == nil {
		var err error
		hs, err = s.log.view().Locations(context.WithValue(ctx, locatingKey{}, true), ns.ShardID(id))
		if err != nil {
			fs.Debugf(nil, "jellyfish: locations of shard %s: %v", id.Short(), err)
		}
	}
	hs = append(hs, s.log.foundLocations(ns.ShardID(id))...)
	out := make([]peer.ID, 0, len(hs))
	for _, h := range hs {
		if p, err := peer.IDFromBytes(h); err == nil {
			out = append(out, p)
		}
	}
	return out
}
