// Package hookstreamtest runs a whole hookstream pipeline in-process for
// your own Go tests: an embedded NATS JetStream server, the producer, the
// endpoint registry, the dispatcher, the poller, the dead-letter service
// and the HTTP API on a loopback port, with retries scaled down to
// milliseconds, and a Receiver that verifies and records the webhooks it
// gets. New stops it all when the test ends.
//
//	func TestOrderWebhook(t *testing.T) {
//		h := hookstreamtest.New(t)
//		h.Subscribe(t, "order.*")
//		h.Publish(t, producer.Event{ID: "po-1", Type: "order.created", Data: json.RawMessage(`{}`)})
//		got := h.Receiver.Wait(t, 1)
//		// got[0].Type == "order.created", got[0].Verified == nil
//	}
//
// Start and Close do the same outside a test (an Example, a TestMain).
package hookstreamtest
