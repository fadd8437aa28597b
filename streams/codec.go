package streams

import (
	"bytes"
	"errors"
	"fmt"
	"io"
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
	// Every message's shape is checked before it is decoded (about 0.45 µs
	// for a delivery): lengths that claim more than the message holds, or
	// nesting deeper than maxNesting, never reach msgpack's decoder.
	d := decoders.Get().(*sliceDecoder)
	defer func() {
		d.r.Reset(nil)
		decoders.Put(d)
	}()
	d.r.Reset(b)
	d.dec.Reset(&d.r)
	if err := checkShape(d.dec, &d.r); err != nil {
		return fmt.Errorf("decode envelope: %w", err)
	}
	if dec, ok := v.(msgpack.CustomDecoder); ok {
		// The hot envelopes decode themselves, with the same decoder.
		d.r.Reset(b)
		d.dec.Reset(&d.r)
		err = dec.DecodeMsgpack(d.dec)
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

// checkShape walks the message's first value without recursion and refuses
// it when arrays or maps nest deeper than maxNesting, when one claims more
// elements than there are bytes left (every element takes one at least), or
// when a string, bin or ext claims more bytes than are left: msgpack's
// reflective decoder allocates a slice of the claimed length before reading
// it (gigabytes for a five-byte array header), and its pooled decoders keep
// a buffer grown toward a claimed length. What it cannot read it leaves to
// the decoder to report.
//
// dec reads from r, and r holds the message.
func checkShape(dec *msgpack.Decoder, r *bytes.Reader) error {
	var stack [maxNesting + 2]int
	left := append(stack[:0], 1) // values still to read at each open level
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
		case msgpcode.IsString(c) || msgpcode.IsBin(c) || msgpcode.IsExt(c):
			// Read past the bytes only once they are known to be there:
			// msgpack's pooled decoders keep a buffer grown to what a
			// length claims, a megabyte more for every such message.
			var l int
			if msgpcode.IsExt(c) {
				_, l, err = dec.DecodeExtHeader()
			} else {
				l, err = dec.DecodeBytesLen()
			}
			if err != nil {
				return nil
			}
			if l > r.Len() {
				return fmt.Errorf("a value claims %d bytes with %d left", l, r.Len())
			}
			if l > 0 {
				if _, err := r.Seek(int64(l), io.SeekCurrent); err != nil {
					return nil
				}
			}
			continue
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
		if n > r.Len() {
			return fmt.Errorf("an array or map claims %d values with %d bytes left", n, r.Len())
		}
		left = append(left, n)
	}
	return nil
}
