// Package jellyfish is the rclone backend of the Jellyfish peer-to-peer
// storage network: files are compressed, encrypted and erasure-coded into
// shards held by provider nodes; the namespace is a per-device log of
// encrypted batches pointed at by signed head records in the DHT.
package jellyfish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/rclone/rclone/backend/overview"
	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/config"
	"github.com/rclone/rclone/fs/config/configmap"
	"github.com/rclone/rclone/fs/config/configstruct"
	"github.com/rclone/rclone/fs/config/obscure"
	"github.com/rclone/rclone/fs/fserrors"
	"github.com/rclone/rclone/fs/hash"
	"github.com/zeebo/blake3"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/journal"
	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
)

func init() {
	fs.Register(&fs.RegInfo{
		Name:        "jellyfish",
		Description: "Jellyfish peer-to-peer storage network",
		NewFs:       NewFs,
		Config:      configure,
		Overview: &overview.BackendConfig{
			Backend: "jellyfish", Name: "Jellyfish", Tier: "Tier 3",
			Maintainers: "Jellyfish developers", Docs: "docs/backend.md",
			DataIntegrity: "Every shard verified by its BLAKE3 tree hash; content hash BLAKE3",
			Security:      "AES-256-GCM per file, keys wrapped by the account's root key",
			Remote:        "jellyfish", Hashes: []string{"blake3"}, Precision: 1,
			Features: []string{"Copy", "Move", "DirMove", "Purge", "ListR", "PutStream", "About", "CleanUp", "Shutdown", "CanHaveEmptyDirectories"},
		},
		CommandHelp: commandHelp,
		Options: []fs.Option{{
			Name:      "username",
			Help:      "Jellyfish account name.\n\nCreate an account with `jellyfish account create`.",
			Required:  true,
			Sensitive: true,
		}, {
			Name:       "password",
			Help:       "Jellyfish account password.",
			IsPassword: true,
			Required:   true,
		}, {
			Name:     "bootstrap",
			Help:     "Multiaddresses of network peers to join through, separated by spaces.\n\nE.g. the lines of the bootstrap.txt written by `jellyfish testnet`.",
			Required: true,
		}, {
			Name:     "data_shards",
			Help:     "Data shards per segment (k): any k shards rebuild a segment.",
			Default:  10,
			Advanced: true,
		}, {
			Name:     "parity_shards",
			Help:     "Parity shards per segment (m): up to m shards may be lost.",
			Default:  20,
			Advanced: true,
		}, {
			Name:     "success_shards",
			Help:     "Shards per segment that must be stored for an upload to succeed.\n\n0 means k plus half of m.",
			Default:  0,
			Advanced: true,
		}, {
			Name:     "segment_size",
			Help:     "Plaintext bytes per segment.",
			Default:  fs.SizeSuffix(codec.DefaultSegmentSize),
			Advanced: true,
		}, {
			Name:     "compression",
			Help:     "Compression of segments before encryption: zstd, gzip or none.",
			Default:  "zstd",
			Advanced: true,
		}, {
			Name:     "inline_max",
			Help:     "Files up to this size are stored inside the file list's log instead of as shards of their own.\n\nThis makes syncing many tiny files fast; they get the file list's redundancy.",
			Default:  fs.SizeSuffix(defaultInlineMax),
			Advanced: true,
		}, {
			Name:     "pack_max",
			Help:     "Files larger than inline_max and up to this size are packed together into shared objects.\n\nA sync of many small files then stores a few objects instead of a set of shards per file. 0 turns packing off.",
			Default:  fs.SizeSuffix(defaultPackMax),
			Advanced: true,
		}, {
			Name:     "pack_size",
			Help:     "Size at which a pack of small files is stored (it is also stored at every flush). At most 64 MiB.",
			Default:  fs.SizeSuffix(defaultPackSize),
			Advanced: true,
		}, {
			Name:     "checkpoint_every",
			Help:     "Log batches a device writes between checkpoints of the whole file list.",
			Default:  32,
			Advanced: true,
		}, {
			Name:     "meta_data_shards",
			Help:     "Data shards of metadata objects (log batches, checkpoints).",
			Default:  2,
			Advanced: true,
		}, {
			Name:     "meta_parity_shards",
			Help:     "Parity shards of metadata objects.",
			Default:  6,
			Advanced: true,
		}, {
			Name:     "lease",
			Help:     "How long providers keep shards before the lease must be renewed.",
			Default:  fs.Duration(90 * 24 * time.Hour),
			Advanced: true,
		}, {
			Name:     "maintenance",
			Help:     "Renew, audit and repair this account's data in the background, once a week.\n\nA session starts a round when this device's last one is older than a week (a new device waits a week first). An account whose owner runs `jellyfish node --maintain` is maintained there daily as well.",
			Default:  true,
			Advanced: true,
		}, {
			Name:     "cleanup_grace",
			Help:     "Retention: CleanUp never frees contents deleted or overwritten less than this long ago.\n\nSo a sync in the wrong direction can still be undone from the file list's history for this long.",
			Default:  fs.Duration(30 * 24 * time.Hour),
			Advanced: true,
		}, {
			Name:     "poll_interval",
			Help:     "How often a mount (or anything else that watches for changes) reads other devices' changes.\n\nThe --poll-interval of a mount can make it more often; 0 there turns polling off. Each poll reads one record per device of the account.",
			Default:  fs.Duration(defaultPollInterval),
			Advanced: true,
		}, {
			Name:     "device_name",
			Help:     "Name of this device in the account record.\n\nThe account record is public: anyone can read it. Empty means a label made from\nthe device's random ID (device-3f2a9c), never the host name.",
			Advanced: true,
		}, {
			Name:     "device_retire_after",
			Help:     "Retire a device of the account that has not been used for this long.\n\nEvery data dir (a machine, a container, a CI run, a wiped cache) is a device, and the account record lists at most 32. A session retires the devices not seen for this long once their changes are in a checkpoint the others load; a device that comes back after that continues as a new one. 0 retires none by age (a full list still makes room for a new device).",
			Default:  fs.Duration(defaultRetireAfter),
			Advanced: true,
		}, {
			Name:     "data_dir",
			Help:     "Where this device keeps its client node identity and device slots.\n\nEmpty means the jellyfish folder of rclone's cache directory.",
			Default:  "",
			Advanced: true,
		}, {
			Name:     "insecure_test_kdf",
			Help:     "Use the cheap key derivation of test accounts. For tests only: never for real accounts.",
			Default:  false,
			Advanced: true,
			Hide:     fs.OptionHideBoth,
		}},
	})
}

// Options are the remote's configuration.
type Options struct {
	Username          string        `config:"username"`
	Password          string        `config:"password"`
	Bootstrap         string        `config:"bootstrap"`
	DataShards        int           `config:"data_shards"`
	ParityShards      int           `config:"parity_shards"`
	SuccessShards     int           `config:"success_shards"`
	SegmentSize       fs.SizeSuffix `config:"segment_size"`
	Compression       string        `config:"compression"`
	InlineMax         fs.SizeSuffix `config:"inline_max"`
	PackMax           fs.SizeSuffix `config:"pack_max"`
	PackSize          fs.SizeSuffix `config:"pack_size"`
	CheckpointEvery   int           `config:"checkpoint_every"`
	MetaDataShards    int           `config:"meta_data_shards"`
	MetaParityShards  int           `config:"meta_parity_shards"`
	Lease             fs.Duration   `config:"lease"`
	Maintenance       bool          `config:"maintenance"`
	CleanupGrace      fs.Duration   `config:"cleanup_grace"`
	PollInterval      fs.Duration   `config:"poll_interval"`
	DeviceRetireAfter fs.Duration   `config:"device_retire_after"`
	DeviceName        string        `config:"device_name"`
	DataDir           string        `config:"data_dir"`
	InsecureTestKDF   bool          `config:"insecure_test_kdf"`
}

func (o *Options) dataDir() string {
	if o.DataDir != "" {
		return o.DataDir
	}
	return path.Join(config.GetCacheDir(), "jellyfish")
}

func (o *Options) compression() codec.Compression {
	c, err := codec.ParseCompression(o.Compression)
	if err != nil {
		return codec.CompressZstd
	}
	return c
}

// defaultPollInterval is how often other devices' changes are read by
// default.
const defaultPollInterval = 10 * time.Second

// defaultInlineMax is the largest file stored inside the file list. The
// file list's checkpoints hold such a file's bytes beside its name, so a
// listing reads them and a change to a neighbour rewrites them: only the
// tiniest files are worth it. Larger small files are packed.
const defaultInlineMax = 128

// maxInlineMax bounds inline_max: inline data is read into memory and
// carried by every batch and checkpoint.
const maxInlineMax = 256 << 10

// Fs is a view of a Jellyfish account's files under a root path.
type Fs struct {
	name     string
	root     string // clean, no leading or trailing slash
	m        configmap.Mapper
	opt      Options
	features *fs.Features
	s        *session
}

var (
	_ fs.Fs          = (*Fs)(nil)
	_ fs.PutStreamer = (*Fs)(nil)
	_ fs.Copier      = (*Fs)(nil)
	_ fs.Mover       = (*Fs)(nil)
	_ fs.DirMover    = (*Fs)(nil)
	_ fs.Purger      = (*Fs)(nil)
	_ fs.ListRer     = (*Fs)(nil)
	_ fs.Abouter     = (*Fs)(nil)
	_ fs.Shutdowner  = (*Fs)(nil)
	_ fs.CleanUpper  = (*Fs)(nil)
	_ fs.Commander   = (*Fs)(nil)
	_ fs.Object      = (*Object)(nil)
	_ fs.MimeTyper   = (*Object)(nil)
	_ fs.IDer        = (*Object)(nil)
)

// NewFs opens the remote: it joins the network (once per process), logs in
// and loads the namespace.
func NewFs(ctx context.Context, name, root string, m configmap.Mapper) (fs.Fs, error) {
	return NewFsAt(ctx, name, root, m, time.Now)
}

// NewFsAt is NewFs with Jellyfish's own time read from now: record
// lifetimes and signatures, leases, stamps, retention and maintenance.
// libp2p keeps real time. The lifetime simulation runs sessions on a clock
// it moves ahead by days; everything else uses NewFs. Sessions are shared
// per process and option set: the first one opened sets the clock.
func NewFsAt(ctx context.Context, name, root string, m configmap.Mapper, now func() time.Time) (fs.Fs, error) {
	opt := new(Options)
	if err := configstruct.Set(m, opt); err != nil {
		return nil, err
	}
	if opt.Password != "" {
		pw, err := obscure.Reveal(opt.Password)
		if err != nil {
			return nil, fmt.Errorf("jellyfish: password: %w", err)
		}
		opt.Password = pw
	}
	s, err := getSession(ctx, opt, now)
	if err != nil {
		return nil, err
	}
	f := &Fs{name: name, root: ns.Clean(root), m: m, opt: *opt, s: s}
	f.features = (&fs.Features{
		CanHaveEmptyDirectories: true,
		ReadMimeType:            false,
	}).Fill(ctx, f)
	if f.root != "" {
		e, err := s.log.view().Get(ctx, f.root)
		if err != nil {
			return nil, mapErr(err)
		}
		if e != nil && !e.Dir {
			f.root = ns.Parent(f.root)
			return f, fs.ErrorIsFile
		}
	}
	return f, nil
}

// Name of the remote (as passed into NewFs).
func (f *Fs) Name() string { return f.name }

// Root of the remote (as passed into NewFs).
func (f *Fs) Root() string { return f.root }

// String converts this Fs to a string.
func (f *Fs) String() string { return fmt.Sprintf("Jellyfish %s:%s", f.opt.Username, f.root) }

// Precision of modification times: nanoseconds are stored exactly.
func (f *Fs) Precision() time.Duration { return time.Nanosecond }

// Hashes returns the supported hash types: BLAKE3 of the plaintext.
func (f *Fs) Hashes() hash.Set { return hash.NewHashSet(hash.BLAKE3) }

// Features returns the optional features of this Fs.
func (f *Fs) Features() *fs.Features { return f.features }

// full returns the namespace path of a remote path.
func (f *Fs) full(remote string) string { return ns.Clean(path.Join(f.root, remote)) }

// rel returns the remote path of a namespace path.
func (f *Fs) rel(p string) string {
	if f.root == "" {
		return p
	}
	return strings.TrimPrefix(strings.TrimPrefix(p, f.root), "/")
}

func (f *Fs) entryToDirEntry(e ns.Entry) fs.DirEntry {
	if e.Dir {
		return fs.NewDir(f.rel(e.Path), e.Time())
	}
	return &Object{fs: f, remote: f.rel(e.Path), entry: e}
}

// List the objects and directories in dir into entries.
func (f *Fs) List(ctx context.Context, dir string) (fs.DirEntries, error) {
	p := f.full(dir)
	v := f.s.log.view()
	if ok, err := v.IsDir(ctx, p); err != nil {
		return nil, mapErr(err)
	} else if !ok {
		return nil, fs.ErrorDirNotFound
	}
	es, err := v.List(ctx, p)
	if err != nil {
		return nil, mapErr(err)
	}
	out := make(fs.DirEntries, 0, len(es))
	for _, e := range es {
		out = append(out, f.entryToDirEntry(e))
	}
	return out, nil
}

// ListR lists everything under dir recursively.
func (f *Fs) ListR(ctx context.Context, dir string, callback fs.ListRCallback) error {
	p := f.full(dir)
	v := f.s.log.view()
	if ok, err := v.IsDir(ctx, p); err != nil {
		return mapErr(err)
	} else if !ok {
		return fs.ErrorDirNotFound
	}
	var batch fs.DirEntries
	err := v.Walk(ctx, p, func(e ns.Entry) error {
		batch = append(batch, f.entryToDirEntry(e))
		if len(batch) >= 1000 {
			err := callback(batch)
			batch = nil
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(batch) > 0 {
		return callback(batch)
	}
	return nil
}

// NewObject finds the Object at remote.
func (f *Fs) NewObject(ctx context.Context, remote string) (fs.Object, error) {
	e, err := f.s.log.view().Get(ctx, f.full(remote))
	if err != nil {
		return nil, mapErr(err)
	}
	if e == nil {
		return nil, fs.ErrorObjectNotFound
	}
	if e.Dir {
		return nil, fs.ErrorIsDir
	}
	return &Object{fs: f, remote: remote, entry: *e}, nil
}

// Put uploads in to remote. It returns once the shards are receipted; the
// change is visible to other devices after the next flush.
func (f *Fs) Put(ctx context.Context, in io.Reader, src fs.ObjectInfo, options ...fs.OpenOption) (fs.Object, error) {
	o := &Object{fs: f, remote: src.Remote()}
	return o, o.Update(ctx, in, src, options...)
}

// PutStream uploads a stream of unknown length.
func (f *Fs) PutStream(ctx context.Context, in io.Reader, src fs.ObjectInfo, options ...fs.OpenOption) (fs.Object, error) {
	return f.Put(ctx, in, src, options...)
}

// mkdirs returns directory entries for p and every missing ancestor.
func (f *Fs) mkdirs(ctx context.Context, p string, modTime time.Time) ([]ns.Entry, error) {
	var out []ns.Entry
	v := f.s.log.view()
	for d := p; d != ""; d = ns.Parent(d) {
		e, err := v.Get(ctx, d)
		if err != nil {
			return nil, mapErr(err)
		}
		if e != nil {
			if !e.Dir {
				return nil, fmt.Errorf("jellyfish: %q is a file, not a directory", d)
			}
			break
		}
		out = append(out, ns.Entry{Path: d, Dir: true, ModTime: modTime.UnixNano()})
	}
	return out, nil
}

// checkPath refuses a path the file list cannot hold, for that one file,
// before anything is stored.
func checkPath(p string) error {
	if err := ns.CheckPath(p); err != nil {
		return fserrors.NoRetryError(fmt.Errorf("jellyfish: %w", err))
	}
	return nil
}

// Mkdir makes the directory dir and its parents.
func (f *Fs) Mkdir(ctx context.Context, dir string) error {
	p := f.full(dir)
	if err := checkPath(p); err != nil {
		return err
	}
	entries, err := f.mkdirs(ctx, p, f.s.now())
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return f.s.commit(ctx, entries, nil)
	}
	return nil
}

// Rmdir removes the empty directory dir.
func (f *Fs) Rmdir(ctx context.Context, dir string) error {
	p := f.full(dir)
	v := f.s.log.view()
	if ok, err := v.IsDir(ctx, p); err != nil {
		return mapErr(err)
	} else if !ok {
		return fs.ErrorDirNotFound
	}
	if has, err := v.HasChildren(ctx, p); err != nil {
		return mapErr(err)
	} else if has {
		return fs.ErrorDirectoryNotEmpty
	}
	if p == "" {
		return nil
	}
	return f.s.commit(ctx, []ns.Entry{{Path: p, Dir: true, Deleted: true}}, nil)
}

// Purge deletes dir and everything under it.
func (f *Fs) Purge(ctx context.Context, dir string) error {
	p := f.full(dir)
	v := f.s.log.view()
	if ok, err := v.IsDir(ctx, p); err != nil {
		return mapErr(err)
	} else if !ok {
		return fs.ErrorDirNotFound
	}
	var dels []ns.Entry
	err := v.Walk(ctx, p, func(e ns.Entry) error {
		dels = append(dels, ns.Entry{Path: e.Path, Dir: e.Dir, Deleted: true})
		return nil
	})
	if err != nil {
		return mapErr(err)
	}
	if p != "" {
		dels = append(dels, ns.Entry{Path: p, Dir: true, Deleted: true})
	}
	return f.s.commit(ctx, dels, nil)
}

// sameAccount reports whether src is an object of this account, so a
// copy or move can share its shards.
func (f *Fs) sameAccount(src fs.Object) (*Object, bool) {
	o, ok := src.(*Object)
	return o, ok && o.fs.s == f.s
}

// Copy makes a server-side copy: the new entry shares the source's shards,
// nothing is uploaded. Deleting either copy keeps the other readable.
func (f *Fs) Copy(ctx context.Context, src fs.Object, remote string) (fs.Object, error) {
	return f.copyOrMove(ctx, src, remote, false)
}

// Move renames src to remote without moving data.
func (f *Fs) Move(ctx context.Context, src fs.Object, remote string) (fs.Object, error) {
	return f.copyOrMove(ctx, src, remote, true)
}

// copyOrMove writes src's entry at remote (sharing its content) and, for
// a move, a tombstone at src.
func (f *Fs) copyOrMove(ctx context.Context, src fs.Object, remote string, move bool) (fs.Object, error) {
	so, ok := f.sameAccount(src)
	if !ok {
		if move {
			return nil, fs.ErrorCantMove
		}
		return nil, fs.ErrorCantCopy
	}
	srcPath := so.fs.full(so.remote)
	dst := f.full(remote)
	if err := checkPath(dst); err != nil {
		return nil, err
	}
	v := f.s.log.view()
	cur, err := v.Get(ctx, srcPath)
	if err != nil {
		return nil, mapErr(err)
	}
	if cur == nil {
		return nil, fs.ErrorObjectNotFound
	}
	if e, err := v.Get(ctx, dst); err != nil {
		return nil, mapErr(err)
	} else if e != nil && e.Dir {
		return nil, fs.ErrorIsDir
	}
	entries, err := f.mkdirs(ctx, ns.Parent(dst), f.s.now())
	if err != nil {
		return nil, err
	}
	ne := *cur
	ne.Path = dst
	entries = append(entries, ne)
	at := len(entries) - 1
	if move && srcPath != dst {
		entries = append(entries, ns.Entry{Path: srcPath, Deleted: true})
	}
	if err := f.s.commit(ctx, entries, nil); err != nil {
		return nil, err
	}
	return &Object{fs: f, remote: remote, entry: entries[at]}, nil
}

// DirMove moves srcRemote of src to dstRemote of f, renaming every entry.
func (f *Fs) DirMove(ctx context.Context, src fs.Fs, srcRemote, dstRemote string) error {
	sf, ok := src.(*Fs)
	if !ok || sf.s != f.s {
		return fs.ErrorCantDirMove
	}
	srcPath, dstPath := sf.full(srcRemote), f.full(dstRemote)
	v := f.s.log.view()
	if ok, err := v.IsDir(ctx, srcPath); err != nil {
		return mapErr(err)
	} else if !ok {
		return fs.ErrorDirNotFound
	}
	if e, err := v.Get(ctx, dstPath); err != nil {
		return mapErr(err)
	} else if e != nil || dstPath == "" {
		return fs.ErrorDirExists
	}
	if srcPath == "" || strings.HasPrefix(dstPath+"/", srcPath+"/") {
		return fmt.Errorf("jellyfish: cannot move %q into itself: %w", srcPath, fs.ErrorCantDirMove)
	}
	entries, err := f.mkdirs(ctx, ns.Parent(dstPath), f.s.now())
	if err != nil {
		return err
	}
	top, err := v.Get(ctx, srcPath)
	if err != nil || top == nil {
		return fs.ErrorDirNotFound
	}
	moved := *top
	moved.Path = dstPath
	entries = append(entries, moved)
	var dels []ns.Entry
	err = v.Walk(ctx, srcPath, func(e ns.Entry) error {
		ne := e
		ne.Path = dstPath + strings.TrimPrefix(e.Path, srcPath)
		if err := checkPath(ne.Path); err != nil {
			return err
		}
		entries = append(entries, ne)
		dels = append(dels, ns.Entry{Path: e.Path, Dir: e.Dir, Deleted: true})
		return nil
	})
	if err != nil {
		return mapErr(err)
	}
	dels = append(dels, ns.Entry{Path: srcPath, Dir: true, Deleted: true})
	return f.s.commit(ctx, append(entries, dels...), nil)
}

// About reports the account's usage: the bytes its live files occupy on
// providers (all shards, packs included) and the number of files, from
// the checkpoint's summaries and the changes since, so that costs the
// same for any size of namespace; and free, what the providers would
// still take from this account: each provider says how many more shard
// bytes it would accept from it (its free space and the admission
// policy's caps, shardproto Usage), and free is the most of that the
// remote's k+m segments can use, one shard of a segment per provider.
// Total is used + free. Where no provider answers (older providers) it
// falls back to the offered space of the account's own nodes.
func (f *Fs) About(ctx context.Context) (*fs.Usage, error) {
	a, err := f.s.allowance(ctx)
	if err != nil {
		return nil, mapErr(err)
	}
	u := &fs.Usage{Used: fs.NewUsageValue(a.Used), Objects: fs.NewUsageValue(a.Files)}
	if a.Known {
		u.Free = fs.NewUsageValue(a.Free)
		u.Total = fs.NewUsageValue(a.Total)
	}
	return u, nil
}

// Shutdown flushes pending changes.
func (f *Fs) Shutdown(ctx context.Context) error { return f.s.shutdown(ctx) }

// CloseSession ends the session f belongs to now, as rclone's exit does:
// it stops the session's background work (record keep-alive, device
// review, maintenance), flushes pending changes, leaves the network and
// releases the device slot. Every Fs of the session is unusable
// afterwards. Programs that embed the backend, and tests, call it before
// they remove the data folder; rclone's exit then does nothing more.
func (f *Fs) CloseSession(ctx context.Context) error { return f.s.close(ctx) }

// CleanUp frees the shards of contents no entry refers to any more.
func (f *Fs) CleanUp(ctx context.Context) error {
	return f.s.cleanUp(ctx, time.Duration(f.opt.CleanupGrace))
}

// ChangeNotify calls notify with the paths changed since it was called —
// by this process, or by other devices, whose heads it polls at the
// interval received on pollInterval (0 stops polling; closing the channel
// ends it).
func (f *Fs) ChangeNotify(ctx context.Context, notify func(string, fs.EntryType), pollInterval <-chan time.Duration) {
	cursor := f.s.changeCursor()
	go func() {
		var ticker *time.Ticker
		var tick <-chan time.Time
		defer func() {
			if ticker != nil {
				ticker.Stop()
			}
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case d, ok := <-pollInterval:
				if ticker != nil {
					ticker.Stop()
					ticker, tick = nil, nil
				}
				if !ok {
					return
				}
				if d > 0 {
					// Other devices' changes show within poll_interval
					// even if the mount's default (a minute) is longer.
					if pi := time.Duration(f.opt.PollInterval); pi > 0 && pi < d {
						d = pi
					}
					ticker = time.NewTicker(d)
					tick = ticker.C
				}
			case <-tick:
				if _, err := f.s.poll(ctx); err != nil {
					fs.Debugf(f, "jellyfish: poll: %v", err)
				}
				var changed []string
				changed, cursor = f.s.changesSince(cursor)
				for _, p := range changed {
					if f.root != "" && p != f.root && !strings.HasPrefix(p, f.root+"/") {
						continue
					}
					typ := fs.EntryObject
					if e, _ := f.s.log.view().Get(ctx, p); e != nil && e.Dir {
						typ = fs.EntryDirectory
					}
					notify(f.rel(p), typ)
				}
			}
		}
	}()
}

var commandHelp = []fs.CommandHelp{{
	Name:  "status",
	Short: "Show the network and the health of this account's data.",
	Long: `Prints the number of connected peers, the provider nodes holding this
account's data, and the weakest redundancy of any file: how many of its
shards are stored against the k it needs; the allowance (what about
shows: used, free and total in shard bytes), the nodes the account record
lists (linked or not, their reachability, how this device connects to
them) and the account's class at the providers. ` + "`jellyfish status`" + `
shows the same as text.

    jellyfish backend status jellyfish:
`,
}, {
	Name:  "maintain",
	Short: "Renew, audit and repair what this account stores.",
	Long: `Runs one maintenance round: renews the lease of every shard the file list
still uses at each of its holders (what it no longer uses lapses), asks a
few shards of each holder for a random leaf proof against the shard ID,
and rebuilds the shards of every segment whose healthy shards fell below
the repair threshold on other providers, recording their holders in this
device's log. A holder that does not answer counts as lost only once it
has failed for lost-after. Prints what it did as JSON.

    jellyfish backend maintain jellyfish:
    jellyfish backend maintain jellyfish: -o dry-run -o audits=8
`,
	Opts: map[string]string{
		"audits":     "leaf proofs asked of each holder (default 2)",
		"lost-after": "how long a holder may fail before its shards are rebuilt (default 72h)",
		"dry-run":    "count what would be repaired, repair nothing",
	},
}, {
	Name:  "holders",
	Short: "List the providers holding this account's shards.",
	Long: `Prints, as JSON, the account's ID and the providers (peer IDs) that
renewed its shards in this device's recent maintenance rounds (none
before the first). ` + "`jellyfish node --maintain`" + ` takes its test shards from them outside
its starters' share: their vetting of the node is what the account's
allowance there rests on.

    jellyfish backend holders jellyfish:
`,
}, {
	Name:  "rotate",
	Short: "Move the account to new keys and a new password.",
	Long: `Every device of an account holds its keys. Removing a lost or stolen
device from the device list does not take them back: rotate does. It
creates a new account (new identity and root key) under the same username
and a new password, copies every file into it (each downloaded and
uploaded again under the new keys, so this takes as long as uploading
everything), checks that both list the same files with the same sizes and
hashes, then retires the old password and recovery key and sets this
remote's password to the new one. Prints the new account's recovery key
once.

Devices still configured with the old password stop with a message saying
the account was rotated. What rotation cannot take back: the files as they
were at rotation, which the old keys still open while their shards live
(until their leases lapse, or for as long as the thief renews them).

The new password comes from -o new-password-file=PATH, else from
JELLYFISH_NEW_PASSWORD, else from the terminal. An interrupted rotation
leaves the old account working; run it again with the same new password
to resume.

    jellyfish backend rotate jellyfish:
`,
	Opts: map[string]string{
		"new-password-file": "file holding the new password",
	},
}, {
	Name:  "flush",
	Short: "Store pending changes now.",
}, {
	Name:  "checkpoint",
	Short: "Store pending changes with a checkpoint of the whole file list now.",
	Long: `The checkpoint holds every device's changes this device has read, so a
device whose changes it holds can be removed from the account with
` + "`jellyfish account devices --remove`" + `.

    jellyfish backend checkpoint jellyfish:
`,
}, {
	Name:  "poll",
	Short: "Read other devices' changes now.",
}}

// Command runs a backend-specific command.
func (f *Fs) Command(ctx context.Context, name string, arg []string, opt map[string]string) (any, error) {
	switch name {
	case "status":
		holders, files, minHeld, k, total, serr := f.s.providerSummary(ctx)
		providers, err := f.s.net.Providers(ctx)
		segs, shards := f.s.repairs.stats()
		out := map[string]any{
			"account":            f.s.acct.ID().String(),
			"device":             f.s.device.String(),
			"peers":              f.s.net.Peers(),
			"providers":          len(providers),
			"files":              files,
			"holders":            holders,
			"pending_changes":    f.s.log.pendingCount(),
			"log":                f.s.logStatus(),
			"local":              f.s.localStatus(),
			"repair_queue":       map[string]int{"segments": segs, "shards": shards},
			"packs":              f.s.packStatus(ctx),
			"redundancy_weakest": fmt.Sprintf("%d of %d shards stored (any %d rebuild)", minHeld, total, k),
			"lifetime":           f.s.lifetimeStatus(ctx),
		}
		if a, err := f.s.allowance(ctx); err == nil {
			out["allowance"] = a
		} else {
			out["allowance_error"] = err.Error()
		}
		if nodes, err := f.s.nodesStatus(ctx); err == nil {
			cls, view := f.s.classAtProviders(ctx, nodes)
			out["nodes"], out["class"] = nodes, cls
			if view != nil {
				out["earned_allowance"] = view.earnedWords()
			}
		} else {
			out["nodes_error"] = err.Error()
		}
		if cn, ok := f.s.net.(*clientNet); ok {
			out["clock"] = cn.clock.Status()
		}
		if err != nil {
			out["providers_error"] = err.Error()
		}
		if serr != nil {
			out["files_error"] = serr.Error()
		}
		return out, nil
	case "maintain":
		mo := maintainOptions{Audits: 2, Repair: true}
		if v, ok := opt["audits"]; ok {
			if _, err := fmt.Sscan(v, &mo.Audits); err != nil || mo.Audits < 0 {
				return nil, fmt.Errorf("jellyfish: maintain: audits=%q: want a count", v)
			}
		}
		if v, ok := opt["lost-after"]; ok {
			d, err := fs.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("jellyfish: maintain: lost-after=%q: want a duration", v)
			}
			mo.LostAfter = d
		}
		if _, ok := opt["dry-run"]; ok {
			mo.Repair = false
		}
		return f.s.maintain(ctx, mo)
	case "holders":
		return map[string]any{"account": f.s.acct.ID().String(), "holders": f.s.lastHolders()}, nil
	case "rotate":
		return f.rotate(ctx, opt)
	case "flush":
		return nil, f.s.flush(ctx)
	case "checkpoint":
		// A checkpoint is published in this device's log, which is read
		// only while the account record lists it.
		if err := f.s.ensureRegistered(ctx); err != nil {
			return nil, err
		}
		if _, err := f.s.poll(ctx); err != nil {
			return nil, err
		}
		if err := f.s.flush(ctx); err != nil {
			return nil, err
		}
		if err := f.s.checkpointNow(ctx); err != nil {
			return nil, err
		}
		return f.s.logStatus(), nil
	case "poll":
		changed, err := f.s.poll(ctx)
		return map[string]any{"changed": len(changed)}, err
	}
	return nil, fs.ErrorCommandNotFound
}

// Object is a file of the account.
type Object struct {
	fs     *Fs
	remote string
	entry  ns.Entry
}

// Fs returns the parent Fs.
func (o *Object) Fs() fs.Info { return o.fs }

// String returns the remote path.
func (o *Object) String() string {
	if o == nil {
		return "<nil>"
	}
	return o.remote
}

// Remote returns the remote path.
func (o *Object) Remote() string { return o.remote }

// ModTime returns the modification time.
func (o *Object) ModTime(ctx context.Context) time.Time { return o.entry.Time() }

// Size returns the size in bytes.
func (o *Object) Size() int64 { return o.entry.Size }

// Storable says the object can be stored.
func (o *Object) Storable() bool { return true }

// MimeType is unknown: names are all the backend keeps.
func (o *Object) MimeType(ctx context.Context) string { return "" }

// ID returns a stable identifier of the object's contents.
func (o *Object) ID() string { return fmt.Sprintf("%x", o.entry.Hash) }

// Hash returns the BLAKE3 hash of the plaintext.
func (o *Object) Hash(ctx context.Context, t hash.Type) (string, error) {
	if t != hash.BLAKE3 {
		return "", hash.ErrUnsupported
	}
	return fmt.Sprintf("%x", o.entry.Hash), nil
}

// SetModTime changes the modification time without uploading anything.
func (o *Object) SetModTime(ctx context.Context, t time.Time) error {
	p := o.fs.full(o.remote)
	cur, err := o.fs.s.log.view().Get(ctx, p)
	if err != nil {
		return mapErr(err)
	}
	if cur == nil {
		return fs.ErrorObjectNotFound
	}
	ne := *cur
	ne.ModTime = t.UnixNano()
	es := []ns.Entry{ne}
	if err := o.fs.s.commit(ctx, es, nil); err != nil {
		return err
	}
	o.entry = es[0]
	return nil
}

// Open returns a reader of the object, honouring range and seek options:
// only the segments covering the range are fetched.
func (o *Object) Open(ctx context.Context, options ...fs.OpenOption) (io.ReadCloser, error) {
	var off, limit int64 = 0, -1
	for _, opt := range options {
		switch x := opt.(type) {
		case *fs.RangeOption:
			off, limit = x.Decode(o.entry.Size)
		case *fs.SeekOption:
			off = x.Offset
		default:
			if opt.Mandatory() {
				fs.Logf(o, "jellyfish: unsupported mandatory option: %v", opt)
			}
		}
	}
	if off > o.entry.Size {
		off = o.entry.Size
	}
	if len(o.entry.Content) == 0 {
		data := o.entry.Inline[off:]
		if limit >= 0 && limit < int64(len(data)) {
			data = data[:limit]
		}
		return io.NopCloser(bytes.NewReader(data)), nil
	}
	var rc io.ReadCloser
	if m, ok, err := parseMember(o.entry.Content); err != nil {
		return nil, fserrors.NoRetryError(err)
	} else if ok {
		rc, err = o.fs.s.openMember(ctx, m, off, limit)
		if err != nil {
			return nil, mapErr(err)
		}
	} else {
		ref, err := o.fs.s.objectOf(ctx, o.entry.Content)
		if err != nil {
			return nil, mapErr(err)
		}
		if ref == nil {
			return nil, fserrors.NoRetryError(fmt.Errorf("jellyfish: %s has contents of an unknown kind", o.remote))
		}
		if rc, err = o.fs.s.store.Open(ctx, ref, off, limit); err != nil {
			return nil, mapErr(err)
		}
	}
	return &mappedReader{rc}, nil
}

// Update uploads new contents for the object. Files up to inline_max are
// kept inside the log batch, files up to pack_max are packed with others,
// larger ones become an object of their own.
func (o *Object) Update(ctx context.Context, in io.Reader, src fs.ObjectInfo, options ...fs.OpenOption) error {
	p := o.fs.full(o.remote)
	if p == "" {
		return errors.New("jellyfish: cannot write a file at the root")
	}
	if err := checkPath(p); err != nil {
		return err
	}
	if e, err := o.fs.s.log.view().Get(ctx, p); err != nil {
		return mapErr(err)
	} else if e != nil && e.Dir {
		return fs.ErrorIsDir
	}
	h := hashers.Get().(*blake3.Hasher)
	h.Reset()
	defer hashers.Put(h)
	inlineMax := min(int64(o.fs.opt.InlineMax), maxInlineMax)
	head := make([]byte, inlineMax+1)
	n, err := io.ReadFull(in, head)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return err
	}
	e := ns.Entry{Path: p, ModTime: src.ModTime(ctx).UnixNano()}
	var packed []journal.Data // the bytes of a packed file, for the journal
	data := head[:n:n]
	whole := int64(n) <= inlineMax // data is the whole file
	packMax := min(int64(o.fs.opt.PackMax), maxPackMax)
	if !whole && packMax > inlineMax && (src.Size() < 0 || src.Size() <= packMax) {
		// Read on up to pack_max+1 bytes to see whether the file fits a
		// pack, into a buffer of the announced size when there is one.
		want := packMax + 1
		if src.Size() >= 0 {
			want = min(want, src.Size()+1)
		}
		buf := bytes.NewBuffer(make([]byte, 0, max(want, int64(n))))
		buf.Write(data)
		if _, err := buf.ReadFrom(io.LimitReader(in, packMax+1-int64(n))); err != nil {
			return err
		}
		data = buf.Bytes()
		whole = int64(len(data)) <= packMax
	}
	switch {
	case whole && int64(len(data)) <= inlineMax:
		e.Inline = data
		e.Size = int64(len(data))
		h.Write(e.Inline)
	case whole:
		m, err := o.fs.s.packAdd(ctx, data)
		if err != nil {
			return mapErr(err)
		}
		e.Content, e.Size = m.marshal(), m.n
		h.Write(data)
		packed = []journal.Data{{Pack: m.pack, Off: m.off, Bytes: data}}
	default:
		// A device joins the account record with its first upload: a
		// record full at opening refuses it before any byte is sent; one
		// with room is joined while the upload runs (joinForChange).
		if err := o.fs.s.joinForChange(ctx); err != nil {
			return mapErr(err)
		}
		ref, err := o.fs.s.store.Put(ctx, o.fs.s.enc, io.TeeReader(io.MultiReader(bytes.NewReader(data), in), h))
		if err != nil {
			return mapErr(err)
		}
		if e.Content, err = o.fs.s.contentOf(ctx, ref); err != nil {
			return mapErr(err)
		}
		e.Size = ref.Layout.Size
	}
	e.Hash = h.Sum(nil)
	if src.Size() >= 0 && src.Size() != e.Size {
		return fmt.Errorf("jellyfish: uploaded %d bytes but the source said %d", e.Size, src.Size())
	}
	entries, err := o.fs.mkdirs(ctx, ns.Parent(p), o.fs.s.now())
	if err != nil {
		return err
	}
	entries = append(entries, e)
	if err := o.fs.s.commit(ctx, entries, packed); err != nil {
		return err
	}
	o.entry = entries[len(entries)-1]
	return nil
}

// Remove deletes the object.
func (o *Object) Remove(ctx context.Context) error {
	p := o.fs.full(o.remote)
	if e, err := o.fs.s.log.view().Get(ctx, p); err != nil {
		return mapErr(err)
	} else if e == nil {
		return fs.ErrorObjectNotFound
	}
	return o.fs.s.commit(ctx, []ns.Entry{{Path: p, Deleted: true}}, nil)
}

// hashers keeps BLAKE3 hashers for reuse: one is some 8 KiB, and a sync of
// small files would otherwise allocate one per file.
var hashers = sync.Pool{New: func() any { return blake3.New() }}

// mappedReader translates read errors into rclone's retry classes.
type mappedReader struct{ io.ReadCloser }

func (r *mappedReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = mapErr(err)
	}
	return n, err
}

// mapErr translates errors at the rclone boundary: integrity failures are
// not worth retrying, everything about reaching peers is.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case fserrors.IsFatalError(err):
		// The network is gone (objectStore.unreachable): no retry helps.
		return err
	case errors.Is(err, codec.ErrAuth), errors.Is(err, codec.ErrFormat), errors.Is(err, ns.ErrFormat):
		return fserrors.NoRetryError(fmt.Errorf("jellyfish: data failed its integrity check: %w", err))
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, shardstore.ErrOverAllowance):
		// Providers keep no more for this account: trying again soon
		// meets the same limits. The message says what to do.
		return fserrors.NoRetryError(err)
	case errors.Is(err, ErrTooFewNodes), errors.Is(err, codec.ErrTooFewShards), errors.Is(err, account.ErrUnreachable):
		return fserrors.RetryError(err)
	}
	return fserrors.RetryError(err)
}
