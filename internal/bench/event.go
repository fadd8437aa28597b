package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Event is one event the benchmark publishes: the fields a publisher gives.
type Event struct {
	ID   string
	Type string
	Data []byte
}

// PublishFunc publishes evs (one, or a batch) and returns once the pipeline
// acknowledged them all; an event refused is an error.
type PublishFunc func(ctx context.Context, evs []Event) error

// sentKey is the field of the event data that carries the publish time
// (unix nanoseconds), so that a receiver can tell its latency from the body
// alone, whichever process published it.
const sentKey = `"bench_sent":`

// EventData returns a JSON object of size bytes (at least 43: the send
// time and an empty pad) carrying sent.
func EventData(sent time.Time, size int) []byte {
	var b bytes.Buffer
	b.WriteString("{" + sentKey)
	b.WriteString(strconv.FormatInt(sent.UnixNano(), 10))
	b.WriteString(`,"pad":"`)
	if pad := size - b.Len() - 2; pad > 0 {
		b.WriteString(strings.Repeat("x", pad))
	}
	b.WriteString(`"}`)
	return b.Bytes()
}

// SentTime finds the publish time EventData put in body (a webhook body,
// whose data is the event's byte for byte).
func SentTime(body []byte) (time.Time, bool) {
	i := bytes.Index(body, []byte(sentKey))
	if i < 0 {
		return time.Time{}, false
	}
	rest := body[i+len(sentKey):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	ns, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// EventMaker makes the events of one case: ids unique to the run and the
// case, one type that only the case's endpoints subscribe to.
type EventMaker struct {
	// Prefix starts every id; Type is every event's type.
	Prefix, Type string
	// Size is the bytes of each event's data.
	Size int
}

// Make returns event i, sent now.
func (m EventMaker) Make(i int) Event { return m.MakeAt(i, time.Now()) }

// MakeAt returns event i, with sent as its publish time.
func (m EventMaker) MakeAt(i int, sent time.Time) Event {
	return Event{ID: m.Prefix + "-" + strconv.Itoa(i), Type: m.Type, Data: EventData(sent, m.Size)}
}

// IngestBody is the POST /v1/events body of ev.
func IngestBody(ev Event) []byte {
	b := make([]byte, 0, len(ev.Data)+len(ev.ID)+len(ev.Type)+40)
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, ev.ID)
	b = append(b, `,"type":`...)
	b = strconv.AppendQuote(b, ev.Type)
	b = append(b, `,"data":`...)
	b = append(b, ev.Data...)
	return append(b, '}')
}

// BatchBody is the POST /v1/events/batch body of evs.
func BatchBody(evs []Event) []byte {
	var b bytes.Buffer
	b.WriteString(`{"events":[`)
	for i, ev := range evs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(IngestBody(ev))
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// WebhookBody is the body hookstream sends for ev, as an endpoint gets it.
func WebhookBody(ev Event, source string, at time.Time) []byte {
	b, _ := json.Marshal(struct {
		ID        string          `json:"id"`
		Type      string          `json:"type"`
		Source    string          `json:"source"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}{ev.ID, ev.Type, source, at.UTC().Format(time.RFC3339Nano), ev.Data})
	return b
}

func itoa(i int) string { return strconv.Itoa(i) }

func splitPort(addr string) (string, int, error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", 0, fmt.Errorf("%q: want host:port", addr)
	}
	host := strings.Trim(addr[:i], "[]")
	p, err := strconv.Atoi(addr[i+1:])
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", addr)
	}
	return host, p, nil
}
