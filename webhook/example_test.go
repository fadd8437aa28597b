package webhook_test

import (
	"fmt"
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
