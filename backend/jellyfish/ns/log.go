package ns

import (
	"encoding/json"
	"fmt"
)

// FormatVersion is the version of batches and checkpoints.
const FormatVersion = 1

// Batch is one flushed group of a device's writes: the unit of its log.
// Batches of a device are numbered from 1 and chained by Prev (an opaque
// reference to the previous batch's stored object), so a reader can walk a
// device's log back from its head to its last checkpoint.
type Batch struct {
	Version int      `json:"v"`
	Device  DeviceID `json:"dev"`
	Seq     uint64   `json:"seq"`
	Prev    []byte   `json:"prev,omitempty"`
	// PrevSeq is the sequence number of the batch Prev refers to, so a
	// reader can stop walking back without reading it.
	PrevSeq uint64  `json:"prevseq,omitempty"`
	Entries []Entry `json:"e"`
	// Packs are the pack records this batch creates or replaces (see Pack).
	Packs []Pack `json:"pk,omitempty"`
}

// Checkpoint is a whole namespace as one object: every entry (tombstones
// included) and, per device, the last batch it covers.
type Checkpoint struct {
	Version int               `json:"v"`
	Covers  map[string]uint64 `json:"covers"` // device ID hex → batch seq
	Entries []Entry           `json:"e"`
	// Packs are the pack records of the namespace (see Pack).
	Packs []Pack `json:"pk,omitempty"`
}

// maxEncoded bounds a decoded batch or checkpoint (the codec's segment cap
// bounds what can be read anyway; this keeps json from being fed more).
const maxEncoded = 1 << 30

// EncodeBatch encodes b.
func EncodeBatch(b *Batch) ([]byte, error) {
	b.Version = FormatVersion
	return json.Marshal(b)
}

// DecodeBatch decodes and checks a batch.
func DecodeBatch(data []byte) (*Batch, error) {
	if len(data) > maxEncoded {
		return nil, fmt.Errorf("ns: batch of %d bytes", len(data))
	}
	var b Batch
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("ns: batch: %w", err)
	}
	if b.Version != FormatVersion {
		return nil, fmt.Errorf("ns: batch version %d not supported", b.Version)
	}
	for i := range b.Entries {
		if err := checkEntry(&b.Entries[i]); err != nil {
			return nil, err
		}
	}
	for i := range b.Packs {
		if err := checkPack(&b.Packs[i]); err != nil {
			return nil, err
		}
	}
	return &b, nil
}

// EncodeCheckpoint encodes c.
func EncodeCheckpoint(c *Checkpoint) ([]byte, error) {
	c.Version = FormatVersion
	return json.Marshal(c)
}

// DecodeCheckpoint decodes and checks a checkpoint.
func DecodeCheckpoint(data []byte) (*Checkpoint, error) {
	if len(data) > maxEncoded {
		return nil, fmt.Errorf("ns: checkpoint of %d bytes", len(data))
	}
	var c Checkpoint
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("ns: checkpoint: %w", err)
	}
	if c.Version != FormatVersion {
		return nil, fmt.Errorf("ns: checkpoint version %d not supported", c.Version)
	}
	for i := range c.Entries {
		if err := checkEntry(&c.Entries[i]); err != nil {
			return nil, err
		}
	}
	for i := range c.Packs {
		if err := checkPack(&c.Packs[i]); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

func checkEntry(e *Entry) error {
	if Clean(e.Path) != e.Path {
		return fmt.Errorf("ns: entry path %q is not clean", e.Path)
	}
	if e.Size < 0 {
		return fmt.Errorf("ns: entry %q has size %d", e.Path, e.Size)
	}
	return nil
}
