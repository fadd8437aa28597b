package producer

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/streams"
)

func fuzzLimits() limits {
	return limits{
		maxData: 256,
		maxBody: 1024,
		now:     func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) },
		newID:   func() string { return "evt_fuzz" },
	}
}

// FuzzDecodeEventRequest: whatever the body, decoding never panics, an
// accepted event is complete and valid (and encodes as a webhook body), and
// a refusal is a 400 or a 413, never something the API would answer 500.
func FuzzDecodeEventRequest(f *testing.F) {
	for _, seed := range []string{
		`{"type": "order.created", "data": {}}`,
		`{"id": "shop:42", "type": "purchase_order.updated", "source": "shop-eu_1", "time": "2024-05-01T10:00:00.123+02:00", "data": {"a": [1, 2, {"b": null}], "s": "\u00e9"}}`,
		`{"type": "a", "data": {}, "time": null, "id": ""}`,
		`{"type": "a", "data": {}}   `,
		``,
		`null`,
		`[]`,
		`"x"`,
		`{"type": 5, "data": {}}`,
		`{"type": "A", "data": {}}`,
		`{"type": "a", "data": []}`,
		`{"type": "a", "data": null}`,
		`{"type": "a", "data": {"k": "` + strings.Repeat("x", 300) + `"}}`,
		`{"type": "a", "data": {}, "extra": 1}`,
		`{"type": "a", "data": {}} {}`,
		`{"type": "a", "time": "yesterday", "data": {}}`,
		`{"type": "a", "time": "", "data": {}}`,
		`{"id": "a b", "type": "a", "data": {}}`,
		`{"id": "\ud800", "type": "a", "data": {}}`,
		`{"source": "a.b", "type": "a", "data": {}}`,
		`{"type": "a", "data": {"x": 1}`,
		`{"TYPE": "a", "Data": {}}`,
	} {
		f.Add([]byte(seed))
	}
	lim := fuzzLimits()
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := decodeEventRequest(body, lim)
		if err != nil {
			var he *httpjson.Error
			switch {
			case errors.As(err, &he):
				if he.Code != http.StatusBadRequest && he.Code != http.StatusRequestEntityTooLarge {
					t.Fatalf("refused with %d: %v", he.Code, err)
				}
			case errors.Is(err, streams.ErrInvalidEvent):
			default:
				t.Fatalf("refused with an error the API answers 500: %v", err)
			}
			if !strings.Contains(err.Error(), ": ") {
				t.Fatalf("error %q names no field", err)
			}
			return
		}
		if err := ev.Validate(lim.maxData); err != nil {
			t.Fatalf("accepted an invalid event %+v: %v", ev, err)
		}
		if ev.Time.Location() != time.UTC {
			t.Fatalf("accepted time %s not in UTC", ev.Time)
		}
		if _, err := ev.WebhookBody(); err != nil {
			t.Fatalf("accepted event does not encode as a webhook body: %v", err)
		}
		if _, err := streams.Marshal(&ev); err != nil {
			t.Fatalf("accepted event does not encode as an envelope: %v", err)
		}
	})
}

func TestDecodeEventRequestCompletesEvent(t *testing.T) {
	t.Parallel()
	ev, err := decodeEventRequest([]byte(`{"type": "order.created", "data": {"a": 1}}`), fuzzLimits())
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	if ev.ID != "evt_fuzz" || ev.Source != "default" || !ev.Time.Equal(want) || string(ev.Data) != `{"a": 1}` {
		t.Fatalf("decoded %+v", ev)
	}
}
