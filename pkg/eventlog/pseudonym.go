package eventlog

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"os"
	"strings"
	"sync"
)

// MinKeyBytes is the shortest HMAC key a Pseudonymiser accepts.
const MinKeyBytes = 32

// KeyEnv is the environment variable that may hold the HMAC key itself, as
// an alternative to a key file.
const KeyEnv = "BULLSEYE_HMAC_KEY"

// Pseudonymiser replaces personal values by keyed pseudonyms: the lowercase
// hex HMAC-SHA256 of the value under a secret key. The same value always
// gives the same pseudonym under the same key, so pseudonyms still join and
// count, but they cannot be reversed without the key. Every Bullseye service
// is given the same key, so that all of them compute the same SubjectHash.
//
// A Pseudonymiser never prints its key: String, GoString and LogValue show
// only the key id. It is safe for concurrent use.
type Pseudonymiser struct {
	key   []byte
	keyID string
	pool  sync.Pool
}

// NewPseudonymiser returns a Pseudonymiser with key (at least MinKeyBytes
// bytes). keyID names the key on stored records so that keys can rotate;
// empty derives one from the key (KeyID).
func NewPseudonymiser(key []byte, keyID string) (*Pseudonymiser, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("HMAC key of %d bytes, want at least %d", len(key), MinKeyBytes)
	}
	if keyID == "" {
		keyID = KeyID(key)
	}
	if strings.ContainsAny(keyID, " \t\r\n.*>") {
		return nil, errors.New("HMAC key id holds a space, '.', '*' or '>'")
	}
	p := &Pseudonymiser{key: bytes.Clone(key), keyID: keyID}
	p.pool.New = func() any { return hmac.New(sha256.New, p.key) }
	return p, nil
}

// KeyID derives a key's id: "k" and the first 12 hex digits of the SHA-256 of
// a fixed label and the key. It identifies the key without revealing it.
func KeyID(key []byte) string {
	sum := sha256.Sum256(append([]byte("bullseye hmac key id\x00"), key...))
	return "k" + hex.EncodeToString(sum[:6])
}

// ReadKeyFile reads an HMAC key from a file: its whole content, without
// trailing spaces and line ends. Generate one with, e.g.,
// `head -c 32 /dev/urandom | base64 > hmac.key` (the text is the key).
func ReadKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the HMAC key: %w", err)
	}
	b = bytes.TrimRight(b, " \t\r\n")
	if len(b) < MinKeyBytes {
		return nil, fmt.Errorf("HMAC key in %s has %d bytes, want at least %d", path, len(b), MinKeyBytes)
	}
	return b, nil
}

// ErrNoKey is returned by LoadPseudonymiser when no key is configured.
var ErrNoKey = errors.New("no HMAC key: give a key file or set " + KeyEnv)

// LoadPseudonymiser loads the key the way every service should, so that all
// compute the same pseudonyms and subject hashes: from keyFile when it is
// set (ReadKeyFile), else from the environment variable KeyEnv, trimmed the
// same way. keyID is as for NewPseudonymiser. Without a key it returns
// ErrNoKey.
func LoadPseudonymiser(keyFile, keyID string) (*Pseudonymiser, error) {
	var key []byte
	switch env := os.Getenv(KeyEnv); {
	case keyFile != "":
		k, err := ReadKeyFile(keyFile)
		if err != nil {
			return nil, err
		}
		key = k
	case env != "":
		key = bytes.TrimRight([]byte(env), " \t\r\n")
	default:
		return nil, ErrNoKey
	}
	return NewPseudonymiser(key, keyID)
}

// KeyID returns the id of the Pseudonymiser's key.
func (p *Pseudonymiser) KeyID() string { return p.keyID }

// Pseudonymise returns the pseudonym of a personal value: the lowercase hex
// HMAC-SHA256 of the value after normalisation (surrounding spaces removed,
// lower case), so " Ana@Example.com" and "ana@example.com" give the same
// pseudonym.
func (p *Pseudonymiser) Pseudonymise(value string) string {
	return p.sum("v1 value\x00", strings.ToLower(strings.TrimSpace(value)))
}

// SubjectHash returns the keyed hash of a customer id that names the
// customer on the erasure list, on erasure receipts and in audit records:
// the lowercase hex HMAC-SHA256 of the id exactly as given, under a label
// distinct from Pseudonymise's, so a subject hash never equals a value's
// pseudonym.
func (p *Pseudonymiser) SubjectHash(customerID string) string {
	return p.sum("v1 subject\x00", customerID)
}

func (p *Pseudonymiser) sum(label, value string) string {
	h := p.pool.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(label))
	h.Write([]byte(value))
	var out [sha256.Size]byte
	s := hex.EncodeToString(h.Sum(out[:0]))
	p.pool.Put(h)
	return s
}

// String shows the key id only.
func (p *Pseudonymiser) String() string { return "Pseudonymiser(key " + p.keyID + ")" }

// GoString shows the key id only, also for %#v.
func (p *Pseudonymiser) GoString() string { return p.String() }

// LogValue shows the key id only in structured logs.
func (p *Pseudonymiser) LogValue() slog.Value { return slog.StringValue(p.String()) }
