package streams

import (
	"fmt"
	"slices"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// The two envelopes every delivery passes through, Event (EVENTS) and
// Delivery (DELIVERIES), encode and decode themselves field by field through
// msgpack's Encoder and Decoder instead of by reflection: the hot path
// encodes an event once and a delivery once per endpoint, and decodes each
// again. The bytes are exactly those of the reflective encoding of the
// struct tags (a test holds them equal), so stored messages of either kind
// read the same, and keys in any order or unknown to this build are read or
// skipped as the reflective decoder would.

var (
	_ msgpack.CustomEncoder = (*Event)(nil)
	_ msgpack.CustomDecoder = (*Event)(nil)
	_ msgpack.CustomEncoder = (*Delivery)(nil)
	_ msgpack.CustomDecoder = (*Delivery)(nil)
)

// EncodeMsgpack writes e as the map its msgpack tags describe. Its
// receiver is a pointer, so that msgpack does not copy the event into an
// interface to call it; an Event msgpack must encode is therefore
// addressable (a field of a value passed by pointer, as Marshal's are).
func (e *Event) EncodeMsgpack(enc *msgpack.Encoder) error {
	n := 6
	for _, s := range [...]string{e.Target, e.OrderingKey, e.TraceParent} {
		if s != "" {
			n++
		}
	}
	w := fieldWriter{enc: enc}
	w.mapLen(n)
	w.int("v", e.V)
	w.str("id", e.ID)
	w.str("type", e.Type)
	w.str("source", e.Source)
	w.key("time")
	if w.err == nil {
		w.err = enc.EncodeTime(e.Time)
	}
	w.key("data")
	if w.err == nil {
		w.err = enc.EncodeBytes(e.Data)
	}
	w.strOmitEmpty("target", e.Target)
	w.strOmitEmpty("ordering_key", e.OrderingKey)
	w.strOmitEmpty("traceparent", e.TraceParent)
	return w.err
}

// DecodeMsgpack reads an Event map, whatever its keys' order.
func (e *Event) DecodeMsgpack(dec *msgpack.Decoder) error {
	*e = Event{}
	return decodeMap(dec, "event", func(key []byte) error {
		var err error
		switch string(key) {
		case "v":
			e.V, err = dec.DecodeInt()
		case "id":
			e.ID, err = dec.DecodeString()
		case "type":
			e.Type, err = dec.DecodeString()
		case "source":
			e.Source, err = dec.DecodeString()
		case "time":
			if nilNext(dec) {
				return dec.DecodeNil()
			}
			e.Time, err = dec.DecodeTime()
		case "data":
			e.Data, err = decodeBytes(dec)
		case "target":
			e.Target, err = dec.DecodeString()
		case "ordering_key":
			e.OrderingKey, err = dec.DecodeString()
		case "traceparent":
			e.TraceParent, err = dec.DecodeString()
		default:
			err = dec.Skip()
		}
		return err
	})
}

// EncodeMsgpack writes d as the map its msgpack tags describe.
func (d *Delivery) EncodeMsgpack(enc *msgpack.Encoder) error {
	n := 4
	if d.DeadLetterID != "" {
		n++
	}
	if d.EventSeq != 0 {
		n++
	}
	w := fieldWriter{enc: enc}
	w.mapLen(n)
	w.int("v", d.V)
	w.key("event")
	if w.err == nil {
		w.err = d.Event.EncodeMsgpack(enc)
	}
	w.str("endpoint_id", d.EndpointID)
	w.int("generation", d.Generation)
	w.strOmitEmpty("dead_letter_id", d.DeadLetterID)
	if d.EventSeq != 0 {
		w.key("event_seq")
		if w.err == nil {
			w.err = enc.EncodeUint64(d.EventSeq)
		}
	}
	return w.err
}

// DecodeMsgpack reads a Delivery map, whatever its keys' order.
func (d *Delivery) DecodeMsgpack(dec *msgpack.Decoder) error {
	*d = Delivery{}
	return decodeMap(dec, "delivery", func(key []byte) error {
		var err error
		switch string(key) {
		case "v":
			d.V, err = dec.DecodeInt()
		case "event":
			err = d.Event.DecodeMsgpack(dec)
		case "endpoint_id":
			d.EndpointID, err = dec.DecodeString()
		case "generation":
			d.Generation, err = dec.DecodeInt()
		case "dead_letter_id":
			d.DeadLetterID, err = dec.DecodeString()
		case "event_seq":
			d.EventSeq, err = dec.DecodeUint64()
		default:
			err = dec.Skip()
		}
		return err
	})
}

// fieldWriter writes a map's keys and simple values, keeping the first
// error.
type fieldWriter struct {
	enc *msgpack.Encoder
	err error
}

func (w *fieldWriter) mapLen(n int) {
	if w.err == nil {
		w.err = w.enc.EncodeMapLen(n)
	}
}

func (w *fieldWriter) key(k string) {
	if w.err == nil {
		w.err = w.enc.EncodeString(k)
	}
}

func (w *fieldWriter) str(k, v string) {
	w.key(k)
	if w.err == nil {
		w.err = w.enc.EncodeString(v)
	}
}

func (w *fieldWriter) strOmitEmpty(k, v string) {
	if v != "" {
		w.str(k, v)
	}
}

func (w *fieldWriter) int(k string, v int) {
	w.key(k)
	if w.err == nil {
		w.err = w.enc.EncodeInt(int64(v))
	}
}

// maxKey is the longest map key the envelopes' decoders look at; a longer
// one is no field of theirs and is skipped with its value.
const maxKey = 32

// decodeMap reads a map (nil reads as an empty one), calling field with
// each key for it to decode the value that follows. Keys are read into a
// buffer on the stack: a field's name costs no allocation.
func decodeMap(dec *msgpack.Decoder, what string, field func(key []byte) error) error {
	n, err := dec.DecodeMapLen()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var buf [maxKey]byte
	for range max(n, 0) {
		kl, err := dec.DecodeBytesLen()
		if err != nil {
			return fmt.Errorf("%s key: %w", what, err)
		}
		if kl < 0 || kl > maxKey {
			// nil, or longer than any field: skip the key's bytes, then
			// its value.
			for kl > 0 {
				c := min(kl, maxKey)
				if err := dec.ReadFull(buf[:c]); err != nil {
					return fmt.Errorf("%s key: %w", what, err)
				}
				kl -= c
			}
			if err := dec.Skip(); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			continue
		}
		if err := dec.ReadFull(buf[:kl]); err != nil {
			return fmt.Errorf("%s key: %w", what, err)
		}
		if err := field(buf[:kl]); err != nil {
			return fmt.Errorf("%s.%s: %w", what, buf[:kl], err)
		}
	}
	return nil
}

// decodeBytes reads a bin (or str) value as bytes, nil for nil. Unlike the
// library's, it allocates no more than about twice the bytes that are
// there: a length that claims 4 GiB in a 20-byte message fails at its end
// instead of allocating what it claims.
func decodeBytes(dec *msgpack.Decoder) ([]byte, error) {
	n, err := dec.DecodeBytesLen()
	if err != nil || n < 0 {
		return nil, err
	}
	const chunk = 64 << 10
	b := make([]byte, min(n, chunk))
	if err := dec.ReadFull(b); err != nil {
		return nil, err
	}
	for len(b) < n {
		c := min(n-len(b), len(b))
		b = slices.Grow(b, c)[:len(b)+c]
		if err := dec.ReadFull(b[len(b)-c:]); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// nilNext reports whether the next value is nil.
func nilNext(dec *msgpack.Decoder) bool {
	c, err := dec.PeekCode()
	return err == nil && c == msgpcode.Nil
}
