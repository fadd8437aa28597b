package streams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Event limits.
const (
	MaxTypeLength   = 128
	MaxIDLength     = 256
	MaxSourceLength = 64
	// MaxOrderingKeyLength bounds an event's ordering key, in bytes.
	MaxOrderingKeyLength = 128
	// DefaultSource is an event's source when the publisher names none.
	DefaultSource = "default"
)

var (
	typeRE   = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)*$`)
	sourceRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// ErrInvalidEvent is wrapped by every event validation error.
var ErrInvalidEvent = errors.New("invalid event")

// Event is what happened, as stored in EVENTS and embedded in deliveries and
// dead letters. On the wire to endpoints it is JSON (WebhookBody).
type Event struct {
	V      int       `msgpack:"v"`
	ID     string    `msgpack:"id"`
	Type   string    `msgpack:"type"`
	Source string    `msgpack:"source"`
	Time   time.Time `msgpack:"time"`
	// Data is the event's JSON object, kept as raw bytes so that it reaches
	// endpoints exactly as published.
	Data []byte `msgpack:"data"`
	// Target, when set, is the one endpoint a targeted event goes to,
	// whatever the endpoints' type filters.
	Target string `msgpack:"target,omitempty"`
	// OrderingKey, when set, orders the event after every earlier event
	// of the same key on an ordered endpoint; without one, an ordered
	// endpoint orders the event by its own id (LaneKey).
	OrderingKey string `msgpack:"ordering_key,omitempty"`
	// TraceParent is the W3C traceparent the event was published with, if
	// any: every webhook request of its deliveries carries it.
	TraceParent string `msgpack:"traceparent,omitempty"`
}

// LaneKey is the key an ordered endpoint orders ev by: its ordering key, or
// its id when it has none.
func (e *Event) LaneKey() string {
	if e.OrderingKey != "" {
		return e.OrderingKey
	}
	return e.ID
}

// Lane is the lane, of an ordered endpoint's partitions, that e's
// deliveries go through.
func (e *Event) Lane(partitions int) int { return LaneOf(e.LaneKey(), partitions) }

// ValidateOrderingKey checks an ordering key: at most 128 bytes of UTF-8
// with no control characters (empty is no key).
func ValidateOrderingKey(k string) error {
	switch {
	case len(k) > MaxOrderingKeyLength:
		return fmt.Errorf("ordering_key: longer than %d bytes: %w", MaxOrderingKeyLength, ErrInvalidEvent)
	case !utf8.ValidString(k):
		return fmt.Errorf("ordering_key: not valid UTF-8: %w", ErrInvalidEvent)
	}
	for _, r := range k {
		if r < ' ' || r == 0x7f {
			return fmt.Errorf("ordering_key: must not contain control characters: %w", ErrInvalidEvent)
		}
	}
	return nil
}

// traceParentRE is a W3C Trace Context traceparent: version 00 (or a later
// one, which must keep the same first four fields), a 32-hex trace id and a
// 16-hex parent id, neither all zeros, and 2-hex flags.
var traceParentRE = regexp.MustCompile(`^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?$`)

// ValidateTraceParent checks a W3C traceparent header value.
func ValidateTraceParent(tp string) error {
	if len(tp) > 256 || !traceParentRE.MatchString(tp) || strings.HasPrefix(tp, "ff-") ||
		tp[3:35] == strings.Repeat("0", 32) || tp[36:52] == strings.Repeat("0", 16) || (strings.HasPrefix(tp, "00-") && len(tp) != 55) {
		return fmt.Errorf("traceparent: %q is not a W3C traceparent (00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>): %w", cut(tp, 80), ErrInvalidEvent)
	}
	return nil
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// ValidateType checks an event type: [a-z0-9_]+(\.[a-z0-9_]+)*, at most 128 characters.
func ValidateType(t string) error {
	switch {
	case t == "":
		return fmt.Errorf("type: required: %w", ErrInvalidEvent)
	case len(t) > MaxTypeLength:
		return fmt.Errorf("type: longer than %d characters: %w", MaxTypeLength, ErrInvalidEvent)
	case !typeRE.MatchString(t):
		return fmt.Errorf("type: %q must be dot-separated lower-case words ([a-z0-9_]+(.[a-z0-9_]+)*): %w", t, ErrInvalidEvent)
	}
	return nil
}

// ValidateSource checks a source id: a NATS-subject-safe token of letters,
// digits, '_' and '-', at most 64 characters.
func ValidateSource(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("source: required: %w", ErrInvalidEvent)
	case len(s) > MaxSourceLength:
		return fmt.Errorf("source: longer than %d characters: %w", MaxSourceLength, ErrInvalidEvent)
	case !sourceRE.MatchString(s):
		return fmt.Errorf("source: %q may hold only letters, digits, '_' and '-': %w", s, ErrInvalidEvent)
	}
	return nil
}

// ValidateID checks an event id: 1 to 256 bytes of UTF-8 with no spaces or
// control characters.
func ValidateID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("id: required: %w", ErrInvalidEvent)
	case len(id) > MaxIDLength:
		return fmt.Errorf("id: longer than %d bytes: %w", MaxIDLength, ErrInvalidEvent)
	case !utf8.ValidString(id):
		return fmt.Errorf("id: not valid UTF-8: %w", ErrInvalidEvent)
	}
	for _, r := range id {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("id: must not contain spaces or control characters: %w", ErrInvalidEvent)
		}
	}
	return nil
}

// ValidateData checks that data is one JSON object of at most maxBytes.
func ValidateData(data []byte, maxBytes int) error {
	if len(data) > maxBytes {
		return fmt.Errorf("data: %d bytes is over the limit of %d: %w", len(data), maxBytes, ErrInvalidEvent)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return fmt.Errorf("data: required: %w", ErrInvalidEvent)
	}
	if trimmed[0] != '{' || !json.Valid(trimmed) {
		return fmt.Errorf("data: must be a JSON object: %w", ErrInvalidEvent)
	}
	return nil
}

// Validate checks every field of a complete event (id, type, source, time
// and data set) against the limits, naming the first bad field.
func (e *Event) Validate(maxData int) error {
	if err := ValidateID(e.ID); err != nil {
		return err
	}
	if err := ValidateType(e.Type); err != nil {
		return err
	}
	if err := ValidateSource(e.Source); err != nil {
		return err
	}
	if e.Time.IsZero() {
		return fmt.Errorf("time: required: %w", ErrInvalidEvent)
	}
	if e.Target != "" {
		if err := ValidateSource(e.Target); err != nil {
			return fmt.Errorf("target: %w", err)
		}
	}
	if err := ValidateOrderingKey(e.OrderingKey); err != nil {
		return err
	}
	if e.TraceParent != "" {
		if err := ValidateTraceParent(e.TraceParent); err != nil {
			return err
		}
	}
	return ValidateData(e.Data, maxData)
}

// webhookBody is the JSON body of a webhook request.
type webhookBody struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Source    string `json:"source"`
	Timestamp string `json:"timestamp"`
	// OrderingKey is sent only when the event has one.
	OrderingKey string          `json:"ordering_key,omitempty"`
	Data        json.RawMessage `json:"data"`
}

// WebhookBody is the JSON body POSTed to endpoints:
// {"id","type","source","timestamp","data"}, with "ordering_key" when the
// event has one.
func (e *Event) WebhookBody() ([]byte, error) {
	return json.Marshal(webhookBody{
		ID:          e.ID,
		Type:        e.Type,
		Source:      e.Source,
		Timestamp:   e.Time.UTC().Format(time.RFC3339Nano),
		OrderingKey: e.OrderingKey,
		Data:        json.RawMessage(e.Data),
	})
}
