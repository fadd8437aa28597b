package client

import (
	"context"
	"net/http"
	"time"
)

// Source statuses.
const (
	SourceHealthy      = "healthy"
	SourceUnreachable  = "unreachable"
	SourceAuthRequired = "auth_required"
)

// Inbound formats.
const (
	InboundStandard   = "standard"
	InboundDiscourse  = "discourse"
	InboundGitHub     = "github"
	InboundHMACSHA256 = "hmac-sha256"
)

// Inbound are a source's settings for the webhooks its system pushes to
// POST /ingest/{source}.
type Inbound struct {
	// Format is standard, discourse, github or hmac-sha256.
	Format string `json:"format"`
	// Secret verifies the pushes' signatures (write-only: never shown).
	Secret string `json:"secret,omitempty"`
	// Header holds the signature, for hmac-sha256.
	Header string `json:"header,omitempty"`
	// IDHeader holds the provider's delivery id, for hmac-sha256.
	IDHeader string `json:"id_header,omitempty"`
	// IDFrom are JSON pointers into the body whose values, joined with ':',
	// make the event id instead of the format's id header.
	IDFrom []string `json:"id_from,omitempty"`
	// Type is the event type of the pushes, for hmac-sha256.
	Type string `json:"type,omitempty"`
	// SecretCreatedAt is when the current secret was set, and
	// PreviousSecretsExpireAt when the secret a rotation replaced stops
	// verifying; both only in answers.
	SecretCreatedAt         *time.Time `json:"secret_created_at,omitempty"`
	PreviousSecretsExpireAt *time.Time `json:"previous_secrets_expire_at,omitempty"`
}

// Source is a source as the API shows it: its settings (header names only,
// never values; never the inbound secret) and its status.
type Source struct {
	ID             string   `json:"id"`
	ChangesURL     string   `json:"changes_url"`
	Interval       Duration `json:"interval"`
	ExpectedWindow Duration `json:"expected_window"`
	Headers        []string `json:"headers"`
	// Inbound is nil for a source that receives no pushes; its Secret is
	// set only in the answer that made it.
	Inbound *Inbound `json:"inbound,omitempty"`
	// IngestURL is the path providers push to, /ingest/<id> ("" without
	// inbound): Client.IngestURL gives the whole URL.
	IngestURL string `json:"ingest_url"`
	// Status is healthy, unreachable or auth_required.
	Status           string          `json:"status"`
	StatusSince      *time.Time      `json:"status_since"`
	LastPoll         *time.Time      `json:"last_poll"`
	LastPush         *time.Time      `json:"last_push"`
	LastPushInstance string          `json:"last_push_instance"`
	LastSuccess      *time.Time      `json:"last_success"`
	LastError        string          `json:"last_error"`
	LastErrorAt      *time.Time      `json:"last_error_at"`
	NextPoll         *time.Time      `json:"next_poll"`
	Cursor           string          `json:"cursor"`
	Failures         int             `json:"failures"`
	SkippedChanges   uint64          `json:"skipped_changes"`
	LastSkipped      []SkippedChange `json:"last_skipped"`
	CreatedAt        time.Time       `json:"created_at"`
	UpdatedAt        time.Time       `json:"updated_at"`
}

// SkippedChange is an invalid change a feed sent, skipped and never
// published.
type SkippedChange struct {
	Index  int       `json:"index"`
	Cursor string    `json:"cursor"`
	ID     string    `json:"id"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// SourceCreate is a new source: POST /v1/sources. ID is required, and a
// ChangesURL, an Inbound or both; zero durations are the server's defaults.
type SourceCreate struct {
	ID             string            `json:"id"`
	ChangesURL     string            `json:"changes_url,omitempty"`
	Interval       Duration          `json:"interval,omitzero"`
	ExpectedWindow Duration          `json:"expected_window,omitzero"`
	Headers        map[string]string `json:"headers,omitempty"`
	Inbound        *Inbound          `json:"inbound,omitempty"`
}

// SourceUpdate changes the fields that are set: PATCH /v1/sources/{id}.
// Headers replaces every header.
type SourceUpdate struct {
	ChangesURL     *string            `json:"changes_url,omitempty"`
	Interval       *Duration          `json:"interval,omitempty"`
	ExpectedWindow *Duration          `json:"expected_window,omitempty"`
	Headers        *map[string]string `json:"headers,omitempty"`
	Inbound        *Inbound           `json:"inbound,omitempty"`
}

// CreateSource connects a source.
func (c *Client) CreateSource(ctx context.Context, in SourceCreate) (*Source, error) {
	return c.source(ctx, request{method: http.MethodPost, path: "/v1/sources", body: in})
}

// ListSources lists one page of sources, ordered by id.
func (c *Client) ListSources(ctx context.Context, opts ListOptions) (*Page[Source], error) {
	out := new(Page[Source])
	if err := c.get(ctx, "/v1/sources", opts.query(), out); err != nil {
		return nil, err
	}
	return out, nil
}

// Source shows one source and its status.
func (c *Client) Source(ctx context.Context, id string) (*Source, error) {
	return c.source(ctx, request{method: http.MethodGet, path: "/v1/sources/" + esc(id)})
}

// UpdateSource changes the fields set in in.
func (c *Client) UpdateSource(ctx context.Context, id string, in SourceUpdate) (*Source, error) {
	return c.source(ctx, request{method: http.MethodPatch, path: "/v1/sources/" + esc(id), body: in})
}

// DeleteSource deletes a source.
func (c *Client) DeleteSource(ctx context.Context, id string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: "/v1/sources/" + esc(id)}, nil)
}

// RotateSourceSecret makes a new inbound secret current, shown once in
// the answer: secret when given, else generated. The secrets it replaces
// keep verifying pushes for the server's --secret-overlap, time to change the
// provider's settings.
func (c *Client) RotateSourceSecret(ctx context.Context, id, secret string) (*Source, error) {
	var body any
	if secret != "" {
		body = map[string]string{"secret": secret}
	}
	return c.source(ctx, request{method: http.MethodPost, path: "/v1/sources/" + esc(id) + "/rotate-secret", body: body})
}

func (c *Client) source(ctx context.Context, r request) (*Source, error) {
	out := new(Source)
	if err := c.do(ctx, r, out); err != nil {
		return nil, err
	}
	return out, nil
}
