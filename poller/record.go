package poller

import (
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/hookstream/hookstream/streams"
)

// recordVersion is the version of the records this package stores; a decoder
// refuses another rather than guess at its fields.
const recordVersion = 1

// inboundRecordVersion is the version of a source configuration that an
// older build cannot serve: one with inbound settings or without a
// changes_url. An older poller refuses it (and skips the source, logging
// it) instead of polling an empty URL; this build reads both versions, and
// writes 1 for a source an older build still polls correctly.
const inboundRecordVersion = 2

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
	// Inbound, when set, lets the source receive its system's own webhooks
	// at POST /ingest/{id}. A source has a ChangesURL, an Inbound, or both.
	Inbound   *inboundConfig `msgpack:"inbound,omitempty"`
	CreatedAt time.Time      `msgpack:"created_at"`
	UpdatedAt time.Time      `msgpack:"updated_at"`
}

// polled reports whether the source has a feed to poll.
func (c *sourceConfig) polled() bool { return c.ChangesURL != "" }

// inboundConfig is a source's inbound settings (see inbound.Receiver).
// Secrets are credentials like Headers: stored here, shown only in the
// answer that created them, never logged.
type inboundConfig struct {
	Format   string   `msgpack:"format"`
	Header   string   `msgpack:"header"`
	IDHeader string   `msgpack:"id_header"`
	IDFrom   []string `msgpack:"id_from"`
	Type     string   `msgpack:"type"`
	// Secrets are newest first: the current one, then those a rotation
	// still accepts until their ExpiresAt.
	Secrets []inboundSecret `msgpack:"secrets"`
}

// inboundSecret is one secret a push may be signed with.
type inboundSecret struct {
	Value     string    `msgpack:"value"`
	CreatedAt time.Time `msgpack:"created_at"`
	// ExpiresAt is when a rotated-out secret stops verifying; zero for
	// the current one.
	ExpiresAt time.Time `msgpack:"expires_at"`
}

// activeSecrets are the secrets that verify at now, the current first.
func (ic *inboundConfig) activeSecrets(now time.Time) []string {
	out := make([]string, 0, len(ic.Secrets))
	for _, s := range ic.Secrets {
		if s.ExpiresAt.IsZero() || now.Before(s.ExpiresAt) {
			out = append(out, s.Value)
		}
	}
	return out
}

// rotate makes secret the current one at now: the secrets that verify now
// keep doing so until now+overlap (or their own earlier expiry); expired
// ones are dropped, so the list stays short however often it rotates.
func (ic *inboundConfig) rotate(secret string, now time.Time, overlap time.Duration) {
	out := []inboundSecret{{Value: secret, CreatedAt: now}}
	for _, s := range ic.Secrets {
		switch {
		case s.Value == secret:
			continue
		case s.ExpiresAt.IsZero():
			s.ExpiresAt = now.Add(overlap)
		case !now.Before(s.ExpiresAt):
			continue
		}
		if overlap > 0 {
			out = append(out, s)
		}
	}
	ic.Secrets = out
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
	// Failures counts failed polls in a row, of any kind; Unreachable those
	// among the last that were not ErrAuth (what makes a source
	// unreachable);
	// Backoff the failed polls since the status left healthy (the exponent
	// of the delay).
	Failures    int `msgpack:"failures"`
	Unreachable int `msgpack:"unreachable"`
	Backoff     int `msgpack:"backoff"`
	// LastEvent is when the poller last published a page with changes.
	LastEvent time.Time `msgpack:"last_event"`
	// LastPush is when POST /ingest/{id} last stored a push, written at
	// most once per pushRecordEvery by each API process (so up to that much
	// behind); LastPushInstance the X-Discourse-Instance it named.
	LastPush         time.Time `msgpack:"last_push"`
	LastPushInstance string    `msgpack:"last_push_instance"`
	// Skipped counts the invalid changes the feed sent, which were skipped
	// (never published); SkippedRecent are the last maxSkippedKept of them,
	// oldest first. They are written with the cursor that moves past them,
	// so none is skipped without a record.
	Skipped       uint64          `msgpack:"skipped"`
	SkippedRecent []skippedChange `msgpack:"skipped_recent"`
}

// skippedChange is one invalid change a poll skipped.
type skippedChange struct {
	// Index is the change's place in its page, Cursor the cursor the page
	// was asked from ("" for the first page): with them the source's owner
	// can find it.
	Index  int    `msgpack:"index"`
	Cursor string `msgpack:"cursor"`
	// ID is the change's id, when it had one that could be read.
	ID string `msgpack:"id"`
	// Reason is what is wrong with it, naming the field.
	Reason string    `msgpack:"reason"`
	At     time.Time `msgpack:"at"`
}

// Bounds of the text a feed can put into a source's state (and its
// connection.status_changed), so that a hostile feed cannot grow them: a
// poll's error (Go quotes a malformed status line whole), and a skipped
// change's record.
const (
	maxErrorText     = 1 << 10
	maxSkippedKept   = 10
	maxSkippedID     = streams.MaxIDLength
	maxSkippedCursor = 256
	maxSkippedReason = 256
)

func (s skippedChange) String() string {
	if s.ID != "" {
		return fmt.Sprintf("changes[%d] (id %q) at cursor %q: %s", s.Index, s.ID, s.Cursor, s.Reason)
	}
	return fmt.Sprintf("changes[%d] at cursor %q: %s", s.Index, s.Cursor, s.Reason)
}

// same reports whether s and o are one change skipped twice (a page polled
// again from the same cursor).
func (s skippedChange) same(o skippedChange) bool {
	return s.Index == o.Index && s.Cursor == o.Cursor && s.ID == o.ID && s.Reason == o.Reason
}

// recordSkipped adds a page's skips to st, unless they are recorded already
// (the page was polled again from the same cursor: its last skip, the newest
// recorded, is there), and sets the last error to say so. It reports whether
// anything was added.
func (st *sourceState) recordSkipped(skipped []skippedChange, now time.Time) bool {
	if len(skipped) == 0 || slices.ContainsFunc(st.SkippedRecent, skipped[len(skipped)-1].same) {
		return false
	}
	var fresh []skippedChange
	for _, s := range skipped {
		if !slices.ContainsFunc(st.SkippedRecent, s.same) {
			fresh = append(fresh, s)
		}
	}
	if len(fresh) == 0 {
		return false
	}
	st.Skipped += uint64(len(fresh))
	recent := append(slices.Clone(st.SkippedRecent), fresh...)
	st.SkippedRecent = recent[max(0, len(recent)-maxSkippedKept):]
	msg := fmt.Sprintf("%s: skipped invalid change %s", ErrBadFeed, fresh[0])
	if len(fresh) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(fresh)-1)
	}
	st.LastError, st.LastErrorAt = msg, now
	return true
}

// cutText cuts s to at most n bytes without splitting a UTF-8 sequence.
func cutText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
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

// The records are stored with streams' versioned codec.
func (c *sourceConfig) EnvelopeVersion() (int, int) {
	if c.V == recordVersion || c.V == inboundRecordVersion {
		return c.V, c.V
	}
	return c.V, inboundRecordVersion
}

func (c *sourceConfig) SetEnvelopeVersion() {
	c.V = recordVersion
	if c.Inbound != nil || !c.polled() {
		c.V = inboundRecordVersion
	}
}
func (st *sourceState) EnvelopeVersion() (int, int) { return st.V, recordVersion }
func (st *sourceState) SetEnvelopeVersion()         { st.V = recordVersion }

// decodeRecord decodes a stored record of type T.
func decodeRecord[T any, PT interface {
	*T
	streams.Versioned
}](b []byte) (*T, error) {
	v := new(T)
	if err := streams.Unmarshal(b, PT(v)); err != nil {
		return nil, err
	}
	return v, nil
}
