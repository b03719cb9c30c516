package ns

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// LogCache keeps a device's local copies of the log batches and
// checkpoints it read or wrote, so that a new process of the device does
// not fetch them from the network again. A stored batch or checkpoint never
// changes, so a copy named by the object's reference is never stale.
//
// Each copy is one file, named by the SHA-256 of the object reference in
// hex, holding
//
//	"JFlc" | version u8 (1) | nonce [12] | AES-256-GCM(key, nonce, ad = file name) of the object
//
// so a copy that was damaged, cut short or moved to another name is
// refused (and removed), never used.
//
// A LogCache is safe for concurrent use. Only one process may use a cache
// directory at a time (the device slot's lock).
type LogCache struct {
	dir  string
	aead cipher.AEAD

	mu   sync.Mutex
	used map[string]bool // files got or put since OpenLogCache
}

var cacheMagic = [4]byte{'J', 'F', 'l', 'c'}

const cacheVersion = 1

// LogCacheKeySize is the size of a LogCache key.
const LogCacheKeySize = 32

// OpenLogCache opens (creating it if needed) the cache in dir, whose copies
// are sealed under key.
func OpenLogCache(dir string, key []byte) (*LogCache, error) {
	if len(key) != LogCacheKeySize {
		return nil, fmt.Errorf("ns: log cache key of %d bytes", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ns: log cache: %w", err)
	}
	return &LogCache{dir: dir, aead: aead, used: map[string]bool{}}, nil
}

func cacheName(ref []byte) string {
	h := sha256.Sum256(ref)
	return hex.EncodeToString(h[:])
}

func (c *LogCache) header() int { return len(cacheMagic) + 1 + c.aead.NonceSize() }

// Get returns the copy of the object ref refers to, or false if there is
// none (or it does not open, in which case it is removed).
func (c *LogCache) Get(ref []byte) ([]byte, bool) {
	name := cacheName(ref)
	path := filepath.Join(c.dir, name)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	h := c.header()
	if len(b) < h+c.aead.Overhead() || !bytes.Equal(b[:len(cacheMagic)], cacheMagic[:]) || b[len(cacheMagic)] != cacheVersion {
		os.Remove(path)
		return nil, false
	}
	data, err := c.aead.Open(b[h:h], b[len(cacheMagic)+1:h], b[h:], []byte(name))
	if err != nil {
		os.Remove(path)
		return nil, false
	}
	c.mu.Lock()
	c.used[name] = true
	c.mu.Unlock()
	// The modification time is the last use: Trim drops the oldest.
	now := time.Now()
	os.Chtimes(path, now, now)
	return data, true
}

// Put stores a copy of data, the object ref refers to. The copy is written
// to a temporary file and renamed, so a crash leaves no partial copy under
// the final name.
func (c *LogCache) Put(ref, data []byte) error {
	name := cacheName(ref)
	h := c.header()
	b := make([]byte, h, h+len(data)+c.aead.Overhead())
	copy(b, cacheMagic[:])
	b[len(cacheMagic)] = cacheVersion
	if _, err := rand.Read(b[len(cacheMagic)+1 : h]); err != nil {
		return err
	}
	b = c.aead.Seal(b, b[len(cacheMagic)+1:h], data, []byte(name))
	f, err := os.CreateTemp(c.dir, name+".tmp-*")
	if err != nil {
		return fmt.Errorf("ns: log cache: %w", err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(c.dir, name))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("ns: log cache: %w", err)
	}
	c.mu.Lock()
	c.used[name] = true
	c.mu.Unlock()
	return nil
}

// Remove drops the copy of the object ref refers to, if there is one.
func (c *LogCache) Remove(ref []byte) {
	os.Remove(filepath.Join(c.dir, cacheName(ref)))
}

// Trim removes the least recently used copies until the cache holds at
// most max bytes, and returns its size after.
func (c *LogCache) Trim(max int64) (int64, error) {
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return 0, fmt.Errorf("ns: log cache: %w", err)
	}
	type file struct {
		name string
		size int64
		used time.Time
	}
	var files []file
	var total int64
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || fi.IsDir() {
			continue
		}
		files = append(files, file{e.Name(), fi.Size(), fi.ModTime()})
		total += fi.Size()
	}
	if total <= max {
		return total, nil
	}
	sort.Slice(files, func(i, j int) bool { return files[i].used.Before(files[j].used) })
	for _, f := range files {
		if total <= max {
			break
		}
		if err := os.Remove(filepath.Join(c.dir, f.name)); err == nil || errors.Is(err, os.ErrNotExist) {
			total -= f.size
		}
	}
	return total, nil
}

// Prune removes every copy not got or put since OpenLogCache (and leftover
// temporary files): called once the namespace is loaded, it leaves the
// copies of what that load read.
func (c *LogCache) Prune() (int, error) {
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return 0, fmt.Errorf("ns: log cache: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	n := 0
	for _, e := range ents {
		name := e.Name()
		if c.used[name] || (!strings.Contains(name, ".tmp-") && len(name) != 2*sha256.Size) {
			continue // in use, or not ours
		}
		if err := os.Remove(filepath.Join(c.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// Size returns the bytes of the copies in the cache.
func (c *LogCache) Size() (int64, error) {
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return 0, fmt.Errorf("ns: log cache: %w", err)
	}
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && !fi.IsDir() {
			n += fi.Size()
		}
	}
	return n, nil
}
