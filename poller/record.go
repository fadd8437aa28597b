package poller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/hookstream/hookstream/streams"
)

// recordVersion is the version of the records this package stores; a decoder
// refuses another rather than guess at its fields.
const recordVersion = 1

// sourceConfig is a source's configuration, in streams.BucketSources under
// its id. Headers are credentials: stored here (the bucket is as private as
// the NATS account), never shown by the API nor logged.
type sourceConfig struct {
	V              int               `msgpack:"v"`
	ID             string            `msgpack:"id"`
	ChangesURL     string            `msgpack:"changes_url"`
	Interval       time.Duration     `msgpack:"interval"`
	ExpectedWindow time.Duration     `msgpack:"expected_window"`
	Headers        map[string]string `msgpack:"headers"`
	CreatedAt      time.Time         `msgpack:"created_at"`
	UpdatedAt      time.Time         `msgpack:"updated_at"`
}

// sourceState is a source's cursor and status, in streams.BucketSourceState
// under its id, changed only by compare-and-set. Like streams.Health it
// doubles as an outbox: a status change is counted here (Transitions) before
// its connection.status_changed is published, and Notified records the last
// one published, so that a crash between the two neither loses the event nor
// sends it under two ids.
type sourceState struct {
	V      int    `msgpack:"v"`
	ID     string `msgpack:"id"`
	Cursor string `msgpack:"cursor"`
	Status string `msgpack:"status"`
	// From, Since and StatusError describe the last transition: the status
	// before it, when it happened and the error that caused it.
	From        string    `msgpack:"from"`
	Since       time.Time `msgpack:"since"`
	StatusError string    `msgpack:"status_error"`
	Transitions uint64    `msgpack:"transitions"`
	Notified    uint64    `msgpack:"notified"`
	// LastPoll is when the last poll started, LastSuccess the last one that
	// succeeded; LastError (at LastErrorAt) is the most recent failure's,
	// kept after a success so that an intermittent problem stays visible.
	LastPoll    time.Time `msgpack:"last_poll"`
	LastSuccess time.Time `msgpack:"last_success"`
	LastError   string    `msgpack:"last_error"`
	LastErrorAt time.Time `msgpack:"last_error_at"`
	NextPoll    time.Time `msgpack:"next_poll"`
	// Failures counts failed polls in a row, of any kind; Unreachable the
	// ErrUnreachable ones among the last (what makes a source unreachable);
	// Backoff the failed polls since the status left healthy (the exponent
	// of the delay).
	Failures    int `msgpack:"failures"`
	Unreachable int `msgpack:"unreachable"`
	Backoff     int `msgpack:"backoff"`
	// LastEvent is when the poller last published a page with changes.
	LastEvent time.Time `msgpack:"last_event"`
}

// newState is the state of a source that was never polled: healthy, due at
// once, nothing to notify (creating a source sends no event).
func newState(id string, now time.Time) *sourceState {
	return &sourceState{ID: id, Status: StatusHealthy, From: StatusHealthy, Since: now, NextPoll: now}
}

// transition moves st to status to because of errMsg. It reports whether
// anything changed.
func (st *sourceState) transition(to, errMsg string, now time.Time) bool {
	if st.Status == to {
		return false
	}
	st.From, st.Status, st.Since, st.StatusError = st.Status, to, now, errMsg
	st.Transitions++
	return true
}

// statusEvent is the connection.status_changed of st's last transition, or
// nil when it was published already.
func (st *sourceState) statusEvent() *streams.ConnectionStatusChanged {
	if st.Transitions <= st.Notified {
		return nil
	}
	return &streams.ConnectionStatusChanged{Source: st.ID, From: st.From, To: st.Status, Error: st.StatusError, Since: st.Since, Seq: st.Transitions}
}

type record interface {
	sourceConfig | sourceState
}

// setVersion and version reach the V field of either record.
func setVersion(v any) {
	switch x := v.(type) {
	case *sourceConfig:
		x.V = recordVersion
	case *sourceState:
		x.V = recordVersion
	}
}

func versionOf(v any) int {
	switch x := v.(type) {
	case *sourceConfig:
		return x.V
	case *sourceState:
		return x.V
	}
	return 0
}

func encodeRecord[T record](v *T) ([]byte, error) {
	setVersion(v)
	b, err := msgpack.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode record: %w", err)
	}
	return b, nil
}

func decodeRecord[T record](b []byte) (v *T, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("decode record: %v", r)
		}
	}()
	v = new(T)
	if err := msgpack.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	if got := versionOf(v); got != recordVersion {
		return nil, fmt.Errorf("decode record: version %d, want %d: %w", got, recordVersion, streams.ErrVersion)
	}
	return v, nil
}

// getRecord reads key; found is false when it does not exist.
func getRecord[T record](ctx context.Context, kv jetstream.KeyValue, key string) (v *T, rev uint64, found bool, err error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("get %s: %w", key, err)
	}
	v, err = decodeRecord[T](e.Value())
	if err != nil {
		return nil, 0, false, fmt.Errorf("get %s: %w", key, err)
	}
	return v, e.Revision(), true, nil
}

// maxCASRetries bounds updateRecord's compare-and-set loop.
const maxCASRetries = 64

// updateRecord changes key by compare-and-set, like streams.Update (which
// only takes streams' own types): fn gets the current value (nil when the key
// does not exist) and returns the next one, or streams.ErrNoChange to leave
// it. On a concurrent change fn runs again on the newer value.
func updateRecord[T record](ctx context.Context, kv jetstream.KeyValue, key string, fn func(cur *T) (*T, error)) (*T, uint64, error) {
	for range maxCASRetries {
		cur, rev, found, err := getRecord[T](ctx, kv, key)
		if err != nil {
			return nil, 0, err
		}
		next, err := fn(cur)
		if err != nil {
			return cur, rev, err
		}
		b, err := encodeRecord(next)
		if err != nil {
			return nil, 0, err
		}
		var nrev uint64
		if found {
			nrev, err = kv.Update(ctx, key, b, rev)
		} else {
			nrev, err = kv.Create(ctx, key, b)
		}
		if isConflict(err) {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("update %s: %w", key, err)
		}
		return next, nrev, nil
	}
	return nil, 0, fmt.Errorf("update %s: still contended after %d tries", key, maxCASRetries)
}

func isConflict(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}
