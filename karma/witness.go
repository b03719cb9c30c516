package karma

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"slices"
)

const (
	// Witnesses is the number of witnesses of each subject in each epoch.
	Witnesses = 7
	// VettedLead is how many epochs before an epoch a node must have been
	// vetted to witness in it: a node whose ID was ground after the seed
	// became known cannot be vetted in time.
	VettedLead = 2
)

// Majority returns the smallest count that is more than half of n.
func Majority(n int) int { return n/2 + 1 }

// Candidate is a node that may witness: its ID, its owner account, and the
// first epoch from which it counted as vetted (0: not vetted).
type Candidate struct {
	ID          string
	Owner       string
	VettedSince Epoch
}

// Seed returns the seed of subject's witnesses for epoch e. prev is the
// previous epoch's seed (for a subject's first epoch, GenesisSeed), and
// nonces are the verified chain nonces of epoch e−1 that the previous
// epoch's witnesses revealed in their summaries (any order; duplicates
// count once). With no nonce at all the seed still changes every epoch.
func Seed(subject string, e Epoch, prev [32]byte, nonces [][32]byte) [32]byte {
	ns := slices.Clone(nonces)
	slices.SortFunc(ns, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	ns = slices.Compact(ns)
	h := sha256.New()
	h.Write([]byte("jellyfish/karma/seed/v1\x00"))
	writeString(h, subject)
	binary.Write(h, binary.BigEndian, uint32(e))
	h.Write(prev[:])
	for _, n := range ns {
		h.Write(n[:])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// GenesisSeed is the seed before a subject's first epoch. It is public:
// the first witnesses of a node can be predicted from its ID, but only
// among nodes vetted VettedLead epochs before it appeared.
func GenesisSeed(subject string) [32]byte {
	h := sha256.New()
	h.Write([]byte("jellyfish/karma/genesis/v1\x00"))
	writeString(h, subject)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// WitnessKey is the point in the ID space whose nearest vetted nodes
// witness subject in epoch e.
func WitnessKey(subject string, e Epoch, seed [32]byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("jellyfish/karma/witness/v1\x00"))
	writeString(h, subject)
	binary.Write(h, binary.BigEndian, uint32(e))
	h.Write(seed[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Distance is the XOR distance between key and the SHA-256 of id, as in
// the DHT's key space.
func Distance(key [32]byte, id string) [32]byte {
	d := sha256.Sum256([]byte(id))
	for i := range d {
		d[i] ^= key[i]
	}
	return d
}

// SelectWitnesses returns up to n witnesses of subject (owned by
// subjectOwner) for epoch e: the candidates nearest WitnessKey that were
// vetted by e−VettedLead, not the subject, not of the subject's owner, and
// at most one per owner (the nearest; a node naming no owner is its own). Candidates are read, not changed.
func SelectWitnesses(subject, subjectOwner string, e Epoch, seed [32]byte, cands []Candidate, n int) []Candidate {
	key := WitnessKey(subject, e, seed)
	type ranked struct {
		c Candidate
		d [32]byte
	}
	var rs []ranked
	for _, c := range cands {
		if c.ID == subject || (c.Owner != "" && c.Owner == subjectOwner) || !vettedBy(c, e) {
			continue
		}
		rs = append(rs, ranked{c, Distance(key, c.ID)})
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		if c := bytes.Compare(a.d[:], b.d[:]); c != 0 {
			return c
		}
		return bytes.Compare([]byte(a.c.ID), []byte(b.c.ID))
	})
	var out []Candidate
	owners := map[string]bool{}
	for _, r := range rs {
		if len(out) == n {
			break
		}
		// A node that names no owner is a group of its own.
		group := "owner:" + r.c.Owner
		if r.c.Owner == "" {
			group = "node:" + r.c.ID
		}
		if r.c.ID == "" || owners[group] {
			continue
		}
		owners[group] = true
		out = append(out, r.c)
	}
	return out
}

func vettedBy(c Candidate, e Epoch) bool {
	return c.VettedSince != 0 && uint64(c.VettedSince)+VettedLead <= uint64(e)
}

type byteWriter interface{ Write([]byte) (int, error) }

func writeString(w byteWriter, s string) {
	binary.Write(w, binary.BigEndian, uint16(len(s)))
	w.Write([]byte(s))
}
