package producer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/streams"
)

// Publishing the same id twice stores the event once: the id is the
// publisher's idempotency key.
func ExampleProducer_Publish() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "hookstream-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	srv, err := streams.StartServer(streams.ServerConfig{StoreDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	nc, err := srv.Connect("example")
	if err != nil {
		log.Fatal(err)
	}
	defer streams.Drain(ctx, nc)
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	if err := streams.Ensure(ctx, js, streams.Config{}); err != nil {
		log.Fatal(err)
	}

	p, err := producer.New(producer.Config{JS: js})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Stop(ctx)
	ev := producer.Event{ID: "shop:order-42", Type: "order.created", Source: "shop", Data: json.RawMessage(`{"total": 99}`)}
	for range 2 {
		res, err := p.Publish(ctx, ev)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("id=%s seq=%d duplicate=%v\n", res.ID, res.Seq, res.Duplicate)
	}
	// Output:
	// id=shop:order-42 seq=1 duplicate=false
	// id=shop:order-42 seq=1 duplicate=true
}
