package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// healthStore changes endpoint health in the shared bucket, always by
// compare-and-set, so that every dispatcher process agrees on it.
type healthStore struct {
	kv         jetstream.KeyValue
	deliveries jetstream.Stream
	cfg        Config
	catalog    *catalog
	log        *slog.Logger
}

func (s *healthStore) update(ctx context.Context, id string, fn func(h *streams.Health) error) {
	h, rev, err := streams.Update(ctx, s.kv, id, func(cur *streams.Health) (*streams.Health, error) {
		if cur == nil {
			cur = streams.NewHealth(id, s.cfg.Now().UTC())
		}
		if err := fn(cur); err != nil {
			return nil, err
		}
		return cur, nil
	})
	if errors.Is(err, streams.ErrNoChange) {
		return
	}
	if err != nil {
		s.log.Warn("health update", "endpoint", id, "err", err)
		return
	}
	s.catalog.setHealth(id, h, rev)
}

// recordFailure counts a failed attempt: the FailingAfter-th in a row makes
// a healthy endpoint failing; a failed probe doubles the probe spacing.
// A failing catch-up does not count as a held backlog: a catch-up that
// itself fails never triggers another.
func (s *healthStore) recordFailure(ctx context.Context, id string, v *endpointView, now time.Time, probe, catchup bool) {
	s.update(ctx, id, func(h *streams.Health) error {
		h.Failures++
		if !catchup && h.Status != streams.StatusHealthy {
			h.Held = true
		}
		switch h.Status {
		case streams.StatusHealthy:
			if h.Failures >= s.cfg.FailingAfter {
				h.Transition(streams.StatusFailing, fmt.Sprintf("%d consecutive failed attempts", h.Failures), now.UTC())
				h.Held = !catchup
				h.ProbeInterval = s.cfg.RetryInitial
				h.NextProbe = now.Add(h.ProbeInterval).UTC()
			}
		case streams.StatusFailing:
			if probe {
				h.ProbeInterval = min(max(2*h.ProbeInterval, s.cfg.RetryInitial), s.cfg.RetryMaxInterval)
				h.NextProbe = now.Add(h.ProbeInterval).UTC()
			}
		}
		return nil
	})
}

// recordSuccess resets the failure count and makes a failing endpoint
// healthy; it writes nothing when there is nothing to reset (the hot path).
func (s *healthStore) recordSuccess(ctx context.Context, id string, v *endpointView, now time.Time) {
	if v != nil && v.health != nil && v.health.Failures == 0 && v.health.Status != streams.StatusFailing {
		return
	}
	s.update(ctx, id, func(h *streams.Health) error {
		if h.Failures == 0 && h.Status != streams.StatusFailing {
			return streams.ErrNoChange
		}
		h.Failures = 0
		if h.Status == streams.StatusFailing {
			h.Transition(streams.StatusHealthy, "delivery succeeded", now.UTC())
		}
		return nil
	})
}

// claimProbe takes the next probe for this process: it moves NextProbe on
// by the probe spacing, so no other dispatcher probes meanwhile.
func (s *healthStore) claimProbe(ctx context.Context, id string, now time.Time) bool {
	claimed := false
	s.update(ctx, id, func(h *streams.Health) error {
		if h.Status != streams.StatusFailing || now.Before(h.NextProbe) {
			return streams.ErrNoChange
		}
		if h.ProbeInterval <= 0 {
			h.ProbeInterval = s.cfg.RetryInitial
		}
		h.NextProbe = now.Add(h.ProbeInterval).UTC()
		claimed = true
		return nil
	})
	return claimed
}

// markGone disables an endpoint that answered 410 and marks every delivery
// stored so far as pending at that moment: they are dead-lettered
// (endpoint_gone); later ones are held like any disabled endpoint's.
func (s *healthStore) markGone(ctx context.Context, id string, now time.Time) {
	info, err := s.deliveries.Info(ctx)
	if err != nil {
		s.log.Warn("410: deliveries stream info", "endpoint", id, "err", err)
		return
	}
	last := info.State.LastSeq
	s.update(ctx, id, func(h *streams.Health) error {
		if last > h.GoneSeq {
			h.GoneSeq, h.GoneAt = last, now.UTC()
		}
		h.Transition(streams.StatusDisabled, "endpoint answered 410 Gone", now.UTC())
		return nil
	})
}

// markHeld records that a disabled endpoint held a backlog, so that its
// return to healthy sends a catch-up.
func (s *healthStore) markHeld(ctx context.Context, id string) {
	s.update(ctx, id, func(h *streams.Health) error {
		if h.Held || h.Status == streams.StatusHealthy {
			return streams.ErrNoChange
		}
		h.Held = true
		return nil
	})
}

// addLost counts n deliveries dead-lettered during a gap.
func (s *healthStore) addLost(ctx context.Context, id string, n int) {
	if v := s.catalog.get(id); v != nil && v.health != nil && v.health.UnhealthySince.IsZero() && v.health.Status == streams.StatusHealthy {
		return
	}
	s.update(ctx, id, func(h *streams.Health) error {
		if h.UnhealthySince.IsZero() {
			return streams.ErrNoChange
		}
		h.Lost += uint64(n)
		return nil
	})
}
