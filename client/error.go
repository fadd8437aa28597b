package client

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is a non-2xx answer of the API.
type Error struct {
	// Status is the HTTP status code: 400 bad input, 401 a missing or wrong
	// token, 404 an unknown id, 405 a wrong method, 409 a conflict, 413 a
	// body over the limit, 503 NATS unavailable or a stream full.
	Status int
	// Message is the server's {"error"} text, naming the field for a 400; or
	// the start of the body, or the status text, when it sent none.
	Message string
	// RetryAfter is the answer's Retry-After (503, 429), 0 when none.
	RetryAfter time.Duration
	// Body is the answer as sent (a batch's 503 holds each event's result).
	Body []byte
}

func (e *Error) Error() string { return strconv.Itoa(e.Status) + ": " + e.Message }

// StatusOf is the status of the *Error in err's chain, 0 when there is none
// (the request never got an answer).
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// IsNotFound reports whether err is a 404.
func IsNotFound(err error) bool { return StatusOf(err) == http.StatusNotFound }

func newError(resp *http.Response, data []byte) *Error {
	e := &Error{Status: resp.StatusCode, Message: errorText(resp.StatusCode, data), Body: data}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			e.RetryAfter = time.Duration(n) * time.Second
		} else if t, err := http.ParseTime(s); err == nil {
			e.RetryAfter = max(time.Until(t), 0)
		}
	}
	return e
}

// errorText is the {"error"} of an answer, or what the answer says instead.
func errorText(status int, data []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return e.Error
	}
	text := strings.Join(strings.Fields(string(data)), " ")
	if len(text) > 200 {
		text = text[:200] + "…"
	}
	if text == "" {
		text = strings.ToLower(http.StatusText(status))
	}
	return text
}
