package httpjson_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/hookstream/hookstream/streams/streamstest"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/streams"
)

func TestMain(m *testing.M) { streamstest.VerifyTestMain(m) }

// target is a body with a field of every kind the API's bodies use.
type target struct {
	Name   string            `json:"name"`
	Count  int               `json:"count"`
	Rate   float64           `json:"rate"`
	On     bool              `json:"on"`
	Tags   []string          `json:"tags"`
	Head   map[string]string `json:"headers"`
	Data   json.RawMessage   `json:"data"`
	Ptr    *int              `json:"ptr"`
	Nested struct {
		X int `json:"x"`
	} `json:"nested"`
}

// decode runs Decode on body with limit and, when it fails, answers the
// error with Fail as every handler does; it returns the error, the status
// and the decoded {"error"} message.
func decode(t *testing.T, body string, limit int64) (error, int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/v1/things", strings.NewReader(body))
	rec := httptest.NewRecorder()
	var v target
	err := httpjson.Decode(rec, req, limit, &v)
	if err == nil {
		return nil, 0, ""
	}
	httpjson.Fail(rec, err)
	return err, rec.Code, errorBody(t, rec)
}

// errorBody checks that rec holds exactly {"error": "<non-empty>"} as JSON
// and returns the message.
func errorBody(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("content-type = %q, want application/json", ct)
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("answer %q is not JSON: %v", rec.Body.String(), err)
	}
	msg, ok := m["error"].(string)
	if len(m) != 1 || !ok || msg == "" {
		t.Fatalf("answer %q is not {\"error\": \"…\"}", rec.Body.String())
	}
	return msg
}

func TestDecodeErrorsNameTheField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		// want is the whole message, or its start when prefix is set.
		want   string
		prefix bool
	}{
		{name: "string for a whole number", body: `{"count":"7"}`, want: "count: must be a whole number, got string"},
		{name: "fraction for a whole number", body: `{"count":1.5}`, want: "count: must be a whole number, got number 1.5"},
		{name: "overflowing whole number", body: `{"count":99999999999999999999}`, want: "count: must be a whole number, got number 99999999999999999999"},
		{name: "string for a float", body: `{"rate":"fast"}`, want: "rate: must be a number, got string"},
		{name: "number for a string", body: `{"name":1}`, want: "name: must be a string, got number"},
		{name: "string for a boolean", body: `{"on":"yes"}`, want: "on: must be a boolean, got string"},
		{name: "string for an array", body: `{"tags":"a"}`, want: "tags: must be an array, got string"},
		{name: "number in a string array", body: `{"tags":["a",2]}`, want: "tags: must be a string, got number"},
		{name: "array for an object", body: `{"headers":["a"]}`, want: "headers: must be a JSON object, got array"},
		{name: "number as a header value", body: `{"headers":{"a":1}}`, want: "headers: must be a string, got number"},
		{name: "string for a pointer to int", body: `{"ptr":"x"}`, want: "ptr: must be a whole number, got string"},
		{name: "nested field", body: `{"nested":{"x":true}}`, want: "nested.x: must be a whole number, got bool"},
		{name: "unknown field", body: `{"name":"a","colour":"red"}`, want: "colour: unknown field"},
		{name: "array body", body: `[{"name":"a"}]`, want: "body: must be a JSON object, got array"},
		{name: "string body", body: `"name"`, want: "body: must be a JSON object, got string"},
		{name: "second object", body: `{"name":"a"} {"name":"b"}`, want: "body: must hold one JSON object and nothing after it"},
		{name: "trailing garbage", body: `{"name":"a"}x`, want: "body: must hold one JSON object and nothing after it"},
		{name: "trailing comma", body: `{"name":"a"},`, want: "body: must hold one JSON object and nothing after it"},
		{name: "empty", body: ``, want: "body: empty; a JSON object is required"},
		{name: "only whitespace", body: " \n\t ", want: "body: empty; a JSON object is required"},
		{name: "truncated", body: `{"name":`, want: "body: malformed JSON (unexpected end)"},
		{name: "unquoted key", body: `{name:"a"}`, want: "body: malformed JSON at byte 2: ", prefix: true},
		{name: "not UTF-8", body: "\xff", want: "body: malformed JSON at byte 1: ", prefix: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err, code, msg := decode(t, tc.body, 0)
			if err == nil {
				t.Fatalf("Decode(%q) = nil, want an error", tc.body)
			}
			var he *httpjson.Error
			if !errors.As(err, &he) || he.Code != http.StatusBadRequest {
				t.Errorf("Decode(%q) = %#v, want an *httpjson.Error with code 400", tc.body, err)
			}
			if code != http.StatusBadRequest {
				t.Errorf("status = %d, want 400", code)
			}
			if tc.prefix && !strings.HasPrefix(msg, tc.want) || !tc.prefix && msg != tc.want {
				t.Errorf("error = %q, want %q", msg, tc.want)
			}
			if msg != err.Error() {
				t.Errorf("answered %q, but the error reads %q", msg, err.Error())
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{}`,
		`{"name":"a","count":3,"rate":0.5,"on":true,"tags":["x"],"headers":{"k":"v"},"data":{"n":1},"ptr":2,"nested":{"x":1}}`,
		"{\"name\":\"a\"}\n\t  ", // trailing whitespace is not data
		`{"data":[1,"two",{"three":3}]}`,
	} {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		var v target
		if err := httpjson.Decode(httptest.NewRecorder(), req, 0, &v); err != nil {
			t.Errorf("Decode(%q) = %v, want nil", body, err)
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"name":"a","count":3,"tags":["x","y"],"ptr":0}`))
	var v target
	if err := httpjson.Decode(httptest.NewRecorder(), req, 0, &v); err != nil {
		t.Fatal(err)
	}
	if v.Name != "a" || v.Count != 3 || len(v.Tags) != 2 || v.Ptr == nil || *v.Ptr != 0 {
		t.Errorf("decoded %+v", v)
	}
}

func TestDecodeTooLarge(t *testing.T) {
	t.Parallel()
	// An object of exactly n bytes.
	object := func(n int) string {
		const head, tail = `{"name":"`, `"}`
		return head + strings.Repeat("a", n-len(head)-len(tail)) + tail
	}
	tests := []struct {
		name  string
		body  string
		limit int64
		want  string // "" for no error
	}{
		{name: "exactly the limit", body: object(64), limit: 64},
		{name: "one byte over", body: object(65), limit: 64, want: "body: larger than the limit of 64 bytes"},
		{name: "far over", body: object(10 << 10), limit: 64, want: "body: larger than the limit of 64 bytes"},
		// The object fits, but what follows it takes the body past the
		// limit: the body is too large, whatever it holds.
		{name: "padding past the limit", body: object(32) + strings.Repeat(" ", 64), limit: 64, want: "body: larger than the limit of 64 bytes"},
		{name: "default limit fits", body: object(httpjson.DefaultBodyLimit), limit: 0},
		{name: "default limit", body: object(httpjson.DefaultBodyLimit + 1), limit: 0, want: fmt.Sprintf("body: larger than the limit of %d bytes", httpjson.DefaultBodyLimit)},
		{name: "negative limit is the default", body: object(httpjson.DefaultBodyLimit + 1), limit: -1, want: fmt.Sprintf("body: larger than the limit of %d bytes", httpjson.DefaultBodyLimit)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err, code, msg := decode(t, tc.body, tc.limit)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Decode = %v, want nil", err)
				}
				return
			}
			if code != http.StatusRequestEntityTooLarge || msg != tc.want {
				t.Errorf("answer = %d %q, want 413 %q", code, msg, tc.want)
			}
		})
	}
}

func TestParsePage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query      string
		wantLimit  int
		wantCursor string
		wantErr    bool
	}{
		{query: "", wantLimit: httpjson.LimitDefault},
		{query: "cursor=abc", wantLimit: 100, wantCursor: "abc"},
		{query: "limit=1", wantLimit: 1},
		{query: "limit=1000&cursor=x%20y", wantLimit: 1000, wantCursor: "x y"},
		{query: "limit=", wantLimit: 100},
		{query: "limit=0", wantErr: true},
		{query: "limit=1001", wantErr: true},
		{query: "limit=-1", wantErr: true},
		{query: "limit=ten", wantErr: true},
		{query: "limit=1.5", wantErr: true},
		{query: "limit=99999999999999999999", wantErr: true},
	}
	for _, tc := range tests {
		req := httptest.NewRequest(http.MethodGet, "/v1/things?"+tc.query, nil)
		limit, cursor, err := httpjson.ParsePage(req)
		if tc.wantErr {
			var he *httpjson.Error
			if !errors.As(err, &he) || he.Code != http.StatusBadRequest || !strings.HasPrefix(he.Msg, "limit: must be a whole number from 1 to 1000") {
				t.Errorf("ParsePage(%q) error = %v, want a 400 naming limit", tc.query, err)
			}
			continue
		}
		if err != nil || limit != tc.wantLimit || cursor != tc.wantCursor {
			t.Errorf("ParsePage(%q) = %d, %q, %v; want %d, %q, nil", tc.query, limit, cursor, err, tc.wantLimit, tc.wantCursor)
		}
	}
}

func TestFailMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		err        error
		wantCode   int
		wantMsg    string
		retryAfter bool
	}{
		{name: "not found", err: fmt.Errorf("endpoint ep_1: %w", httpjson.ErrNotFound), wantCode: 404, wantMsg: "endpoint ep_1: not found"},
		{name: "conflict", err: fmt.Errorf("id: source %q already exists: %w", "crm", httpjson.ErrConflict), wantCode: 409, wantMsg: `id: source "crm" already exists: conflict`},
		{name: "unavailable", err: fmt.Errorf("%w: nats: timeout", streams.ErrUnavailable), wantCode: 503, retryAfter: true},
		{name: "invalid event", err: fmt.Errorf("type: required: %w", streams.ErrInvalidEvent), wantCode: 400, wantMsg: "type: required"},
		{name: "bad request", err: httpjson.BadRequest("limit: must be %s", "positive"), wantCode: 400, wantMsg: "limit: must be positive"},
		{name: "wrapped *Error keeps its code", err: fmt.Errorf("create: %w", &httpjson.Error{Code: 413, Msg: "body: too large"}), wantCode: 413, wantMsg: "body: too large"},
		{name: "anything else", err: errors.New("disk on fire"), wantCode: 500, wantMsg: "disk on fire"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			httpjson.Fail(rec, tc.err)
			if rec.Code != tc.wantCode {
				t.Errorf("status = %d, want %d", rec.Code, tc.wantCode)
			}
			msg := errorBody(t, rec)
			if tc.wantMsg != "" && msg != tc.wantMsg {
				t.Errorf("error = %q, want %q", msg, tc.wantMsg)
			}
			got := rec.Header().Get("Retry-After")
			if tc.retryAfter && got != fmt.Sprint(httpjson.RetryAfterSeconds) {
				t.Errorf("Retry-After = %q, want %d", got, httpjson.RetryAfterSeconds)
			}
			if !tc.retryAfter && got != "" {
				t.Errorf("Retry-After = %q on a %d", got, rec.Code)
			}
		})
	}
}

func TestWriteJSON(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	httpjson.WriteJSON(rec, http.StatusCreated, httpjson.Page[string]{Items: []string{"a"}, NextCursor: "a"})
	if rec.Code != http.StatusCreated || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("answer = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if got, want := strings.TrimSpace(rec.Body.String()), `{"items":["a"],"next_cursor":"a"}`; got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
}
