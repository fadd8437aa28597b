// Package client speaks hookstream's HTTP API: every /v1 route, the
// /ingest/{source} route and the health probes, with typed requests and
// answers. A non-2xx answer is an *Error carrying the status and the
// server's message. The hookstream CLI is built on it.
//
//	c, err := client.New("http://127.0.0.1:8080", client.WithToken(os.Getenv("HOOKSTREAM_TOKEN")))
//	res, err := c.Publish(ctx, client.Event{Type: "order.created", Data: json.RawMessage(`{"order_id":"o-1"}`)})
//
// Every call takes a context; lists answer one Page, and All walks every
// page of any of them.
package client
