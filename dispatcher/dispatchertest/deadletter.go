// Package dispatchertest holds measurements of the dispatcher that more than
// one package's benchmarks run (one node, and the 3-node R3 cluster).
package dispatchertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/dispatcher"
	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
)

// HeldDeadLetterRate stores n deliveries for a disabled endpoint, waits for
// their deadline (1 s), starts a dispatcher and times the records.
func HeldDeadLetterRate(tb testing.TB, js jetstream.JetStream, n int) float64 {
	ctx := context.Background()
	now := time.Now().UTC()
	h := streams.NewHealth("held", now)
	h.Transition(streams.StatusDisabled, "disabled by operator", now)
	hkv, _ := js.KeyValue(ctx, streams.BucketHealth)
	ekv, _ := js.KeyValue(ctx, streams.BucketEndpoints)
	if _, err := streams.Put(ctx, hkv, "held", h); err != nil {
		tb.Fatal(err)
	}
	ep := &streams.Endpoint{ID: "held", URL: "http://127.0.0.1:9/", EventTypes: []string{"a.*"}, CreatedAt: now, UpdatedAt: now}
	if _, err := streams.Put(ctx, ekv, "held", ep); err != nil {
		tb.Fatal(err)
	}
	var futs []jetstream.PubAckFuture
	for i := range n {
		dl := streams.Delivery{Event: streams.Event{ID: fmt.Sprintf("h%06d", i), Type: "a.b", Source: "bench", Time: now, Data: []byte(`{"n":1}`)}, EndpointID: "held"}
		data, err := streams.Marshal(&dl)
		if err != nil {
			tb.Fatal(err)
		}
		f, err := js.PublishAsync(streams.DeliverySubject("held"), data, jetstream.WithMsgID(dl.MsgID()))
		if err != nil {
			tb.Fatal(err)
		}
		futs = append(futs, f)
	}
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			tb.Fatal(err)
		}
	}
	last := time.Now()
	d, err := dispatcher.New(dispatcher.Config{
		JS: js, RetryMaxAge: time.Second, RetryInitial: 100 * time.Millisecond, RetryMaxInterval: time.Second,
		RetryMinDelay: 10 * time.Millisecond, DeliveryTimeout: time.Second, AckWait: 5 * time.Second, AllowPrivate: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	dlq, err := js.Stream(ctx, streams.StreamDLQ)
	if err != nil {
		tb.Fatal(err)
	}
	records := func() uint64 {
		info, err := dlq.Info(ctx, jetstream.WithSubjectFilter(streams.DLQSubject("held")))
		if err != nil {
			return 0
		}
		return info.State.Subjects[streams.DLQSubject("held")]
	}
	// Every deadline has come before the dispatcher starts.
	streamstest.WaitFor(tb, 10*time.Second, "the deadlines", func() bool { return time.Since(last) > 1100*time.Millisecond })
	start := time.Now()
	if err := d.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = d.Stop(sctx)
	}()
	streamstest.WaitFor(tb, 5*time.Minute, "every held delivery dead-lettered", func() bool { return records() >= uint64(n) })
	return float64(n) / time.Since(start).Seconds()
}
