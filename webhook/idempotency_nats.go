package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// KVStore is a Store in a NATS JetStream key-value bucket, shared by every
// replica of a receiver: the first to create an id's key holds it (KV
// Create is first writer wins), and the bucket's TTL forgets handled ids.
type KVStore struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

// NewKVStore creates (or updates) bucket with a TTL of remember
// (RememberDefault when 0), so that a handled id is forgotten that long
// after it was handled, and returns a store on it.
func NewKVStore(ctx context.Context, js jetstream.JetStream, bucket string, remember time.Duration) (*KVStore, error) {
	if remember <= 0 {
		remember = RememberDefault
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "webhook ids handled by a receiver (webhook.KVStore)",
		History:     1,
		TTL:         remember,
	})
	if err != nil {
		return nil, fmt.Errorf("webhook: bucket %s: %w", bucket, err)
	}
	return NewKVStoreOn(kv), nil
}

// NewKVStoreOn is a store on a bucket of your own making; its TTL is how
// long handled ids are remembered.
func NewKVStoreOn(kv jetstream.KeyValue) *KVStore { return &KVStore{kv: kv, now: time.Now} }

// kvEntry is an id's value: a claim held until Until, or Done.
type kvEntry struct {
	Done  bool      `json:"done,omitempty"`
	Until time.Time `json:"until,omitzero"`
}

// key is id's key: a hash, since ids may hold any character and KV keys
// only a few.
func kvKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "id." + hex.EncodeToString(sum[:])
}

// Claim implements Store.
func (s *KVStore) Claim(ctx context.Context, id string, lease time.Duration) (Claim, error) {
	key := kvKey(id)
	held, err := json.Marshal(kvEntry{Until: s.now().Add(lease).UTC()})
	if err != nil {
		return 0, err
	}
	// Twice: a key deleted between Create and Get is claimed again.
	for range 2 {
		_, err := s.kv.Create(ctx, key, held)
		if err == nil {
			return ClaimNew, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return 0, err
		}
		e, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		var cur kvEntry
		if err := json.Unmarshal(e.Value(), &cur); err != nil {
			return 0, fmt.Errorf("key %s: %w", key, err)
		}
		switch {
		case cur.Done:
			return ClaimDone, nil
		case s.now().Before(cur.Until):
			return ClaimBusy, nil
		}
		// The holder's lease ran out (it crashed): take it over, unless
		// another did first.
		if _, err := s.kv.Update(ctx, key, held, e.Revision()); err != nil {
			var apiErr *jetstream.APIError
			if errors.Is(err, jetstream.ErrKeyExists) || errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
				return ClaimBusy, nil
			}
			return 0, err
		}
		return ClaimNew, nil
	}
	return ClaimBusy, nil
}

// Complete implements Store.
func (s *KVStore) Complete(ctx context.Context, id string) error {
	b, err := json.Marshal(kvEntry{Done: true})
	if err != nil {
		return err
	}
	_, err = s.kv.Put(ctx, kvKey(id), b)
	return err
}

// Release implements Store.
func (s *KVStore) Release(ctx context.Context, id string) error {
	err := s.kv.Delete(ctx, kvKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return err
}
