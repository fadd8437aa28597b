package hookstreamtest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/hookstream/hookstream/client"
	"github.com/hookstream/hookstream/hookstreamtest"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/streams/streamstest"
)

func TestMain(m *testing.M) { streamstest.VerifyTestMain(m) }

// An event published with the Go producer reaches the subscribed endpoint,
// signed with its secret, and nothing reaches an endpoint whose filter
// does not match.
func TestNewDeliversSignedWebhooks(t *testing.T) {
	t.Parallel()
	h := hookstreamtest.New(t)
	orders := h.Subscribe(t, "order.*")
	invoices := h.Subscribe(t, "invoice.paid")
	h.Publish(t, producer.Event{ID: "po-1", Type: "order.created", Source: "erp", Data: json.RawMessage(`{"total":42}`)})
	got := h.Receiver.Wait(t, 1)
	r := got[0]
	if r.Endpoint != orders.ID || r.ID != "po-1" || r.Type != "order.created" || r.Source != "erp" || string(r.Data) != `{"total":42}` || r.Verified != nil || r.Attempt != 1 {
		t.Errorf("got %+v", r)
	}
	// Through the HTTP API too, to the other endpoint.
	if _, err := h.Client.Publish(context.Background(), client.Event{ID: "inv-1", Type: "invoice.paid", Data: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	got = h.Receiver.Wait(t, 2)
	if got[1].Endpoint != invoices.ID || got[1].ID != "inv-1" {
		t.Errorf("second webhook %+v", got[1])
	}
	for _, g := range h.Receiver.Requests() {
		if g.Endpoint == invoices.ID && g.ID == "po-1" {
			t.Errorf("invoice.paid endpoint got order.created")
		}
	}
}

// A failed attempt is retried within milliseconds with the same
// webhook-id; one that fails until RetryMaxAge is dead-lettered.
func TestRetriesAndDeadLetters(t *testing.T) {
	t.Parallel()
	h := hookstreamtest.New(t, hookstreamtest.WithRetryMaxAge(time.Second), hookstreamtest.WithToken("t0ken"))
	ep := h.Subscribe(t, "*")
	h.Receiver.Respond(func(r hookstreamtest.Request) int {
		if r.ID == "flaky" && r.Attempt == 1 {
			return http.StatusServiceUnavailable
		}
		if r.ID == "doomed" {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	h.Publish(t, producer.Event{ID: "flaky", Type: "order.created", Data: json.RawMessage(`{}`)})
	got := h.Receiver.Wait(t, 1)
	if got[0].ID != "flaky" || got[0].Attempt != 2 {
		t.Errorf("delivered %+v, want flaky on its second attempt", got[0])
	}
	h.Publish(t, producer.Event{ID: "doomed", Type: "order.created", Data: json.RawMessage(`{}`)})
	ctx, cancel := context.WithTimeout(context.Background(), hookstreamtest.WaitDefault)
	defer cancel()
	for {
		p, err := h.Client.ListDeadLetters(ctx, client.DLQFilter{Endpoint: ep.ID}, client.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Items) == 1 {
			if rec := p.Items[0]; rec.Event.ID != "doomed" || rec.Reason != client.ReasonExpired || rec.AttemptCount < 2 {
				t.Errorf("dead letter %+v", rec)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("no dead letter for doomed")
		case <-time.After(20 * time.Millisecond):
		}
	}
	// The API wants the token the pipeline was given.
	noToken, err := client.New(h.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := noToken.ListEndpoints(ctx, client.ListOptions{}); client.StatusOf(err) != http.StatusUnauthorized {
		t.Errorf("without the token: %v, want 401", err)
	}
}

// A request signed with another secret is recorded as not verified and
// answered 401.
func TestReceiverRefusesBadSignatures(t *testing.T) {
	t.Parallel()
	h := hookstreamtest.New(t)
	req, err := http.NewRequest(http.MethodPost, h.Receiver.URL()+"/hooks/1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("webhook-id", "forged")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status %d, want 401", resp.StatusCode)
	}
	if got := h.Receiver.Requests(); len(got) != 1 || got[0].Verified == nil {
		t.Errorf("recorded %+v", got)
	}
}
