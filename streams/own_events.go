package streams

import (
	"strconv"
	"time"
)

// hookstream's own event types and their source.
const (
	TypeEndpointStatusChanged   = "endpoint.status_changed"
	TypeConnectionStatusChanged = "connection.status_changed"
	TypeWebhookCatchup          = "webhook.catchup"
	// TypeUndecodable is the type of the event in a dead-letter record that
	// sets aside bytes no version of hookstream could read.
	TypeUndecodable = "hookstream.undecodable"
	OwnSource       = "hookstream"
	// MaxCatchupEventIDs is how many event ids a webhook.catchup names; the
	// rest are only counted in `missed`.
	MaxCatchupEventIDs = 100
)

// OwnEventID is the deterministic id of one of hookstream's own events,
// <kind>:<endpoint or source id>:<revision>, so that a crash never sends one
// twice under two ids.
func OwnEventID(kind, id string, revision uint64) string {
	return kind + ":" + id + ":" + strconv.FormatUint(revision, 10)
}

// EndpointStatusChanged is the data of endpoint.status_changed.
type EndpointStatusChanged struct {
	Endpoint string    `json:"endpoint"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Reason   string    `json:"reason"`
	Since    time.Time `json:"since"`
	Seq      uint64    `json:"seq"`
}

// ConnectionStatusChanged is the data of connection.status_changed.
type ConnectionStatusChanged struct {
	Source string    `json:"source"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Error  string    `json:"error"`
	Since  time.Time `json:"since"`
	Seq    uint64    `json:"seq"`
}

// WebhookCatchup is the data of webhook.catchup, targeted at one endpoint.
type WebhookCatchup struct {
	Endpoint string    `json:"endpoint"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Missed   uint64    `json:"missed"`
	EventIDs []string  `json:"event_ids"`
	Seq      uint64    `json:"seq"`
}
