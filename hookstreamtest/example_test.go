package hookstreamtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/hookstreamtest"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/streams"
)

// A whole pipeline in-process: subscribe the Receiver, publish with the Go
// producer, and look at what the endpoint got. In a test,
// hookstreamtest.New(t) does the same and stops it with the test.
func Example() {
	h, err := hookstreamtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	ctx := context.Background()
	if _, err := h.SubscribeContext(ctx, "order.*"); err != nil {
		log.Fatal(err)
	}
	if _, err := h.Producer.Publish(ctx, producer.Event{ID: "po-1001", Type: "order.created", Data: json.RawMessage(`{"total":42}`)}); err != nil {
		log.Fatal(err)
	}
	err = h.Receiver.WaitTimeout(10*time.Second, func(got []hookstreamtest.Request) bool { return len(got) == 1 })
	if err != nil {
		log.Fatal(err)
	}
	r := h.Receiver.Requests()[0]
	fmt.Println(r.ID, r.Type, string(r.Data), "signature valid:", r.Verified == nil)
	// Output: po-1001 order.created {"total":42} signature valid: true
}

// Following the dead-letter queue as any NATS client can: an endpoint that
// answers 410 Gone is disabled and its delivery dead-lettered at once, and
// the record arrives on dlq.<endpoint>.
func Example_deadLetters() {
	h, err := hookstreamtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	nc, err := nats.Connect(h.NATSURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	cons, err := js.OrderedConsumer(ctx, streams.StreamDLQ, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"dlq.>"}})
	if err != nil {
		log.Fatal(err)
	}

	h.Receiver.Respond(func(hookstreamtest.Request) int { return http.StatusGone })
	if _, err := h.SubscribeContext(ctx, "order.*"); err != nil {
		log.Fatal(err)
	}
	if _, err := h.Producer.Publish(ctx, producer.Event{ID: "po-7", Type: "order.cancelled", Data: json.RawMessage(`{}`)}); err != nil {
		log.Fatal(err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		log.Fatal(err)
	}
	var rec streams.DeadLetter
	if err := streams.Unmarshal(m.Data(), &rec); err != nil {
		log.Fatal(err)
	}
	fmt.Println(rec.Event.ID, rec.Reason, rec.AttemptCount, "attempt")
	// Output: po-7 endpoint_gone 1 attempt
}
