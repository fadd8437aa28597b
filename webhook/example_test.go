package webhook_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/hookstream/hookstream/webhook"
)

// Signing with the secret of the Standard Webhooks example, and verifying on
// the receiving side a minute later.
func Example() {
	key, err := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		panic(err)
	}
	signer := webhook.NewSigner(key) // once per endpoint
	sent := time.Unix(1614265330, 0)
	body := []byte(`{"test": 2432232314}`)

	sig := signer.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", sent, body)
	fmt.Println(webhook.HeaderSignature+":", sig)

	received := sent.Add(time.Minute)
	err = webhook.Verify("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", sig, body, received, webhook.DefaultTolerance, key)
	fmt.Println("verified:", err == nil)

	// Replayed an hour later: refused on the timestamp alone.
	err = webhook.Verify("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", sig, body, sent.Add(time.Hour), webhook.DefaultTolerance, key)
	fmt.Println(err)

	// Output:
	// webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
	// verified: true
	// bad webhook timestamp: webhook-timestamp 1614265330 is 1h0m0s from now, more than the tolerance of 5m0s
}

// A receiver that verifies each webhook and handles each webhook-id once:
// the second delivery of evt_1 (a retry, a replay) is answered 200 without
// running the handler again. webhook.NewKVStore shares the ids between a
// receiver's replicas on NATS JetStream.
func ExampleIdempotent() {
	key, err := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		panic(err)
	}
	handle := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("handling", r.Header.Get(webhook.HeaderID))
		w.WriteHeader(http.StatusNoContent)
	})
	once := webhook.Idempotent(webhook.NewMemoryStore(webhook.RememberDefault), handle)
	receiver := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		// Verify first: a forged request must not claim an id.
		if err := webhook.VerifyRequest(r.Header, body, time.Now(), webhook.DefaultTolerance, key); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		once.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(receiver)
	defer srv.Close()

	signer := webhook.NewSigner(key)
	for range 2 {
		body := []byte(`{"id":"evt_1","type":"order.created","source":"erp","timestamp":"2025-01-01T00:00:00Z","data":{}}`)
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
		now := time.Now()
		req.Header.Set(webhook.HeaderID, "evt_1")
		req.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(webhook.HeaderSignature, signer.Sign("evt_1", now, body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Println("answered", resp.StatusCode)
	}
	// Output:
	// handling evt_1
	// answered 204
	// answered 200
}
