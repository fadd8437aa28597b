package client

import (
	"context"
	"net/http"
	"time"
)

// Endpoint statuses.
const (
	StatusHealthy  = "healthy"
	StatusFailing  = "failing"
	StatusDisabled = "disabled"
)

// Endpoint is an endpoint as the API shows it. URL has its credentials
// hidden; Secret is set only in the answers of CreateEndpoint and
// RotateSecret.
type Endpoint struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	EventTypes  []string `json:"event_types"`
	Description string   `json:"description"`
	RateLimit   float64  `json:"rate_limit"`
	Concurrency int      `json:"concurrency"`
	// Ordered endpoints receive the events of one ordering key one at a
	// time, in order, through Partitions lanes.
	Ordered      bool      `json:"ordered"`
	Partitions   int       `json:"partitions,omitempty"`
	Status       string    `json:"status"`
	StatusReason string    `json:"status_reason"`
	StatusSince  time.Time `json:"status_since"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	Secret       string    `json:"secret,omitempty"`
}

// EndpointCreate is a new endpoint: POST /v1/endpoints. URL and EventTypes
// are required (a type, a prefix "order.*" or "*"); an empty Secret is
// generated; RateLimit 0 is no limit, Concurrency 0 the server's default.
type EndpointCreate struct {
	URL         string   `json:"url"`
	EventTypes  []string `json:"event_types"`
	Secret      string   `json:"secret,omitempty"`
	Description string   `json:"description,omitempty"`
	RateLimit   float64  `json:"rate_limit,omitempty"`
	Concurrency int      `json:"concurrency,omitempty"`
	// Ordered is set at creation only; Partitions (default 16, at most
	// 256) only with it.
	Ordered    bool `json:"ordered,omitempty"`
	Partitions int  `json:"partitions,omitempty"`
}

// EndpointUpdate changes the fields that are set: PATCH /v1/endpoints/{id}.
// The secret changes only by RotateSecret.
type EndpointUpdate struct {
	URL         *string   `json:"url,omitempty"`
	EventTypes  *[]string `json:"event_types,omitempty"`
	Description *string   `json:"description,omitempty"`
	RateLimit   *float64  `json:"rate_limit,omitempty"`
	Concurrency *int      `json:"concurrency,omitempty"`
	// Partitions changes an ordered endpoint's lanes; refused (409) while
	// it holds undelivered deliveries.
	Partitions *int `json:"partitions,omitempty"`
}

// Ptr returns a pointer to v, for EndpointUpdate's and SourceUpdate's
// fields: client.Ptr("https://…").
func Ptr[T any](v T) *T { return &v }

// CreateEndpoint creates an endpoint; the answer holds its secret, shown
// only here.
func (c *Client) CreateEndpoint(ctx context.Context, in EndpointCreate) (*Endpoint, error) {
	return c.endpoint(ctx, request{method: http.MethodPost, path: "/v1/endpoints", body: in})
}

// ListEndpoints lists one page of endpoints, ordered by id.
func (c *Client) ListEndpoints(ctx context.Context, opts ListOptions) (*Page[Endpoint], error) {
	out := new(Page[Endpoint])
	if err := c.get(ctx, "/v1/endpoints", opts.query(), out); err != nil {
		return nil, err
	}
	return out, nil
}

// Endpoint shows one endpoint (never its secret).
func (c *Client) Endpoint(ctx context.Context, id string) (*Endpoint, error) {
	return c.endpoint(ctx, request{method: http.MethodGet, path: "/v1/endpoints/" + esc(id)})
}

// UpdateEndpoint changes the fields set in in.
func (c *Client) UpdateEndpoint(ctx context.Context, id string, in EndpointUpdate) (*Endpoint, error) {
	return c.endpoint(ctx, request{method: http.MethodPatch, path: "/v1/endpoints/" + esc(id), body: in})
}

// DeleteEndpoint deletes an endpoint; its pending deliveries are
// dead-lettered (endpoint_deleted).
func (c *Client) DeleteEndpoint(ctx context.Context, id string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: "/v1/endpoints/" + esc(id)}, nil)
}

// EnableEndpoint enables an endpoint: its held deliveries are sent.
func (c *Client) EnableEndpoint(ctx context.Context, id string) (*Endpoint, error) {
	return c.endpoint(ctx, request{method: http.MethodPost, path: "/v1/endpoints/" + esc(id) + "/enable"})
}

// DisableEndpoint disables an endpoint: its deliveries are held.
func (c *Client) DisableEndpoint(ctx context.Context, id string) (*Endpoint, error) {
	return c.endpoint(ctx, request{method: http.MethodPost, path: "/v1/endpoints/" + esc(id) + "/disable"})
}

// RotateSecret gives an endpoint a new secret, in the answer; the old one
// keeps signing beside it for the server's --secret-overlap.
func (c *Client) RotateSecret(ctx context.Context, id string) (*Endpoint, error) {
	return c.endpoint(ctx, request{method: http.MethodPost, path: "/v1/endpoints/" + esc(id) + "/rotate-secret"})
}

func (c *Client) endpoint(ctx context.Context, r request) (*Endpoint, error) {
	out := new(Endpoint)
	if err := c.do(ctx, r, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Attempt is one delivery attempt in an endpoint's attempt log.
type Attempt struct {
	EventID      string    `json:"event_id"`
	EventType    string    `json:"event_type"`
	EndpointID   string    `json:"endpoint_id"`
	Generation   int       `json:"generation"`
	Attempt      int       `json:"attempt"`
	Time         time.Time `json:"time"`
	Duration     Duration  `json:"duration"`
	StatusCode   int       `json:"status_code,omitempty"`
	Error        string    `json:"error,omitempty"`
	ResponseBody string    `json:"response_body,omitempty"`
	NextAttempt  time.Time `json:"next_attempt,omitzero"`
}

// Attempts lists one page of an endpoint's attempt log, newest first.
func (c *Client) Attempts(ctx context.Context, endpointID string, opts ListOptions) (*Page[Attempt], error) {
	out := new(Page[Attempt])
	if err := c.get(ctx, "/v1/endpoints/"+esc(endpointID)+"/attempts", opts.query(), out); err != nil {
		return nil, err
	}
	return out, nil
}
