package producer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/streams"
)

// eventRequest is the body of POST /v1/events.
type eventRequest struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Source string `json:"source"`
	// OrderingKey orders the event among those of the same key on an
	// ordered endpoint.
	OrderingKey string `json:"ordering_key"`
	// Time is a pointer so that an absent time (now) differs from an empty
	// one (an error).
	Time *string         `json:"time"`
	Data json.RawMessage `json:"data"`
}

// decodeEventRequest turns a POST /v1/events body into a complete, valid
// event. Its errors are an *httpjson.Error (413 for a body or data over its
// limit, 400 naming the field for malformed JSON, a wrong type or an unknown
// field) or wrap streams.ErrInvalidEvent (400 naming the field): never
// anything the API would answer with 500. It is a pure function of its input
// so that it can be fuzzed.
func decodeEventRequest(body []byte, lim limits) (streams.Event, error) {
	if int64(len(body)) > lim.maxBody {
		return streams.Event{}, tooLarge("body: %d bytes is over the body limit of %d bytes", len(body), lim.maxBody)
	}
	var req eventRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return streams.Event{}, httpjson.DecodeError(err, lim.maxBody)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return streams.Event{}, httpjson.BadRequest("body: must hold one JSON object and nothing after it")
	}
	if len(req.Data) > lim.maxData {
		return streams.Event{}, tooLarge("data: %d bytes is over the event data limit of %d bytes", len(req.Data), lim.maxData)
	}
	ev := Event{ID: req.ID, Type: req.Type, Source: req.Source, OrderingKey: req.OrderingKey, Data: req.Data}
	if req.Time != nil {
		t, err := time.Parse(time.RFC3339, *req.Time)
		if err != nil {
			return streams.Event{}, httpjson.BadRequest("time: must be an RFC 3339 time such as 2006-01-02T15:04:05Z, got %q", *req.Time)
		}
		ev.Time = t
	}
	return lim.normalize(ev)
}

func tooLarge(format string, args ...any) *httpjson.Error {
	return &httpjson.Error{Code: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf(format, args...)}
}

// readBody reads a request body of at most limit bytes: a larger one is a
// 413 naming the limit.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= limit {
		buf.Grow(int(n) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge("body: larger than the body limit of %d bytes", limit)
		}
		return nil, httpjson.BadRequest("body: %s", err)
	}
	return buf.Bytes(), nil
}
