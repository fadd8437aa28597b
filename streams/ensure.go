package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrImmutable is returned by Ensure when an existing stream differs from the
// configuration in a setting the server cannot change in place.
var ErrImmutable = errors.New("setting cannot be changed in place")

// StreamConfigs returns the definitions of every stream for c.
func StreamConfigs(c Config) []jetstream.StreamConfig {
	c = c.WithDefaults()
	dmax := c.DeliveriesMaxAge()
	return []jetstream.StreamConfig{
		{
			Name:        StreamEvents,
			Description: "hookstream events: what happened",
			Subjects:    []string{SubjectEvents + ".>"},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardNew,
			MaxAge:      c.EventsMaxAge,
			Duplicates:  c.dedupFor(c.EventsMaxAge),
			Replicas:    c.Replicas,
			MaxMsgSize:  int32(c.RequiredMaxPayload()),
			AllowDirect: true,
			// Atomic batches (a purchase order's header and lines stored
			// together or not at all); nats-server 2.12 or later.
			AllowAtomicPublish: true,
		},
		{
			Name:        StreamDeliveries,
			Description: "hookstream deliveries: one message per event and subscribed endpoint",
			Subjects:    []string{SubjectDeliveries + ".>"},
			Storage:     jetstream.FileStorage,
			// Work-queue: a delivery leaves the stream when it is acked or
			// terminated, so what is stored is the backlog, never the
			// traffic, and every message found in it is unsettled.
			Retention:  jetstream.WorkQueuePolicy,
			Discard:    jetstream.DiscardNew,
			MaxAge:     dmax,
			Duplicates: c.dedupFor(dmax),
			Replicas:   c.Replicas,
			MaxMsgSize: int32(c.RequiredMaxPayload()),
			// Lookups read a delivery by sequence.
			AllowDirect: true,
		},
		{
			Name:        StreamDLQ,
			Description: "hookstream dead letters: deliveries that finally failed",
			Subjects:    []string{SubjectDLQ + ".>"},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardNew,
			MaxAge:      c.DLQMaxAge,
			Duplicates:  c.dedupFor(c.DLQMaxAge),
			Replicas:    c.Replicas,
			MaxMsgSize:  int32(c.RequiredMaxPayload()),
		},
		{
			Name:        StreamIndex,
			Description: "hookstream event index: event id to EVENTS and DELIVERIES sequences, in hash buckets",
			Subjects:    []string{SubjectIndex + ".>"},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			MaxAge:      c.EventsMaxAge,
			Duplicates:  c.dedupFor(c.EventsMaxAge),
			Replicas:    c.Replicas,
			AllowDirect: true,
		},
		{
			Name:              StreamAttempts,
			Description:       "hookstream attempt log, bounded per endpoint",
			Subjects:          []string{SubjectAttempts + ".>"},
			Storage:           jetstream.FileStorage,
			Retention:         jetstream.LimitsPolicy,
			Discard:           jetstream.DiscardOld,
			MaxAge:            c.AttemptsMaxAge,
			MaxMsgsPerSubject: int64(c.AttemptsPerEndpoint),
			Duplicates:        c.dedupFor(c.AttemptsMaxAge),
			Replicas:          c.Replicas,
		},
	}
}

// BucketConfigs returns the definitions of every key-value bucket for c.
func BucketConfigs(c Config) []jetstream.KeyValueConfig {
	c = c.WithDefaults()
	kv := func(name, desc string, ttl time.Duration, markers bool) jetstream.KeyValueConfig {
		cfg := jetstream.KeyValueConfig{
			Bucket:      name,
			Description: desc,
			History:     1,
			TTL:         ttl,
			Storage:     jetstream.FileStorage,
			Replicas:    c.Replicas,
		}
		if markers {
			// Per-key TTLs (leases, heartbeats) need limit markers.
			cfg.LimitMarkerTTL = time.Second
		}
		return cfg
	}
	return []jetstream.KeyValueConfig{
		kv(BucketEndpoints, "endpoint configuration", 0, false),
		kv(BucketHealth, "endpoint health shared by every dispatcher", 0, false),
		kv(BucketDeliveryState, "state of each failed delivery not yet settled", c.DeliveriesMaxAge(), true),
		kv(BucketSources, "source configuration", 0, false),
		kv(BucketSourceState, "source cursors and status", 0, false),
		kv(BucketDLQState, "dead-letter record state", c.DLQMaxAge, false),
		kv(BucketReplayJobs, "bulk replay jobs", c.DLQMaxAge, false),
		kv(BucketMembers, "live dispatcher and poller processes", 0, true),
		kv(BucketLeases, "short leases: source polls, endpoint probes", 0, true),
	}
}

// Ensure creates every stream and bucket, or updates them in place to c. It
// is idempotent. A setting the server cannot change in place (storage,
// retention, a replica change on a single node, …) is an error naming the
// stream and wrapping ErrImmutable; it is never silently ignored.
func Ensure(ctx context.Context, js jetstream.JetStream, c Config) error {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return err
	}
	for _, sc := range StreamConfigs(c) {
		if err := retryRequest(ctx, func(ctx context.Context) error { return ensureStream(ctx, js, sc, c.UpdateStreams) }); err != nil {
			return err
		}
	}
	for _, bc := range BucketConfigs(c) {
		if err := retryRequest(ctx, func(ctx context.Context) error { return ensureBucket(ctx, js, bc, c.UpdateStreams) }); err != nil {
			return err
		}
	}
	return nil
}

// ErrNoAtomicPublish is returned by Ensure when the server keeps EVENTS
// without atomic batch publish: it is older than nats-server 2.12, and
// POST /v1/events/batch with "atomic": true could never succeed.
var ErrNoAtomicPublish = errors.New("the NATS server does not support atomic batch publish (nats-server 2.12 or later is needed)")

// checkFeatures reports a stream whose configuration came back without a
// feature it was asked for: an older server drops the fields it does not
// know instead of refusing them.
func checkFeatures(want, got jetstream.StreamConfig) error {
	if want.AllowAtomicPublish && !got.AllowAtomicPublish {
		return fmt.Errorf("stream %s: %w", want.Name, ErrNoAtomicPublish)
	}
	return nil
}

// ErrShrink is returned by Ensure when the configuration would shrink a
// setting that shapes stored data (a max age, the duplicate window, the
// replicas) below what the stream has, and Config.UpdateStreams is not set:
// a role started with smaller values must not make the server delete what
// other roles still rely on.
var ErrShrink = errors.New("refusing to shrink a stored setting (pass --update-streams to allow it)")

// flagFor names the flag that sets a stream's setting, for error messages.
func flagFor(stream, setting string) string {
	switch setting {
	case "replicas":
		return "--replicas"
	case "duplicate window":
		return "--dedup-window"
	case "max message size":
		return "--max-event-data"
	}
	switch stream {
	case StreamEvents, StreamIndex:
		return "--events-max-age"
	case StreamDeliveries, "KV_" + BucketDeliveryState:
		return "--retry-max-age"
	case StreamDLQ, "KV_" + BucketDLQState, "KV_" + BucketReplayJobs:
		return "--dlq-max-age"
	}
	return "its setting"
}

// checkShrink compares a stream's current settings with the wanted ones and
// names every one that would shrink. A zero max age means "forever".
func checkShrink(name string, cur, want jetstream.StreamConfig) error {
	var errs []error
	shrink := func(setting string, from, to any) {
		errs = append(errs, fmt.Errorf("stream %s: %s would shrink from %v to %v (%s): %w", name, setting, from, to, flagFor(name, setting), ErrShrink))
	}
	if want.MaxAge != 0 && (cur.MaxAge == 0 || want.MaxAge < cur.MaxAge) {
		shrink("max age", durText(cur.MaxAge), durText(want.MaxAge))
	}
	if want.Duplicates < cur.Duplicates {
		shrink("duplicate window", cur.Duplicates, want.Duplicates)
	}
	if want.Replicas < cur.Replicas {
		shrink("replicas", cur.Replicas, want.Replicas)
	}
	if want.MaxMsgSize > 0 && (cur.MaxMsgSize <= 0 || want.MaxMsgSize < cur.MaxMsgSize) {
		shrink("max message size", cur.MaxMsgSize, want.MaxMsgSize)
	}
	if want.MaxMsgsPerSubject > 0 && (cur.MaxMsgsPerSubject <= 0 || want.MaxMsgsPerSubject < cur.MaxMsgsPerSubject) {
		shrink("messages per subject", cur.MaxMsgsPerSubject, want.MaxMsgsPerSubject)
	}
	return errors.Join(errs...)
}

func durText(d time.Duration) string {
	if d == 0 {
		return "unlimited"
	}
	return d.String()
}

// ensureAttemptTimeout bounds one create or update request. On a new
// cluster, several processes ensuring the same stream at once can each wait
// for an answer that never comes (the meta leader drops one of two
// conflicting proposals); the requests are idempotent, so they are simply
// sent again.
const ensureAttemptTimeout = 5 * time.Second

func retryRequest(ctx context.Context, fn func(context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, ensureAttemptTimeout)
		err := fn(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
}

func ensureStream(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig, allowShrink bool) error {
	s, err := js.Stream(ctx, sc.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err := js.CreateStream(ctx, sc)
		if err != nil {
			return fmt.Errorf("create stream %s: %w", sc.Name, err)
		}
		return checkFeatures(sc, s.CachedInfo().Config)
	}
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", sc.Name, err)
	}
	cur := s.CachedInfo().Config
	if cur.Storage != sc.Storage {
		return fmt.Errorf("stream %s: storage is %s, configured %s: %w", sc.Name, cur.Storage, sc.Storage, ErrImmutable)
	}
	if cur.Retention != sc.Retention {
		return fmt.Errorf("stream %s: retention is %s, this version needs %s and the server cannot change it in place "+
			"(let every delivery settle, then delete the stream with 'nats stream rm %s'; it is made anew at start): %w",
			sc.Name, cur.Retention, sc.Retention, sc.Name, ErrImmutable)
	}
	if !allowShrink {
		if err := checkShrink(sc.Name, cur, sc); err != nil {
			return err
		}
	}
	us, err := js.UpdateStream(ctx, sc)
	if err != nil {
		return fmt.Errorf("stream %s: update to the configured settings (replicas %d, max age %s, duplicate window %s): %w: %w",
			sc.Name, sc.Replicas, sc.MaxAge, sc.Duplicates, ErrImmutable, err)
	}
	return checkFeatures(sc, us.CachedInfo().Config)
}

func ensureBucket(ctx context.Context, js jetstream.JetStream, bc jetstream.KeyValueConfig, allowShrink bool) error {
	if !allowShrink {
		s, err := js.Stream(ctx, "KV_"+bc.Bucket)
		if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("look up bucket %s: %w", bc.Bucket, err)
		}
		if err == nil {
			cur := s.CachedInfo().Config
			want := jetstream.StreamConfig{MaxAge: bc.TTL, Replicas: bc.Replicas, Duplicates: cur.Duplicates}
			if cur.Duplicates > bc.TTL && bc.TTL > 0 {
				want.Duplicates = bc.TTL
			}
			if err := checkShrink(cur.Name, cur, want); err != nil {
				return err
			}
		}
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, bc); err != nil {
		return fmt.Errorf("bucket %s: create or update (replicas %d, ttl %s): %w", bc.Bucket, bc.Replicas, bc.TTL, err)
	}
	return nil
}
