package record

import (
	"fmt"
	"strings"
)

// Namespace is the DHT namespace of every Jellyfish record. kad-dht routes
// keys starting with "/jf/" to the validator registered under this name.
const Namespace = "jf"

// ParsedKey is a DHT key split into the kind name and the kind-specific rest.
type ParsedKey struct {
	// KindName is the second path segment, e.g. "node".
	KindName string
	// Rest is everything after "/jf/<kind>/"; kinds decide what it means.
	Rest string
}

// ParseKey splits a key of the form "/jf/<kind name>/<rest>". It checks the
// namespace, the size bound and that neither part is empty; it does not know
// whether the kind exists.
func ParseKey(key string) (ParsedKey, error) {
	if len(key) > MaxKeySize {
		return ParsedKey{}, fmt.Errorf("record: key of %d bytes: %w", len(key), ErrBadKey)
	}
	rest, ok := strings.CutPrefix(key, "/"+Namespace+"/")
	if !ok {
		return ParsedKey{}, fmt.Errorf("record: key %q outside /%s/: %w", key, Namespace, ErrBadKey)
	}
	name, rest, ok := strings.Cut(rest, "/")
	if !ok || name == "" || rest == "" {
		return ParsedKey{}, fmt.Errorf("record: key %q is not /%s/<kind>/<id>: %w", key, Namespace, ErrBadKey)
	}
	return ParsedKey{KindName: name, Rest: rest}, nil
}

// keyFor builds "/jf/<name>/<rest>". Only the one key function of each kind
// calls it.
func keyFor(name, rest string) string {
	return "/" + Namespace + "/" + name + "/" + rest
}

// KeyFor builds "/jf/<kindName>/<rest>" for a kind defined outside this
// package. Like keyFor, only that kind's one key function may call it.
func KeyFor(kindName, rest string) string { return keyFor(kindName, rest) }
