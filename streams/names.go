package streams

import (
	"crypto/rand"
	"encoding/base64"
	"hash/fnv"
	"strconv"
	"strings"
)

// Stream names.
const (
	StreamEvents     = "EVENTS"
	StreamDeliveries = "DELIVERIES"
	StreamDLQ        = "DLQ"
	StreamAttempts   = "ATTEMPTS"
	// StreamIndex finds an event by id: one entry per fanned-out event on
	// index.<bucket>, a fixed number of hash buckets of the id, so the
	// server's per-subject memory stays the same however many events are
	// stored.
	StreamIndex = "INDEX"
)

// Subject roots.
const (
	SubjectEvents     = "events"
	SubjectDeliveries = "deliveries"
	SubjectDLQ        = "dlq"
	SubjectAttempts   = "attempts"
	SubjectIndex      = "index"
)

// IndexBuckets is how many subjects INDEX spreads the event ids over: at
// 10 million stored events a lookup reads ~10 entries; the server keeps a
// subject per bucket in use (about 100 bytes each), at most ~100 MB however
// many events are stored.
const IndexBuckets = 1 << 20

// IndexSubject is the INDEX subject of an event id's bucket.
func IndexSubject(eventID string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(eventID))
	return SubjectIndex + "." + strconv.FormatUint(uint64(h.Sum32()%IndexBuckets), 16)
}

// Key-value bucket names.
const (
	// BucketEndpoints holds endpoint configuration, key = endpoint id.
	BucketEndpoints = "hookstream_endpoints"
	// BucketHealth holds endpoint health shared by every dispatcher, key =
	// endpoint id, changed by compare-and-set.
	BucketHealth = "hookstream_health"
	// BucketDeliveryState holds the state of each delivery that failed and
	// is not yet settled (its attempts, its next one), key = DeliveryKey(event
	// id, endpoint id); the key is purged when the delivery ends, so the
	// bucket grows with failures, never with traffic.
	BucketDeliveryState = "hookstream_delivery_state"
	// BucketSources holds source configuration, key = source id.
	BucketSources = "hookstream_sources"
	// BucketSourceState holds source cursors and status, key = source id.
	BucketSourceState = "hookstream_source_state"
	// BucketDLQState holds each dead-letter record's mutable state, key =
	// record id.
	BucketDLQState = "hookstream_dlq_state"
	// BucketReplayJobs holds bulk replay jobs, key = job id.
	BucketReplayJobs = "hookstream_replay_jobs"
	// BucketMembers holds one key per live dispatcher or poller process,
	// refreshed by heartbeat and expired by the bucket's TTL; used to share
	// per-endpoint limits and to lease sources.
	BucketMembers = "hookstream_members"
	// BucketLeases holds short leases (source polling, probe ownership).
	BucketLeases = "hookstream_leases"
)

// EventSubject is the EVENTS subject of an event: events.<source>.<type>.
func EventSubject(source, typ string) string {
	return SubjectEvents + "." + source + "." + typ
}

// DeliverySubject is the DELIVERIES subject of an endpoint's deliveries.
func DeliverySubject(endpointID string) string { return SubjectDeliveries + "." + endpointID }

// Lane limits of an ordered endpoint.
const (
	// DefaultPartitions is an ordered endpoint's lane count when none is given.
	DefaultPartitions = 16
	// MaxPartitions bounds an ordered endpoint's lanes.
	MaxPartitions = 256
)

// LaneSubject is the DELIVERIES subject of one lane of an ordered
// endpoint: deliveries.<endpoint_id>.<lane>. It does not overlap the
// endpoint's unordered subject, so both may have a consumer on the
// work-queue stream.
func LaneSubject(endpointID string, lane int) string {
	return SubjectDeliveries + "." + endpointID + "." + strconv.Itoa(lane)
}

// LaneOf is the lane, in [0, partitions), of an ordering key: FNV-1a of the
// key modulo the lane count. Fan-out and DLQ replay use it alike.
func LaneOf(key string, partitions int) int {
	if partitions <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(partitions))
}

// EndpointOfSubject is the endpoint id of a DELIVERIES subject, lane or not
// (its second token).
func EndpointOfSubject(subject string) string {
	rest := strings.TrimPrefix(subject, SubjectDeliveries+".")
	if i := strings.IndexByte(rest, '.'); i >= 0 {
		return rest[:i]
	}
	return rest
}

// DeliveryTarget is the DELIVERIES subject a delivery of ev to ep is
// published on: a lane of an ordered endpoint, or the endpoint's subject.
func DeliveryTarget(ep *Endpoint, ev *Event) string {
	if ep.Ordered {
		return LaneSubject(ep.ID, ev.Lane(ep.Lanes()))
	}
	return DeliverySubject(ep.ID)
}

// DLQSubject is the DLQ subject of an endpoint's dead letters.
func DLQSubject(endpointID string) string { return SubjectDLQ + "." + endpointID }

// AttemptSubject is the ATTEMPTS subject of an endpoint's attempt log.
func AttemptSubject(endpointID string) string { return SubjectAttempts + "." + endpointID }

// DeliveryMsgID is the Nats-Msg-Id of a delivery: <event_id>.<endpoint_id>.<generation>.
// Generation 0 comes from fan-out, n from the n-th replay.
func DeliveryMsgID(eventID, endpointID string, generation int) string {
	return eventID + "." + endpointID + "." + strconv.Itoa(generation)
}

// IDToken turns an arbitrary event id into a string that is safe as a NATS
// subject token and a KV key (publishers choose ids freely, and ':' or '.'
// are not allowed in keys). It is deterministic and reversible.
func IDToken(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

// ParseIDToken reverses IDToken.
func ParseIDToken(tok string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	return string(b), err
}

// DeliveryKey is the BucketDeliveryState key of one delivery.
func DeliveryKey(eventID, endpointID string) string { return IDToken(eventID) + "." + endpointID }

// ConsumerFanout is the durable consumer that fans EVENTS out to DELIVERIES
// of unordered endpoints.
const ConsumerFanout = "fanout"

// ConsumerFanoutOrdered is the durable consumer that fans EVENTS out to
// the lanes of ordered endpoints: one dispatcher at a time (a pinned
// priority group), one batch at a time, so that a lane's deliveries are
// stored in EVENTS order.
const ConsumerFanoutOrdered = "fanout_ordered"

// LaneConsumer is the durable consumer name of one lane of an ordered
// endpoint.
func LaneConsumer(endpointID string, lane int) string {
	return "ep_" + endpointID + "_" + strconv.Itoa(lane)
}

// DeliveryConsumer is the durable consumer name of an endpoint's deliveries.
func DeliveryConsumer(endpointID string) string { return "ep_" + endpointID }

// NewID returns prefix followed by 26 lower-case base32 characters (128
// bits from crypto/rand): an id that is safe as a NATS subject token, a KV
// key and a URL path segment. Every generated id (events, endpoints, jobs,
// processes) comes from here.
func NewID(prefix string) string { return prefix + strings.ToLower(rand.Text()) }
