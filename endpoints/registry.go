package endpoints

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/webhook"
)

// rollbackTimeout bounds the clean-up of a half-made endpoint, which runs
// even when the request's context is already done.
const rollbackTimeout = 5 * time.Second

// Registry is the endpoint registry. It keeps no state of its own: every
// call reads and writes the KV buckets, so any number of API processes can
// serve it at once.
type Registry struct {
	cfg      Config
	eps      jetstream.KeyValue
	health   jetstream.KeyValue
	attempts jetstream.Stream
}

// CreateInput is a new endpoint. An empty Secret is generated; Concurrency 0
// means ConcurrencyDefault and RateLimit 0 no limit.
type CreateInput struct {
	URL         string
	EventTypes  []string
	Secret      string
	Description string
	RateLimit   float64
	Concurrency int
	// Ordered endpoints receive the events of one ordering key one at a
	// time, in order, through Partitions lanes (0: DefaultPartitions).
	Ordered    bool
	Partitions int
}

// UpdateInput changes the fields that are not nil. The secret is changed
// only by RotateSecret.
type UpdateInput struct {
	URL         *string
	EventTypes  *[]string
	Description *string
	RateLimit   *float64
	Concurrency *int
	// Ordered cannot change (an error unless it is the current value);
	// Partitions changes only while the endpoint holds no delivery.
	Ordered    *bool
	Partitions *int
}

func (in UpdateInput) empty() bool {
	return in.URL == nil && in.EventTypes == nil && in.Description == nil && in.RateLimit == nil && in.Concurrency == nil &&
		in.Ordered == nil && in.Partitions == nil
}

// New opens the registry's buckets and the attempt log, which
// streams.Ensure must have created.
func New(ctx context.Context, cfg Config) (*Registry, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("endpoints: %w", err)
	}
	r := &Registry{cfg: cfg}
	var err error
	if r.eps, err = cfg.JS.KeyValue(ctx, streams.BucketEndpoints); err != nil {
		return nil, fmt.Errorf("endpoints: bucket %s: %w", streams.BucketEndpoints, err)
	}
	if r.health, err = cfg.JS.KeyValue(ctx, streams.BucketHealth); err != nil {
		return nil, fmt.Errorf("endpoints: bucket %s: %w", streams.BucketHealth, err)
	}
	if r.attempts, err = cfg.JS.Stream(ctx, streams.StreamAttempts); err != nil {
		return nil, fmt.Errorf("endpoints: stream %s: %w", streams.StreamAttempts, err)
	}
	return r, nil
}

func (r *Registry) now() time.Time { return r.cfg.Now().UTC() }

// Create validates in and stores a new endpoint, healthy. Bad input is an
// error holding an *httpjson.Error (400) that names the field, and wrapping
// the cause where there is one (netguard.ErrForbidden,
// webhook.ErrInvalidSecret).
func (r *Registry) Create(ctx context.Context, in CreateInput) (*streams.Endpoint, error) {
	in, err := r.checkCreate(in)
	if err != nil {
		return nil, err
	}
	if in.Secret == "" {
		if in.Secret, err = webhook.GenerateSecret(); err != nil {
			return nil, err
		}
	}
	id := r.cfg.NewID()
	if !validID(id) {
		return nil, fmt.Errorf("create endpoint: NewID returned %q, not a subject token of letters, digits, '_' and '-'", id)
	}
	now := r.now()
	ep := &streams.Endpoint{
		ID:          id,
		URL:         in.URL,
		EventTypes:  in.EventTypes,
		Secrets:     []streams.Secret{{Key: in.Secret, CreatedAt: now}},
		Description: in.Description,
		RateLimit:   in.RateLimit,
		Concurrency: in.Concurrency,
		Ordered:     in.Ordered,
		Partitions:  in.Partitions,
		CreatedAt:   now,
		UpdatedAt:   now,
	}
	// The health record goes first, so that the endpoint, once visible to
	// dispatchers and the API, is complete; if writing the endpoint fails the
	// health record is removed again.
	hb, err := streams.Marshal(streams.NewHealth(id, now))
	if err != nil {
		return nil, err
	}
	eb, err := streams.Marshal(ep)
	if err != nil {
		return nil, err
	}
	if err := createKey(ctx, r.health, id, hb); err != nil {
		return nil, storeErr("create endpoint "+id+" health", err)
	}
	if err := createKey(ctx, r.eps, id, eb); err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		defer cancel()
		if derr := r.health.Purge(rctx, id); derr != nil {
			r.cfg.Logger.Warn("remove health of endpoint not created", "endpoint", id, "err", derr)
		}
		return nil, storeErr("create endpoint "+id, err)
	}
	r.cfg.Logger.Info("endpoint created", "endpoint", id, "event_types", ep.EventTypes)
	return ep, nil
}

// createKey writes b under key only if the key does not exist.
func createKey(ctx context.Context, kv jetstream.KeyValue, key string, b []byte) error {
	_, err := kv.Create(ctx, key, b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("id %s already taken: %w", key, httpjson.ErrConflict)
	}
	return err
}

// Get returns an endpoint and its health (healthy when no record exists). An
// unknown or deleted endpoint is an error wrapping httpjson.ErrNotFound.
func (r *Registry) Get(ctx context.Context, id string) (*streams.Endpoint, *streams.Health, error) {
	ep, err := r.endpoint(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	h, err := r.healthOf(ctx, ep)
	if err != nil {
		return nil, nil, err
	}
	return ep, h, nil
}

func (r *Registry) endpoint(ctx context.Context, id string) (*streams.Endpoint, error) {
	if !validID(id) {
		return nil, notFound(id)
	}
	ep, _, found, err := streams.Get[streams.Endpoint](ctx, r.eps, id)
	if err != nil {
		return nil, storeErr("get endpoint "+id, err)
	}
	if !found || ep.Deleted {
		return nil, notFound(id)
	}
	return ep, nil
}

// healthOf reads ep's health; a missing record means healthy since the
// endpoint was created.
func (r *Registry) healthOf(ctx context.Context, ep *streams.Endpoint) (*streams.Health, error) {
	h, _, found, err := streams.Get[streams.Health](ctx, r.health, ep.ID)
	if err != nil {
		return nil, storeErr("get health of endpoint "+ep.ID, err)
	}
	if !found {
		return streams.NewHealth(ep.ID, ep.CreatedAt), nil
	}
	return h, nil
}

// Update changes the fields in sets, by compare-and-set. An update that sets
// nothing returns the endpoint unchanged.
func (r *Registry) Update(ctx context.Context, id string, in UpdateInput) (*streams.Endpoint, error) {
	in, err := r.checkUpdate(in)
	if err != nil {
		return nil, err
	}
	if in.Partitions != nil {
		// Read before the compare-and-set: a lane change with deliveries
		// still in the lanes would put a key's next event in another lane
		// than its pending ones, and they could overtake them.
		cur, err := r.endpoint(ctx, id)
		if err != nil {
			return nil, err
		}
		if cur.Ordered && cur.Partitions != *in.Partitions {
			n, err := r.storedDeliveries(ctx, id)
			if err != nil {
				return nil, err
			}
			if n > 0 {
				return nil, &httpjson.Error{Code: http.StatusConflict, Msg: fmt.Sprintf(
					"partitions: the endpoint holds %d undelivered deliveries; changing its lanes now would break their order: "+
						"change it once they are delivered (or dead-lettered)", n)}
			}
		}
	}
	ep, err := r.change(ctx, id, func(ep *streams.Endpoint) error {
		if in.empty() {
			return streams.ErrNoChange
		}
		if in.Ordered != nil && *in.Ordered != ep.Ordered {
			return badInput(nil, "ordered: cannot be changed on an existing endpoint (its deliveries would pass from one fan-out to another, "+
				"and the order of those in between is not kept): create a new endpoint")
		}
		if in.Partitions != nil {
			if !ep.Ordered {
				return badInput(nil, "partitions: only an ordered endpoint has partitions")
			}
			ep.Partitions = *in.Partitions
		}
		if in.URL != nil {
			ep.URL = *in.URL
		}
		if in.EventTypes != nil {
			ep.EventTypes = *in.EventTypes
		}
		if in.Description != nil {
			ep.Description = *in.Description
		}
		if in.RateLimit != nil {
			ep.RateLimit = *in.RateLimit
		}
		if in.Concurrency != nil {
			ep.Concurrency = *in.Concurrency
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !in.empty() {
		r.cfg.Logger.Info("endpoint updated", "endpoint", id)
	}
	return ep, nil
}

// storedDeliveries counts the deliveries the endpoint holds in DELIVERIES,
// on its subject and its lanes.
func (r *Registry) storedDeliveries(ctx context.Context, id string) (uint64, error) {
	d, err := r.cfg.JS.Stream(ctx, streams.StreamDeliveries)
	if err != nil {
		return 0, storeErr("read the endpoint's backlog", err)
	}
	var n uint64
	for _, f := range []string{streams.DeliverySubject(id), streams.DeliverySubject(id) + ".>"} {
		info, err := d.Info(ctx, jetstream.WithSubjectFilter(f))
		if err != nil {
			return 0, storeErr("read the endpoint's backlog", err)
		}
		for _, c := range info.State.Subjects {
			n += c
		}
	}
	return n, nil
}

// Delete marks the endpoint deleted. The key stays as a tombstone until a
// dispatcher has dead-lettered the endpoint's pending deliveries
// (endpoint_deleted) and removed it with its health; meanwhile the registry
// treats it as unknown.
func (r *Registry) Delete(ctx context.Context, id string) error {
	_, err := r.change(ctx, id, func(ep *streams.Endpoint) error {
		ep.Deleted = true
		return nil
	})
	if err != nil {
		return err
	}
	r.cfg.Logger.Info("endpoint deleted", "endpoint", id)
	return nil
}

// change applies fn to a live endpoint by compare-and-set and stamps
// UpdatedAt. fn may return streams.ErrNoChange to leave it as it is.
func (r *Registry) change(ctx context.Context, id string, fn func(ep *streams.Endpoint) error) (*streams.Endpoint, error) {
	if !validID(id) {
		return nil, notFound(id)
	}
	now := r.now()
	ep, _, err := streams.Update(ctx, r.eps, id, func(cur *streams.Endpoint) (*streams.Endpoint, error) {
		if cur == nil || cur.Deleted {
			return nil, notFound(id)
		}
		if err := fn(cur); err != nil {
			return nil, err
		}
		cur.UpdatedAt = now
		return cur, nil
	})
	switch {
	case errors.Is(err, streams.ErrNoChange):
		return ep, nil
	case err != nil:
		return nil, storeErr("update endpoint "+id, err)
	}
	return ep, nil
}

// SetEnabled disables the endpoint, or enables a disabled one, by
// compare-and-set on its health record, and returns the health. Enabling an
// endpoint that is not disabled changes nothing (a failing one stays
// failing); so does disabling a disabled one. The endpoint.status_changed a
// transition calls for is published by the dispatcher from the record.
func (r *Registry) SetEnabled(ctx context.Context, id string, enabled bool) (*streams.Health, error) {
	ep, err := r.endpoint(ctx, id)
	if err != nil {
		return nil, err
	}
	now := r.now()
	h, _, err := streams.Update(ctx, r.health, id, func(cur *streams.Health) (*streams.Health, error) {
		if cur == nil {
			cur = streams.NewHealth(id, ep.CreatedAt)
		}
		changed := false
		if enabled {
			changed = cur.Status == streams.StatusDisabled && cur.Transition(streams.StatusHealthy, "enabled by operator", now)
		} else {
			changed = cur.Transition(streams.StatusDisabled, "disabled by operator", now)
		}
		if !changed {
			return nil, streams.ErrNoChange
		}
		return cur, nil
	})
	switch {
	case errors.Is(err, streams.ErrNoChange):
		if h == nil {
			h = streams.NewHealth(id, ep.CreatedAt)
		}
		return h, nil
	case err != nil:
		return nil, storeErr("update health of endpoint "+id, err)
	}
	r.cfg.Logger.Info("endpoint status changed by operator", "endpoint", id, "from", h.From, "to", h.Status)
	return h, nil
}

// RotateSecret gives the endpoint a new secret and returns it; this is the
// only time it is shown. The secrets it had keep signing for SecretOverlap.
func (r *Registry) RotateSecret(ctx context.Context, id string) (newSecret string, err error) {
	ep, err := r.rotate(ctx, id)
	if err != nil {
		return "", err
	}
	return ep.Secrets[0].Key, nil
}

func (r *Registry) rotate(ctx context.Context, id string) (*streams.Endpoint, error) {
	secret, err := webhook.GenerateSecret()
	if err != nil {
		return nil, err
	}
	now := r.now()
	ep, err := r.change(ctx, id, func(ep *streams.Endpoint) error {
		ep.Secrets = rotateSecrets(ep.Secrets, secret, now, r.cfg.SecretOverlap)
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.cfg.Logger.Info("endpoint secret rotated", "endpoint", id, "secrets", len(ep.Secrets))
	return ep, nil
}

// listed is one endpoint of a list page with its health.
type listed struct {
	ep *streams.Endpoint
	h  *streams.Health
}

// list returns up to limit live endpoints with ids after cursor, sorted by
// id, and the cursor of the next page ("" on the last).
func (r *Registry) list(ctx context.Context, limit int, cursor string) ([]listed, string, error) {
	keys, err := r.eps.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return []listed{}, "", nil
	}
	if err != nil {
		return nil, "", storeErr("list endpoints", err)
	}
	// One more than the page tells whether another page follows.
	out := make([]listed, 0, min(limit+1, len(keys)))
	for _, id := range keys {
		if id <= cursor {
			continue
		}
		ep, _, found, err := streams.Get[streams.Endpoint](ctx, r.eps, id)
		if err != nil {
			if err = storeErr("get endpoint "+id, err); errors.Is(err, streams.ErrUnavailable) {
				return nil, "", err
			}
			// A record no version of hookstream can read (written by
			// something else with access to NATS) must not take the whole
			// list down with it: it is logged and left out.
			r.cfg.Logger.Warn("skip unreadable endpoint record", "endpoint", id, "err", err)
			continue
		}
		if !found || ep.Deleted {
			continue
		}
		h, err := r.healthOf(ctx, ep)
		if err != nil {
			if errors.Is(err, streams.ErrUnavailable) {
				return nil, "", err
			}
			r.cfg.Logger.Warn("skip endpoint with an unreadable health record", "endpoint", id, "err", err)
			continue
		}
		out = append(out, listed{ep: ep, h: h})
		if len(out) > limit {
			return out[:limit], out[limit-1].ep.ID, nil
		}
	}
	return out, "", nil
}

// storeErr adds what was being done to err and marks a failure to reach
// JetStream as streams.ErrUnavailable, which the API answers 503 with a
// Retry-After. Errors of the registry's own making (not found, conflict, bad
// input) keep their meaning.
func storeErr(op string, err error) error {
	var (
		he     *httpjson.Error
		apiErr *jetstream.APIError
	)
	switch {
	case errors.As(err, &he), errors.Is(err, httpjson.ErrNotFound), errors.Is(err, httpjson.ErrConflict),
		errors.Is(err, streams.ErrUnavailable):
		return err
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.As(err, &apiErr):
		return fmt.Errorf("%s: %w: %w", op, streams.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
