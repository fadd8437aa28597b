package streams

import (
	"fmt"
)

// AttemptBatchMax is the most attempts one ATTEMPTS message holds.
const AttemptBatchMax = 64

// AttemptBatch is one ATTEMPTS message that holds several attempts of one
// endpoint, oldest first. Dispatchers log successful sends this way, a
// batch per endpoint every few milliseconds, so that a busy endpoint's
// attempt log costs one stored message per batch rather than one per
// delivery. A failed attempt is always a message of its own (an Attempt).
//
// The log's bound (the ATTEMPTS stream's per-subject limit) counts
// messages: an endpoint's log keeps its last AttemptsPerEndpoint messages,
// that is at least as many attempts, and at most AttemptBatchMax times as
// many successes.
type AttemptBatch struct {
	V     int       `msgpack:"v"`
	Batch []Attempt `msgpack:"batch"`
}

func (b *AttemptBatch) EnvelopeVersion() (int, int) { return b.V, AttemptVersion }
func (b *AttemptBatch) SetEnvelopeVersion() {
	b.V = AttemptVersion
	for i := range b.Batch {
		b.Batch[i].V = AttemptVersion
	}
}

// attemptMessage reads either form of an ATTEMPTS message: one attempt's
// fields at the top level, or a batch under "batch".
type attemptMessage struct {
	Attempt `msgpack:",inline"`
	Batch   []Attempt `msgpack:"batch,omitempty"`
}

func (m *attemptMessage) EnvelopeVersion() (int, int) { return m.V, AttemptVersion }
func (m *attemptMessage) SetEnvelopeVersion()         { m.V = AttemptVersion }

// DecodeAttempts reads one ATTEMPTS message: a single attempt (as every
// failed attempt, and the log before batches, is stored) or a batch. The
// attempts come oldest first.
func DecodeAttempts(b []byte) ([]Attempt, error) {
	var m attemptMessage
	if err := Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if len(m.Batch) == 0 {
		return []Attempt{m.Attempt}, nil
	}
	for i := range m.Batch {
		if m.Batch[i].V != AttemptVersion {
			return nil, fmt.Errorf("decode envelope: attempt %d of the batch: version %d, want %d: %w", i, m.Batch[i].V, AttemptVersion, ErrVersion)
		}
	}
	return m.Batch, nil
}

// MarshalAttempts encodes attempts (oldest first, at most AttemptBatchMax)
// as one ATTEMPTS message: a lone attempt as an Attempt, several as an
// AttemptBatch.
func MarshalAttempts(as []Attempt) ([]byte, error) {
	if len(as) == 1 {
		return Marshal(&as[0])
	}
	if len(as) == 0 || len(as) > AttemptBatchMax {
		return nil, fmt.Errorf("attempt batch of %d: want 1 to %d", len(as), AttemptBatchMax)
	}
	return Marshal(&AttemptBatch{Batch: as})
}
