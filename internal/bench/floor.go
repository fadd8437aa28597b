package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/webhook"
)

// Measured is a count of things done and how long they took.
type Measured struct {
	Count   int64
	Elapsed time.Duration
}

// PerSecond is Count over Elapsed.
func (m Measured) PerSecond() float64 {
	if m.Elapsed <= 0 {
		return 0
	}
	return float64(m.Count) / m.Elapsed.Seconds()
}

// JetStreamFloorWindow is how many publishes the JetStream floor keeps in
// flight: what an async publisher does, as the fan-out's publishes are.
const JetStreamFloorWindow = 4096

// JetStreamFloor measures what JetStream alone does with n messages of
// msg's size on the store nc's server uses: a temporary file-backed stream,
// messages published asynchronously (window in flight, each with a
// Nats-Msg-Id, as EVENTS's publishes are) while a pull consumer consumes and
// acks each. It returns the time from the first publish to the last ack; the
// stream is deleted afterwards.
func JetStreamFloor(ctx context.Context, nc *nats.Conn, msg []byte, n int, replicas int) (Measured, error) {
	var pubErrs atomic.Int64
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(JetStreamFloorWindow),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { pubErrs.Add(1) }))
	if err != nil {
		return Measured{}, err
	}
	tok := strings.ToLower(streams.NewID(""))[:10]
	name, subject := "BENCH_FLOOR_"+strings.ToUpper(tok), "bench_floor."+tok
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: name, Subjects: []string{subject}, Storage: jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy, Replicas: max(replicas, 1), Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return Measured{}, fmt.Errorf("create the floor's stream: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = js.DeleteStream(dctx, name)
	}()
	c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 10000})
	if err != nil {
		return Measured{}, fmt.Errorf("create the floor's consumer: %w", err)
	}
	var acked atomic.Int64
	done := make(chan struct{})
	start := time.Now()
	cc, err := c.Consume(func(m jetstream.Msg) {
		_ = m.Ack()
		if acked.Add(1) == int64(n) {
			close(done)
		}
	}, jetstream.PullMaxMessages(1000))
	if err != nil {
		return Measured{}, err
	}
	defer cc.Stop()
	for i := range n {
		if _, err := js.PublishAsync(subject, msg, jetstream.WithMsgID(tok+"-"+strconv.Itoa(i))); err != nil {
			return Measured{}, fmt.Errorf("publish: %w", err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return Measured{}, ctx.Err()
	}
	if e := pubErrs.Load(); e > 0 {
		return Measured{}, fmt.Errorf("%d of %d floor publishes failed", e, n)
	}
	if err := wait(ctx, done); err != nil {
		return Measured{Count: acked.Load(), Elapsed: time.Since(start)}, fmt.Errorf("%d of %d floor messages acked: %w", acked.Load(), n, err)
	}
	return Measured{Count: int64(n), Elapsed: time.Since(start)}, nil
}

// NewTransport is the HTTP transport of the floor and of the ingest
// clients: keep-alive, with as many idle connections per host as requests
// in flight (Go's default of 2 would close and reopen the rest).
func NewTransport(concurrency int) *http.Transport {
	return &http.Transport{
		MaxIdleConns:        concurrency * 2,
		MaxIdleConnsPerHost: concurrency,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
}

// HTTPFloor measures a plain Go HTTP client POSTing n copies of a signed
// webhook body to url with concurrency requests in flight, signed and
// headed as the dispatcher signs them (a fresh timestamp and signature per
// request), each answer read and closed.
func HTTPFloor(ctx context.Context, url string, body []byte, id string, key []byte, concurrency, n int) (Measured, error) {
	tr := NewTransport(concurrency)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	signer := webhook.NewSigner(key)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, concurrency)
	start := time.Now()
	for w := range concurrency {
		wg.Go(func() {
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				now := time.Now()
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
				if err != nil {
					errs[w] = err
					return
				}
				h := req.Header
				h.Set("Content-Type", "application/json")
				h.Set("User-Agent", "hookstream-bench")
				h.Set(webhook.HeaderID, id)
				h.Set(webhook.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
				h.Set(webhook.HeaderSignature, signer.Sign(id, now, body))
				resp, err := client.Do(req)
				if err != nil {
					errs[w] = err
					return
				}
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					errs[w] = fmt.Errorf("floor receiver answered %d", resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	m := Measured{Count: int64(n), Elapsed: time.Since(start)}
	if err := errors.Join(errs...); err != nil {
		return m, err
	}
	return m, ctx.Err()
}
