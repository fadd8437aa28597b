package streams

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// NewHealth is the health of a new endpoint: healthy, and nothing to notify
// (creating an endpoint sends no event).
func NewHealth(endpointID string, now time.Time) *Health {
	return &Health{EndpointID: endpointID, Status: StatusHealthy, From: StatusHealthy, Since: now}
}

// Transition moves h to status to for reason, and reports whether anything
// changed. It counts the transition (the revision of its
// endpoint.status_changed, published later from this record) and keeps the
// gap bookkeeping: leaving healthy opens a gap; returning to healthy closes it
// and, if deliveries were lost to the DLQ or a backlog was held meanwhile,
// leaves a CatchupWindow for the poller to announce.
func (h *Health) Transition(to, reason string, now time.Time) bool {
	if h.Status == to {
		return false
	}
	if h.Status == StatusHealthy {
		h.UnhealthySince, h.Lost, h.Held = now, 0, false
	}
	if to == StatusHealthy {
		if (h.Lost > 0 || h.Held) && !h.UnhealthySince.IsZero() {
			h.Catchup = &CatchupWindow{From: h.UnhealthySince, To: now, Lost: h.Lost, Transition: h.Transitions + 1}
		}
		h.UnhealthySince, h.Lost, h.Held = time.Time{}, 0, false
		h.Failures, h.NextProbe, h.ProbeInterval = 0, time.Time{}, 0
	}
	h.From, h.Status, h.Since, h.Reason = h.Status, to, now, reason
	h.Transitions++
	return true
}

// StatusEvent is the endpoint.status_changed event of h's last transition,
// or nil when it was already published.
func (h *Health) StatusEvent() *EndpointStatusChanged {
	if h.Transitions <= h.Notified {
		return nil
	}
	return &EndpointStatusChanged{Endpoint: h.EndpointID, From: h.From, To: h.Status, Reason: h.Reason, Since: h.Since, Seq: h.Transitions}
}

// DeadLetterID is the id of the dead-letter record of the delivery with
// Nats-Msg-Id msgID: deterministic, so that writing a record twice (a crash
// between the write and the ack) stores it once, and safe in URLs and keys.
func DeadLetterID(msgID string) string {
	sum := sha256.Sum256([]byte(msgID))
	return "dl_" + hex.EncodeToString(sum[:12])
}
