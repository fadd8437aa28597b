package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// apiClient calls the /v1 API in-process: it builds a request, serves it
// into a recorder and decodes the JSON answer, as a remote client would.
type apiClient struct {
	h     http.Handler
	token string
}

// apiError is an answer of the API that is not 2xx, with its message.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("api: %d: %s", e.Status, e.Message) }

// isNotFound reports whether err is the API's 404.
func isNotFound(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// get decodes the answer of GET path?query into out.
func (c *apiClient) get(ctx context.Context, path string, query url.Values, out any) error {
	return c.call(ctx, http.MethodGet, path, query, nil, out)
}

// post sends in as the JSON body of POST path and decodes the answer into
// out (nil: ignore it).
func (c *apiClient) post(ctx context.Context, path string, in, out any) error {
	return c.call(ctx, http.MethodPost, path, nil, in, out)
}

func (c *apiClient) call(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader = http.NoBody
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("api: encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	target := path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	rec := &recorder{header: http.Header{}}
	c.h.ServeHTTP(rec, req)
	code := rec.status()
	if code < 200 || code > 299 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(rec.body.Bytes(), &e) != nil || e.Error == "" {
			e.Error = http.StatusText(code)
		}
		return &apiError{Status: code, Message: e.Error}
	}
	if out == nil || code == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("api: the answer of %s %s does not decode: %w", method, path, err)
	}
	return nil
}

// recorder is the http.ResponseWriter an in-process call writes into.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(p)
}

func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

// userMessage is what a page shows for a failed call: the API's own
// message, which names what is wrong, with a hint for the cases an
// operator can act on.
func userMessage(err error) string {
	var ae *apiError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable:
		return "hookstream cannot reach NATS right now (" + ae.Message + "). Try again in a moment."
	case errors.As(err, &ae) && ae.Status == http.StatusUnauthorized:
		return "The API refused the dashboard's token (" + ae.Message + ")."
	case errors.As(err, &ae):
		return sentence(ae.Message)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "The request was cancelled before the API answered."
	default:
		return "The API gave an answer this page cannot read: " + err.Error()
	}
}

// sentence makes an API message (lower case, no full stop, as Go errors
// are) read as a sentence on a page.
func sentence(s string) string {
	if s == "" {
		return s
	}
	if s[0] >= 'a' && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	if strings.ContainsAny(s[len(s)-1:], ".!?") {
		return s
	}
	return s + "."
}
