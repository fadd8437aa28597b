package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Ingest publishes through hookstream's HTTP API, as a service without the
// Go producer would: POST /v1/events, or POST /v1/events/batch.
type Ingest struct {
	// Base is the API's URL, http://host:port.
	Base string
	// Token is the API's bearer token, if it has one.
	Token  string
	client *http.Client
	tr     *http.Transport
}

// NewIngest returns an Ingest keeping concurrency connections alive.
func NewIngest(base, token string, concurrency int) *Ingest {
	tr := NewTransport(concurrency)
	return &Ingest{Base: strings.TrimRight(base, "/"), Token: token, tr: tr, client: &http.Client{Transport: tr, Timeout: time.Minute}}
}

// Close closes the idle connections.
func (g *Ingest) Close() { g.tr.CloseIdleConnections() }

// Single is a PublishFunc that POSTs each event to /v1/events.
func (g *Ingest) Single(ctx context.Context, evs []Event) error {
	for _, ev := range evs {
		if _, err := g.post(ctx, "/v1/events", IngestBody(ev)); err != nil {
			return err
		}
	}
	return nil
}

// Batch is a PublishFunc that POSTs evs to /v1/events/batch in one request
// and checks that every event was answered.
func (g *Ingest) Batch(ctx context.Context, evs []Event) error {
	answer, err := g.post(ctx, "/v1/events/batch", BatchBody(evs))
	if err != nil {
		return err
	}
	var out struct {
		Results []struct {
			ID    string `json:"id"`
			Error string `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal(answer, &out); err != nil {
		return fmt.Errorf("batch answer: %w", err)
	}
	if len(out.Results) != len(evs) {
		return fmt.Errorf("batch answer: %d results for %d events", len(out.Results), len(evs))
	}
	for i, r := range out.Results {
		if r.Error != "" || r.ID != evs[i].ID {
			return fmt.Errorf("batch answer: events[%d]: id %q, error %q", i, r.ID, r.Error)
		}
	}
	return nil
}

func (g *Ingest) post(ctx context.Context, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.Base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if g.Token != "" {
		req.Header.Set("Authorization", "Bearer "+g.Token)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusAccepted {
		return nil, fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, bytes.TrimSpace(answer))
	}
	return answer, nil
}
