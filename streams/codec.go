package streams

import (
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Envelope versions. A decoder refuses a version it does not know rather
// than guess at its fields.
const (
	EventVersion      = 1
	DeliveryVersion   = 1
	DeadLetterVersion = 1
	AttemptVersion    = 1
	RecordVersion     = 1
)

// ErrVersion is returned when a stored envelope has a missing or unknown
// version.
var ErrVersion = errors.New("unknown envelope version")

// Versioned is every stored type: its version field and what it expects.
type Versioned interface {
	version() (got, want int)
}

func (e *Event) version() (int, int)         { return e.V, EventVersion }
func (d *Delivery) version() (int, int)      { return d.V, DeliveryVersion }
func (d *DeadLetter) version() (int, int)    { return d.V, DeadLetterVersion }
func (a *Attempt) version() (int, int)       { return a.V, AttemptVersion }
func (h *Health) version() (int, int)        { return h.V, RecordVersion }
func (e *Endpoint) version() (int, int)      { return e.V, RecordVersion }
func (s *DeliveryState) version() (int, int) { return s.V, RecordVersion }
func (s *EventIndex) version() (int, int)    { return s.V, RecordVersion }
func (s *DLQState) version() (int, int)      { return s.V, RecordVersion }

// Marshal encodes a stored type as msgpack, filling in its version.
func Marshal(v Versioned) ([]byte, error) {
	setVersion(v)
	return msgpack.Marshal(v)
}

// Unmarshal decodes msgpack into v and checks its version. It never panics,
// whatever the input.
func Unmarshal(b []byte, v Versioned) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decode envelope: %v", r)
		}
	}()
	if err := msgpack.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode envelope: %w", err)
	}
	if got, want := v.version(); got != want {
		return fmt.Errorf("decode envelope: version %d, want %d: %w", got, want, ErrVersion)
	}
	return nil
}

func setVersion(v Versioned) {
	switch x := v.(type) {
	case *Event:
		x.V = EventVersion
	case *Delivery:
		x.V = DeliveryVersion
		x.Event.V = EventVersion
	case *DeadLetter:
		x.V = DeadLetterVersion
		x.Event.V = EventVersion
	case *Attempt:
		x.V = AttemptVersion
	case *Health:
		x.V = RecordVersion
	case *Endpoint:
		x.V = RecordVersion
	case *DeliveryState:
		x.V = RecordVersion
	case *EventIndex:
		x.V = RecordVersion
	case *DLQState:
		x.V = RecordVersion
	}
}
