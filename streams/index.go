package streams

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// scanBatch is how many messages one batched direct get asks for.
const scanBatch = 1000

// FindIndex returns the latest INDEX entry of event id (a fan-out that ran
// twice wrote two), or nil when the fan-out has not written one. It reads
// the id's hash bucket with batched direct gets: ~150 entries at 10 million
// stored events.
func FindIndex(ctx context.Context, js jetstream.JetStream, id string) (*EventIndex, error) {
	var found *EventIndex
	err := ScanSubject(ctx, js, StreamIndex, IndexSubject(id), 1, 0, func(m *jetstream.RawStreamMsg) bool {
		var e EventIndex
		if err := Unmarshal(m.Data, &e); err == nil && e.EventID == id {
			found = &e
		}
		return true
	})
	return found, err
}

// ScanSubject reads the messages of stream on subject (wildcards allowed)
// from sequence seq on, in batched direct gets, until fn returns false, the
// subject is exhausted or limit messages were read (0: no limit).
func ScanSubject(ctx context.Context, js jetstream.JetStream, stream, subject string, seq uint64, limit int, fn func(*jetstream.RawStreamMsg) bool) error {
	read := 0
	for {
		msgs, err := jetstreamext.GetBatch(ctx, js, stream, scanBatch, jetstreamext.GetBatchSeq(max(seq, 1)), jetstreamext.GetBatchSubject(subject))
		if err != nil {
			return err
		}
		n := 0
		for m, err := range msgs {
			if errors.Is(err, jetstreamext.ErrNoMessages) {
				return nil
			}
			if err != nil {
				return err
			}
			n++
			read++
			seq = m.Sequence + 1
			if !fn(m) || (limit > 0 && read >= limit) {
				return nil
			}
		}
		if n < scanBatch {
			return nil
		}
	}
}
