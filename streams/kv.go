package streams

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrNoChange, returned by an Update function, leaves the key as it is.
var ErrNoChange = errors.New("no change")

// maxCASRetries bounds Update's compare-and-set loop under contention.
const maxCASRetries = 64

// Get reads and decodes key. found is false when the key does not exist.
func Get[T any, PT interface {
	*T
	Versioned
}](ctx context.Context, kv jetstream.KeyValue, key string) (v *T, rev uint64, found bool, err error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("get %s: %w", key, err)
	}
	v = new(T)
	if err := Unmarshal(e.Value(), PT(v)); err != nil {
		return nil, 0, false, fmt.Errorf("get %s: %w", key, err)
	}
	return v, e.Revision(), true, nil
}

// Put encodes v and writes it under key unconditionally.
func Put[T Versioned](ctx context.Context, kv jetstream.KeyValue, key string, v T) (uint64, error) {
	b, err := Marshal(v)
	if err != nil {
		return 0, err
	}
	return kv.Put(ctx, key, b)
}

// Update changes key by compare-and-set: fn gets the current value (nil when
// the key does not exist) and returns the next one, or ErrNoChange to leave
// it. On a concurrent change fn runs again on the newer value. It returns the
// value written (or the current one on ErrNoChange) and its revision.
func Update[T any, PT interface {
	*T
	Versioned
}](ctx context.Context, kv jetstream.KeyValue, key string, fn func(cur *T) (*T, error)) (*T, uint64, error) {
	for range maxCASRetries {
		cur, rev, found, err := Get[T, PT](ctx, kv, key)
		if err != nil {
			return nil, 0, err
		}
		next, err := fn(cur)
		if errors.Is(err, ErrNoChange) {
			return cur, rev, err
		}
		if err != nil {
			return nil, 0, err
		}
		b, err := Marshal(PT(next))
		if err != nil {
			return nil, 0, err
		}
		var nrev uint64
		if found {
			nrev, err = kv.Update(ctx, key, b, rev)
		} else {
			nrev, err = kv.Create(ctx, key, b)
		}
		if IsConflict(err) {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("update %s: %w", key, err)
		}
		return next, nrev, nil
	}
	return nil, 0, fmt.Errorf("update %s: still contended after %d tries", key, maxCASRetries)
}

// IsConflict reports whether err is a compare-and-set conflict: the key
// changed (or came to exist) since it was read.
func IsConflict(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}
