package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/hookstream/hookstream/client"
	"github.com/hookstream/hookstream/hookstreamtest"
)

// Publishing over HTTP, then following the event to its endpoint. The
// pipeline here is hookstreamtest's; against a real one, client.New takes
// its URL and client.WithToken its --api-token.
func ExampleClient_Publish() {
	h, err := hookstreamtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	ctx := context.Background()
	ep, err := h.SubscribeContext(ctx, "order.*")
	if err != nil {
		log.Fatal(err)
	}

	c, err := client.New(h.URL)
	if err != nil {
		log.Fatal(err)
	}
	ev := client.Event{ID: "po-1001", Type: "order.created", Source: "erp", Data: json.RawMessage(`{"total":42}`)}
	res, err := c.Publish(ctx, ev)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored", res.ID, "duplicate:", res.Duplicate)
	res, _ = c.Publish(ctx, ev) // the same id again: stored once
	fmt.Println("stored", res.ID, "duplicate:", res.Duplicate)

	// Wait (at most 10s) until GET /v1/events/po-1001 says delivered.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := c.Event(ctx, "po-1001")
		if err != nil {
			log.Fatal(err)
		}
		if len(st.Deliveries) == 1 && st.Deliveries[0].State == client.DeliveryDelivered {
			fmt.Println("delivered to the endpoint:", st.Deliveries[0].Endpoint == ep.ID)
			break
		}
		select {
		case <-ctx.Done():
			log.Fatal("not delivered within 10s")
		case <-tick.C:
		}
	}
	// Output:
	// stored po-1001 duplicate: false
	// stored po-1001 duplicate: true
	// delivered to the endpoint: true
}

// Errors carry the status and the server's message, naming the field.
func ExampleError() {
	h, err := hookstreamtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	c, _ := client.New(h.URL)
	_, err = c.Publish(context.Background(), client.Event{Type: "Order Created", Data: json.RawMessage(`{}`)})
	fmt.Println(client.StatusOf(err), err)
	// Output: 400 400: type: "Order Created" must be dot-separated lower-case words ([a-z0-9_]+(.[a-z0-9_]+)*)
}
