package client

import (
	"context"
	"net/http"
)

// Healthz reports whether the process is up: GET /healthz.
func (c *Client) Healthz(ctx context.Context) error {
	return c.do(ctx, request{method: http.MethodGet, path: "/healthz", noAuth: true}, nil)
}

// Readyz reports whether the process can serve (NATS connected, streams
// ensured, its role's consumers running): GET /readyz; a 503 *Error says
// what is not.
func (c *Client) Readyz(ctx context.Context) error {
	return c.do(ctx, request{method: http.MethodGet, path: "/readyz", noAuth: true}, nil)
}

// OpenAPI fetches the API's OpenAPI 3.1 document: GET /openapi.json.
func (c *Client) OpenAPI(ctx context.Context) ([]byte, error) {
	return c.send(ctx, request{method: http.MethodGet, path: "/openapi.json", noAuth: true})
}

// Ingest sends one provider webhook to POST /ingest/{source}, as the
// provider would: the raw body with the provider's headers (its signature
// among them), and no bearer token. A 401 *Error is a missing or wrong
// signature, 404 an unknown source, 413 a body over the limit, 400 a body
// that is not a JSON object.
func (c *Client) Ingest(ctx context.Context, source string, header http.Header, body []byte) (*PublishResult, error) {
	if body == nil {
		body = []byte{}
	}
	out := new(PublishResult)
	err := c.do(ctx, request{method: http.MethodPost, path: "/ingest/" + esc(source), raw: body, header: header, noAuth: true}, out)
	if err != nil {
		return nil, err
	}
	return out, nil
}
