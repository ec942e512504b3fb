package eventlog

import (
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/bullseye-ml/bullseye/pkg/fault"
)

// Partitions is the number of partitions of the events stream. A customer's
// partition is Partition(id); feature replicas divide the partitions among
// themselves. It is part of the stored layout: changing it moves customers
// to other subjects, so it never changes without a migration.
const Partitions = 16

// Subject prefixes of the streams.
const (
	// EventsPrefix starts every subject of the events stream.
	EventsPrefix = "bullseye.events"
	// DeadLettersPrefix starts every subject of the dead-letter stream.
	DeadLettersPrefix = "bullseye.deadletters"
	// AuditPrefix starts every subject of the audit stream.
	AuditPrefix = "bullseye.audit"
)

// UnidentifiedDeadLetters is the dead-letter subject of items with no usable
// customer or anonymous id (missing, or refused as an email address or a
// phone number).
const UnidentifiedDeadLetters = DeadLettersPrefix + ".unidentified"

// Kind says which id a subject is keyed by.
type Kind string

// The kinds of subject keys.
const (
	// KindUser keys a subject by a customer id (user_id).
	KindUser Kind = "u"
	// KindAnonymous keys a subject by an anonymous visitor id, for records
	// without a customer id.
	KindAnonymous Kind = "a"
)

// Type is the last token of an events subject: the record's type.
type Type string

// The record types, as they appear in subjects and in HeaderType.
const (
	// TypeTrack is a behavioural event (EVENT_TYPE_TRACK).
	TypeTrack Type = "track"
	// TypeIdentify is a trait update (EVENT_TYPE_IDENTIFY).
	TypeIdentify Type = "identify"
	// TypeConsent is a consent change (EVENT_TYPE_CONSENT).
	TypeConsent Type = "consent"
	// TypeErasure is an erasure order (EVENT_TYPE_ERASURE).
	TypeErasure Type = "erasure"
)

// DataTypes are the record types that hold a customer's data (every type but
// TypeErasure): the ones ForgetUser purges.
var DataTypes = []Type{TypeTrack, TypeIdentify, TypeConsent}

// Message headers.
const (
	// HeaderMsgID is JetStream's de-duplication header ("Nats-Msg-Id"),
	// set to the record's message id.
	HeaderMsgID = "Nats-Msg-Id"
	// HeaderType carries the record's Type, so that a consumer can skip
	// records without decoding them.
	HeaderType = "Bullseye-Type"
)

// Key identifies whose subject a record is stored on.
type Key struct {
	// Kind says whether ID is a customer id or an anonymous id.
	Kind Kind
	// ID is the id exactly as the client sent it; never empty.
	ID string
}

// UserKey returns the key of a customer id.
func UserKey(id string) Key { return Key{Kind: KindUser, ID: id} }

// AnonymousKey returns the key of an anonymous visitor id.
func AnonymousKey(id string) Key { return Key{Kind: KindAnonymous, ID: id} }

// ErrEmptyID is returned for an empty id, which has no subject.
var ErrEmptyID = errors.New("empty id")

// Partition returns the partition (0 to Partitions-1) of an id: the FNV-1a
// 32-bit hash of its bytes modulo Partitions. It never changes for an id.
func Partition(id string) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % Partitions)
}

// ErrIDTooLong is returned for an id longer than fault.MaxIDBytes, which
// every service refuses at its door: its subjects would near NATS's 4 KiB
// control line, past which the server closes the connection.
var ErrIDTooLong = fmt.Errorf("id is longer than %d bytes", fault.MaxIDBytes)

// EncodeID turns an id into a subject token: unpadded base64url of its
// bytes, so ids holding ".", "*", ">" or spaces make a single, valid token,
// and DecodeID gives the id back. An empty id has no token.
func EncodeID(id string) (string, error) {
	if id == "" {
		return "", ErrEmptyID
	}
	if len(id) > fault.MaxIDBytes {
		return "", ErrIDTooLong
	}
	return base64.RawURLEncoding.EncodeToString([]byte(id)), nil
}

// DecodeID is the inverse of EncodeID.
func DecodeID(token string) (string, error) {
	if token == "" {
		return "", ErrEmptyID
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", fmt.Errorf("decoding subject token %q: %w", token, err)
	}
	return string(b), nil
}

// EventSubject returns the subject records of type t for key are stored on:
// bullseye.events.<partition>.<kind>.<token>.<type>.
func EventSubject(key Key, t Type) (string, error) {
	base, err := EventSubjectBase(key)
	if err != nil {
		return "", err
	}
	return base + "." + string(t), nil
}

// EventSubjectBase returns the subject of key without its type token; add
// ".>" or ".*" to match all of the key's records.
func EventSubjectBase(key Key) (string, error) {
	tok, err := EncodeID(key.ID)
	if err != nil {
		return "", err
	}
	if key.Kind != KindUser && key.Kind != KindAnonymous {
		return "", fmt.Errorf("unknown subject kind %q", key.Kind)
	}
	return EventsPrefix + "." + strconv.Itoa(Partition(key.ID)) + "." + string(key.Kind) + "." + tok, nil
}

// PartitionFilter returns the subject filter that matches every record of
// partition p: bullseye.events.<p>.>.
func PartitionFilter(p int) string {
	return EventsPrefix + "." + strconv.Itoa(p) + ".>"
}

// DeadLetterSubject returns the subject of key's dead letters:
// bullseye.deadletters.<kind>.<token>.
func DeadLetterSubject(key Key) (string, error) {
	tok, err := EncodeID(key.ID)
	if err != nil {
		return "", err
	}
	if key.Kind != KindUser && key.Kind != KindAnonymous {
		return "", fmt.Errorf("unknown subject kind %q", key.Kind)
	}
	return DeadLettersPrefix + "." + string(key.Kind) + "." + tok, nil
}

// EventSubjectInfo is what an events subject says.
type EventSubjectInfo struct {
	// Partition is the subject's partition.
	Partition int
	// Key is the customer or anonymous id the subject belongs to.
	Key Key
	// Type is the record type.
	Type Type
}

// ParseEventSubject reads an events subject written by EventSubject.
func ParseEventSubject(subject string) (EventSubjectInfo, error) {
	rest, ok := strings.CutPrefix(subject, EventsPrefix+".")
	parts := strings.Split(rest, ".")
	if !ok || len(parts) != 4 {
		return EventSubjectInfo{}, fmt.Errorf("subject %q is not an events subject", subject)
	}
	p, err := strconv.Atoi(parts[0])
	if err != nil || p < 0 || p >= Partitions {
		return EventSubjectInfo{}, fmt.Errorf("subject %q: bad partition %q", subject, parts[0])
	}
	kind := Kind(parts[1])
	if kind != KindUser && kind != KindAnonymous {
		return EventSubjectInfo{}, fmt.Errorf("subject %q: bad kind %q", subject, parts[1])
	}
	id, err := DecodeID(parts[2])
	if err != nil {
		return EventSubjectInfo{}, fmt.Errorf("subject %q: %w", subject, err)
	}
	return EventSubjectInfo{Partition: p, Key: Key{Kind: kind, ID: id}, Type: Type(parts[3])}, nil
}

// AuditRequestedSubject is the subject of the audit records ForgetUser
// writes for an erasure, one per call.
func AuditRequestedSubject(erasureID string) string {
	return AuditPrefix + ".erasure." + erasureID + ".requested"
}

// AuditAppliedSubject is the subject on which the feature service reports,
// with an ErasureApplied record, that it applied an erasure record.
func AuditAppliedSubject(erasureID string) string {
	return AuditPrefix + ".erasure." + erasureID + ".applied"
}
