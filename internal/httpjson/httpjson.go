// Package httpjson holds the conventions every hookstream HTTP route shares:
// JSON bodies with size limits and errors that name the field, the
// {"error": …} answer with its status code, list pagination, and the Route
// type each domain package exports so the API server can mount (and
// authenticate) every route from one table.
package httpjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/hookstream/hookstream/streams"
)

// Route is one HTTP route: Method and Pattern as net/http's ServeMux takes
// them ("GET", "/v1/endpoints/{id}").
type Route struct {
	Method  string
	Pattern string
	Handler http.HandlerFunc
}

// DefaultBodyLimit bounds a JSON request body unless a route says otherwise.
const DefaultBodyLimit = 64 << 10

// Error is an error with the HTTP status it is answered with.
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// BadRequest is a 400 whose message should name the field.
func BadRequest(format string, args ...any) *Error {
	return &Error{Code: http.StatusBadRequest, Msg: fmt.Sprintf(format, args...)}
}

// ErrNotFound is answered 404; wrap it to say what was not found.
var ErrNotFound = errors.New("not found")

// ErrConflict is answered 409; wrap it to say what conflicts.
var ErrConflict = errors.New("conflict")

// RetryAfterSeconds is the Retry-After sent with a 503.
const RetryAfterSeconds = 1

// WriteJSON writes v as JSON with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes {"error": msg} with status code.
func WriteError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, map[string]string{"error": msg})
}

// Fail answers err with the status it calls for: an *Error its own code,
// ErrNotFound 404, ErrConflict 409, an invalid event 400, an unavailable
// store 503 with Retry-After, anything else 500.
func Fail(w http.ResponseWriter, err error) {
	var he *Error
	switch {
	case errors.As(err, &he):
		WriteError(w, he.Code, he.Msg)
	case errors.Is(err, ErrNotFound):
		WriteError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrConflict):
		WriteError(w, http.StatusConflict, err.Error())
	case errors.Is(err, streams.ErrInvalidEvent):
		WriteError(w, http.StatusBadRequest, strings.TrimSuffix(err.Error(), ": "+streams.ErrInvalidEvent.Error()))
	case errors.Is(err, streams.ErrUnavailable):
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
		WriteError(w, http.StatusServiceUnavailable, err.Error())
	default:
		WriteError(w, http.StatusInternalServerError, err.Error())
	}
}

// Decode reads one JSON object of at most limit bytes from r's body into v,
// refusing unknown fields. Its errors are *Error: 413 for a body over the
// limit, 400 naming the field for anything else.
func Decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if limit <= 0 {
		limit = DefaultBodyLimit
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return DecodeError(err, limit)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return DecodeError(err, limit)
		}
		return BadRequest("body: must hold one JSON object and nothing after it")
	}
	return nil
}

// DecodeError turns a json decoding error into an *Error naming the field.
func DecodeError(err error, limit int64) *Error {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		ute *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return &Error{Code: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("body: larger than the limit of %d bytes", limit)}
	case errors.Is(err, io.EOF):
		return BadRequest("body: empty; a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return BadRequest("body: malformed JSON (unexpected end)")
	case errors.As(err, &se):
		return BadRequest("body: malformed JSON at byte %d: %s", se.Offset, se.Error())
	case errors.As(err, &ute):
		if ute.Field == "" {
			return BadRequest("body: must be a JSON object, got %s", ute.Value)
		}
		return BadRequest("%s: must be %s, got %s", ute.Field, jsonKind(ute.Type.String()), ute.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return BadRequest("%s: unknown field", strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`))
	}
	return BadRequest("body: %s", err.Error())
}

func jsonKind(goType string) string {
	switch {
	case goType == "string" || goType == "*string":
		return "a string"
	case strings.Contains(goType, "int"):
		// "a number" would read "must be a number, got number 1.5".
		return "a whole number"
	case strings.Contains(goType, "float"):
		return "a number"
	case strings.Contains(goType, "bool"):
		return "a boolean"
	case strings.HasPrefix(goType, "[]") || strings.HasPrefix(goType, "*[]"):
		return "an array"
	case strings.HasPrefix(goType, "map") || strings.Contains(goType, "RawMessage"):
		return "a JSON object"
	}
	return "of type " + goType
}

// Pagination defaults.
const (
	LimitDefault = 100
	LimitMax     = 1000
)

// Page is the shape of every list answer.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// ParsePage reads the limit (default 100, at most 1000) and cursor query
// parameters.
func ParsePage(r *http.Request) (limit int, cursor string, err error) {
	q := r.URL.Query()
	limit = LimitDefault
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > LimitMax {
			return 0, "", BadRequest("limit: must be a whole number from 1 to %d, got %q", LimitMax, s)
		}
		limit = n
	}
	return limit, q.Get("cursor"), nil
}
