package streams

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
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

// Versioned is every stored type: it carries a version field that Marshal
// stamps and Unmarshal checks. Other packages' stored records implement it
// too, to use Get, Put and Update.
type Versioned interface {
	// EnvelopeVersion returns the version the value carries and the one
	// this build reads and writes.
	EnvelopeVersion() (got, want int)
	// SetEnvelopeVersion stamps the version this build writes.
	SetEnvelopeVersion()
}

func (e *Event) EnvelopeVersion() (int, int) { return e.V, EventVersion }
func (d *Delivery) EnvelopeVersion() (int, int) {
	if d.V == DeliveryVersion && d.Event.V != EventVersion {
		return d.Event.V, EventVersion
	}
	return d.V, DeliveryVersion
}
func (d *DeadLetter) EnvelopeVersion() (int, int) {
	if d.V == DeadLetterVersion && d.Event.V != EventVersion {
		return d.Event.V, EventVersion
	}
	return d.V, DeadLetterVersion
}
func (a *Attempt) EnvelopeVersion() (int, int)       { return a.V, AttemptVersion }
func (h *Health) EnvelopeVersion() (int, int)        { return h.V, RecordVersion }
func (e *Endpoint) EnvelopeVersion() (int, int)      { return e.V, RecordVersion }
func (s *DeliveryState) EnvelopeVersion() (int, int) { return s.V, RecordVersion }
func (s *EventIndex) EnvelopeVersion() (int, int)    { return s.V, RecordVersion }
func (s *DLQState) EnvelopeVersion() (int, int)      { return s.V, RecordVersion }

func (e *Event) SetEnvelopeVersion()         { e.V = EventVersion }
func (d *Delivery) SetEnvelopeVersion()      { d.V, d.Event.V = DeliveryVersion, EventVersion }
func (d *DeadLetter) SetEnvelopeVersion()    { d.V, d.Event.V = DeadLetterVersion, EventVersion }
func (a *Attempt) SetEnvelopeVersion()       { a.V = AttemptVersion }
func (h *Health) SetEnvelopeVersion()        { h.V = RecordVersion }
func (e *Endpoint) SetEnvelopeVersion()      { e.V = RecordVersion }
func (s *DeliveryState) SetEnvelopeVersion() { s.V = RecordVersion }
func (s *EventIndex) SetEnvelopeVersion()    { s.V = RecordVersion }
func (s *DLQState) SetEnvelopeVersion()      { s.V = RecordVersion }

// Marshal encodes a stored type as msgpack, filling in its version.
func Marshal(v Versioned) ([]byte, error) {
	v.SetEnvelopeVersion()
	var size int
	var enc msgpack.CustomEncoder
	switch v := v.(type) {
	case *Event:
		size, enc = v.encodedSizeHint(), v
	case *Delivery:
		size, enc = v.Event.encodedSizeHint()+len(v.EndpointID)+len(v.DeadLetterID)+64, v
	default:
		return msgpack.Marshal(v)
	}
	// The hot envelopes are written by their own encoders, straight into a
	// buffer of about their size rather than one grown by doubling from 64
	// bytes.
	buf := bytes.NewBuffer(make([]byte, 0, size))
	e := msgpack.GetEncoder()
	e.Reset(buf)
	err := enc.EncodeMsgpack(e)
	msgpack.PutEncoder(e)
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// encodedSizeHint is about the bytes e's envelope takes: its fields and
// data, and room for keys and headers.
func (e *Event) encodedSizeHint() int {
	return len(e.ID) + len(e.Type) + len(e.Source) + len(e.Data) + len(e.Target) + len(e.OrderingKey) + len(e.TraceParent) + 96
}

// Unmarshal decodes msgpack into v and checks its version. It never panics,
// whatever the input.
func Unmarshal(b []byte, v Versioned) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decode envelope: %v", r)
		}
	}()
	if len(b) >= scanNestingFrom {
		if err := checkNesting(b); err != nil {
			return fmt.Errorf("decode envelope: %w", err)
		}
	}
	if dec, ok := v.(msgpack.CustomDecoder); ok {
		// The hot envelopes decode themselves, from a pooled reader.
		d := decoders.Get().(*sliceDecoder)
		d.r.Reset(b)
		d.dec.Reset(&d.r)
		err = dec.DecodeMsgpack(d.dec)
		d.r.Reset(nil)
		decoders.Put(d)
	} else {
		err = msgpack.Unmarshal(b, v)
	}
	if err != nil {
		return fmt.Errorf("decode envelope: %w", err)
	}
	if got, want := v.EnvelopeVersion(); got != want {
		return fmt.Errorf("decode envelope: version %d, want %d: %w", got, want, ErrVersion)
	}
	return nil
}

// sliceDecoder is a decoder with the reader of the bytes it decodes, pooled
// together.
type sliceDecoder struct {
	dec *msgpack.Decoder
	r   bytes.Reader
}

var decoders = sync.Pool{New: func() any { return &sliceDecoder{dec: msgpack.NewDecoder(nil)} }}

// maxNesting bounds how deeply arrays and maps nest in a stored message;
// hookstream's own nest a few levels. msgpack's decoder recurses once per
// level, and a few MiB of nested arrays would overflow the goroutine's
// stack: a crash no recover catches, from one message on a stream.
const maxNesting = 64

// scanNestingFrom is the size from which a message is scanned for nesting
// before it is decoded: a shorter one cannot nest deeply enough to matter
// (every level is at least a byte), and the hot path's messages are far
// shorter.
const scanNestingFrom = 64 << 10

// checkNesting walks b's first value without recursion and refuses it when
// arrays or maps nest deeper than maxNesting. What it cannot read it leaves
// to the decoder to report.
func checkNesting(b []byte) error {
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	left := []int{1} // values still to read at each open level
	for len(left) > 0 {
		top := len(left) - 1
		if left[top] == 0 {
			left = left[:top]
			continue
		}
		left[top]--
		c, err := dec.PeekCode()
		if err != nil {
			return nil
		}
		var n int
		switch {
		case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
			n, err = dec.DecodeMapLen()
			n *= 2
		case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
			n, err = dec.DecodeArrayLen()
		default:
			if dec.Skip() != nil {
				return nil
			}
			continue
		}
		if err != nil {
			return nil
		}
		if len(left) > maxNesting {
			return fmt.Errorf("arrays and maps nested more than %d deep", maxNesting)
		}
		left = append(left, n)
	}
	return nil
}
