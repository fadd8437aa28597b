package streams

import (
	"strings"
	"time"
)

// Delivery is one message in DELIVERIES: an event on its way to one endpoint.
// It embeds the whole event so that a dispatcher needs no lookup to send it.
type Delivery struct {
	V          int    `msgpack:"v"`
	Event      Event  `msgpack:"event"`
	EndpointID string `msgpack:"endpoint_id"`
	// Generation is 0 from fan-out and n for the n-th replay; with the event
	// and endpoint ids it makes the delivery's Nats-Msg-Id.
	Generation int `msgpack:"generation"`
	// DeadLetterID is the record this delivery replays, if any: the record
	// becomes `delivered` when it succeeds.
	DeadLetterID string `msgpack:"dead_letter_id,omitempty"`
	// EventSeq is the event's EVENTS sequence, set by the fan-out of an
	// ordered endpoint: a lane's deliveries are stored in EVENTS order, and
	// logs and checks can see it.
	EventSeq uint64 `msgpack:"event_seq,omitempty"`
}

// MsgID is the delivery's Nats-Msg-Id.
func (d *Delivery) MsgID() string { return DeliveryMsgID(d.Event.ID, d.EndpointID, d.Generation) }

// Attempt is one delivery attempt, kept in the attempt log (ATTEMPTS) and,
// the first 5 and last 20, in a dead-letter record.
type Attempt struct {
	V          int           `msgpack:"v" json:"-"`
	EventID    string        `msgpack:"event_id" json:"event_id"`
	EventType  string        `msgpack:"event_type" json:"event_type"`
	EndpointID string        `msgpack:"endpoint_id" json:"endpoint_id"`
	Generation int           `msgpack:"generation" json:"generation"`
	Attempt    int           `msgpack:"attempt" json:"attempt"`
	Time       time.Time     `msgpack:"time" json:"time"`
	Duration   time.Duration `msgpack:"duration" json:"-"`
	StatusCode int           `msgpack:"status_code" json:"status_code,omitempty"`
	Error      string        `msgpack:"error" json:"error,omitempty"`
	// ResponseBody is the start of the response body (4 KiB in the log, less
	// in a dead-letter record).
	ResponseBody string `msgpack:"response_body" json:"response_body,omitempty"`
	// NextAttempt is when the next attempt is due, zero when none is.
	NextAttempt time.Time `msgpack:"next_attempt" json:"next_attempt,omitzero"`
}

// Dead-letter reasons.
const (
	ReasonExpired         = "expired"
	ReasonEndpointGone    = "endpoint_gone"
	ReasonEndpointDeleted = "endpoint_deleted"
	// ReasonUndecodable sets aside a delivery whose bytes no version of
	// hookstream can read (or that no dispatcher read before its deadline):
	// the record keeps the raw bytes so an operator can see them.
	ReasonUndecodable = "undecodable"
)

// Dead-letter states.
const (
	DLQStateDead      = "dead"
	DLQStateReplayed  = "replayed"
	DLQStateDelivered = "delivered"
)

// DeadLetterFirstAttempts and DeadLetterLastAttempts bound the attempts a
// record keeps; AttemptCount has the total.
const (
	DeadLetterFirstAttempts = 5
	DeadLetterLastAttempts  = 20
)

// DeadLetter is one record in DLQ (dlq.<endpoint_id>): a delivery that
// finally failed. It is immutable; its state lives in BucketDLQState.
type DeadLetter struct {
	V            int       `msgpack:"v"`
	ID           string    `msgpack:"id"`
	Event        Event     `msgpack:"event"`
	EndpointID   string    `msgpack:"endpoint_id"`
	URL          string    `msgpack:"url"`
	Generation   int       `msgpack:"generation"`
	Reason       string    `msgpack:"reason"`
	Attempts     []Attempt `msgpack:"attempts"`
	AttemptCount int       `msgpack:"attempt_count"`
	FirstAttempt time.Time `msgpack:"first_attempt"`
	LastAttempt  time.Time `msgpack:"last_attempt"`
	DeadAt       time.Time `msgpack:"dead_at"`
}

// DLQState is the mutable part of a dead-letter record, in BucketDLQState
// under the record's id. Replays change it by compare-and-set.
type DLQState struct {
	V          int       `msgpack:"v"`
	ID         string    `msgpack:"id"`
	State      string    `msgpack:"state"`
	Seq        uint64    `msgpack:"seq"` // the record's DLQ stream sequence
	EndpointID string    `msgpack:"endpoint_id"`
	EventID    string    `msgpack:"event_id"`
	EventType  string    `msgpack:"event_type"`
	Reason     string    `msgpack:"reason"`
	DeadAt     time.Time `msgpack:"dead_at"`
	// ReplayGeneration is the delivery generation the last replay published.
	ReplayGeneration int       `msgpack:"replay_generation"`
	UpdatedAt        time.Time `msgpack:"updated_at"`
}

// Delivery states, in BucketDeliveryState.
const (
	DeliveryPending = "pending"
	// DeliveryHeld is a delivery not yet settled whose endpoint is failing
	// or disabled: it waits unread (or for its retry) until it recovers.
	DeliveryHeld      = "held"
	DeliveryRetrying  = "retrying"
	DeliveryDelivered = "delivered"
	DeliveryDead      = "dead"
)

// DeliveryState is the latest state of one delivery of an event to an
// endpoint, for GET /v1/events/{id}.
type DeliveryState struct {
	V            int       `msgpack:"v"`
	EventID      string    `msgpack:"event_id"`
	EndpointID   string    `msgpack:"endpoint_id"`
	Generation   int       `msgpack:"generation"`
	State        string    `msgpack:"state"`
	Attempts     int       `msgpack:"attempts"`
	LastAttempt  time.Time `msgpack:"last_attempt"`
	LastStatus   int       `msgpack:"last_status"`
	LastError    string    `msgpack:"last_error"`
	NextAttempt  time.Time `msgpack:"next_attempt"`
	DeadLetterID string    `msgpack:"dead_letter_id"`
	UpdatedAt    time.Time `msgpack:"updated_at"`
	// History keeps the first DeadLetterFirstAttempts and the last
	// DeadLetterLastAttempts attempts of this generation, for the
	// dead-letter record; Attempts has the total.
	History []Attempt `msgpack:"history"`
}

// AddAttempt records a in the state: the count, the last attempt's fields
// and the bounded history.
func (s *DeliveryState) AddAttempt(a Attempt) {
	s.Attempts++
	s.LastAttempt, s.LastStatus, s.LastError, s.NextAttempt = a.Time, a.StatusCode, a.Error, a.NextAttempt
	if len(a.ResponseBody) > deadLetterBodyLimit {
		a.ResponseBody = a.ResponseBody[:deadLetterBodyLimit]
	}
	a.V = 0
	s.History = append(s.History, a)
	if max := DeadLetterFirstAttempts + DeadLetterLastAttempts; len(s.History) > max {
		// Drop the oldest of the "last" part, keeping the first ones.
		s.History = append(s.History[:DeadLetterFirstAttempts], s.History[DeadLetterFirstAttempts+1:]...)
	}
}

// deadLetterBodyLimit bounds the response body kept per attempt in a
// delivery's history and so in its dead-letter record.
const deadLetterBodyLimit = 1 << 10

// EventIndex is an event's entry in INDEX (on IndexSubject(event id)),
// written by the fan-out once every delivery was stored: where the event is
// in EVENTS and where each delivery is in DELIVERIES, so that an event's
// delivery states are read from JetStream (a delivery still in the
// work-queue DELIVERIES is unsettled), not from a key written per delivery.
type EventIndex struct {
	V           int             `msgpack:"v"`
	EventID     string          `msgpack:"event_id"`
	Seq         uint64          `msgpack:"seq"`
	FannedOutAt time.Time       `msgpack:"fanned_out_at"`
	Deliveries  []IndexDelivery `msgpack:"deliveries"`
}

// IndexDelivery is one delivery made by the fan-out: its endpoint and its
// DELIVERIES sequence.
type IndexDelivery struct {
	Endpoint string `msgpack:"endpoint"`
	Seq      uint64 `msgpack:"seq"`
}

// Secret is one signing secret of an endpoint. During rotation an endpoint
// has two; the old one's ExpiresAt is set.
type Secret struct {
	Key       string    `msgpack:"key"` // whsec_…
	CreatedAt time.Time `msgpack:"created_at"`
	ExpiresAt time.Time `msgpack:"expires_at"` // zero: never
}

// Endpoint is an endpoint's configuration, in BucketEndpoints under its id.
// Its health (and so its enabled/disabled status) is in BucketHealth.
type Endpoint struct {
	V           int      `msgpack:"v"`
	ID          string   `msgpack:"id"`
	URL         string   `msgpack:"url"`
	EventTypes  []string `msgpack:"event_types"`
	Secrets     []Secret `msgpack:"secrets"`
	Description string   `msgpack:"description"`
	// RateLimit is the most deliveries per second, across all dispatchers;
	// 0 means no limit.
	RateLimit float64 `msgpack:"rate_limit"`
	// Concurrency is the most deliveries in flight, across all dispatchers;
	// 0 means the dispatcher's default.
	Concurrency int `msgpack:"concurrency"`
	// Ordered endpoints receive the events that share an ordering key one
	// at a time, in EVENTS order, through Partitions lanes: each lane is
	// its own subject (LaneSubject) and consumer with one delivery in
	// flight. Partitions is 0 on an unordered endpoint.
	Ordered    bool      `msgpack:"ordered,omitempty"`
	Partitions int       `msgpack:"partitions,omitempty"`
	CreatedAt  time.Time `msgpack:"created_at"`
	UpdatedAt  time.Time `msgpack:"updated_at"`
	// Deleted marks an endpoint being deleted: the API no longer shows it and
	// dispatchers dead-letter its deliveries (endpoint_deleted), then remove
	// the key.
	Deleted bool `msgpack:"deleted"`
}

// Lanes is an ordered endpoint's lane count: Partitions, or
// DefaultPartitions for one stored without it.
func (e *Endpoint) Lanes() int {
	if e.Partitions <= 0 {
		return DefaultPartitions
	}
	return min(e.Partitions, MaxPartitions)
}

// ActiveSecrets returns the secrets that sign at now.
func (e *Endpoint) ActiveSecrets(now time.Time) []Secret {
	out := make([]Secret, 0, len(e.Secrets))
	for _, s := range e.Secrets {
		if s.ExpiresAt.IsZero() || now.Before(s.ExpiresAt) {
			out = append(out, s)
		}
	}
	return out
}

// Matches reports whether ev goes to e: a targeted event to its target
// alone; otherwise an exact type, a prefix filter "order.*" (every type that
// starts with "order."), or "*" (every untargeted event).
func (e *Endpoint) Matches(ev *Event) bool {
	if ev.Target != "" {
		return ev.Target == e.ID
	}
	for _, f := range e.EventTypes {
		if MatchType(f, ev.Type) {
			return true
		}
	}
	return false
}

// MatchType reports whether type filter f matches event type t.
func MatchType(f, t string) bool {
	switch {
	case f == "*":
		return true
	case strings.HasSuffix(f, ".*"):
		return strings.HasPrefix(t, f[:len(f)-1])
	default:
		return f == t
	}
}

// ValidateTypeFilter checks one endpoint type filter: "*", "<type>.*" or an
// exact type.
func ValidateTypeFilter(f string) error {
	if f == "*" {
		return nil
	}
	return ValidateType(strings.TrimSuffix(f, ".*"))
}

// Endpoint statuses.
const (
	StatusHealthy  = "healthy"
	StatusFailing  = "failing"
	StatusDisabled = "disabled"
)

// Health is an endpoint's health, shared by every dispatcher process and
// changed only by compare-and-set, in BucketHealth under the endpoint id. It
// doubles as an outbox: a status change and the catch-up it calls for are
// written here first and published afterwards, so a crash between the two
// neither loses the event nor sends it under two ids.
type Health struct {
	V          int       `msgpack:"v"`
	EndpointID string    `msgpack:"endpoint_id"`
	Status     string    `msgpack:"status"`
	From       string    `msgpack:"from"` // status before the last transition
	Since      time.Time `msgpack:"since"`
	Reason     string    `msgpack:"reason"`
	// Failures counts consecutive failed attempts.
	Failures int `msgpack:"failures"`
	// NextProbe is when a failing endpoint may next be probed.
	NextProbe time.Time `msgpack:"next_probe"`
	// ProbeInterval is the current spacing of probes (doubling).
	ProbeInterval time.Duration `msgpack:"probe_interval"`
	// Transitions counts status changes; it is the revision in the
	// endpoint.status_changed event id. Notified is the last transition
	// whose event was published.
	Transitions uint64 `msgpack:"transitions"`
	Notified    uint64 `msgpack:"notified"`
	// GoneSeq: after a 410 every delivery up to this DELIVERIES sequence is
	// dead-lettered as endpoint_gone.
	GoneSeq uint64 `msgpack:"gone_seq"`
	// GoneAt is when the 410 was answered: retries waiting at that moment
	// are read from the stream once every send in flight then has ended.
	GoneAt time.Time `msgpack:"gone_at"`
	// UnhealthySince is when the current gap began (zero while healthy);
	// Lost counts deliveries dead-lettered during it and Held whether a
	// backlog was held.
	UnhealthySince time.Time `msgpack:"unhealthy_since"`
	Lost           uint64    `msgpack:"lost"`
	Held           bool      `msgpack:"held"`
	// Catchup, when set, is a gap that ended and whose webhook.catchup has
	// not been published yet.
	Catchup *CatchupWindow `msgpack:"catchup"`
}

// CatchupWindow is a gap an endpoint missed, waiting for its webhook.catchup.
type CatchupWindow struct {
	From       time.Time `msgpack:"from"`
	To         time.Time `msgpack:"to"`
	Lost       uint64    `msgpack:"lost"`
	Transition uint64    `msgpack:"transition"`
}
