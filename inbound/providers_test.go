package inbound_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/hookstream/hookstream/inbound"
	"github.com/hookstream/hookstream/webhook"
)

// The signers below sign a push exactly as each provider documents it, so
// that the tests check hookstream against the providers, not against itself.

// hexHMAC is the lower-case hex HMAC-SHA256 of body under secret, what
// Discourse (OpenSSL::HMAC.hexdigest("sha256", secret, body)) and GitHub
// (the hex digest of the payload under the webhook secret) compute.
func hexHMAC(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// signDiscourse sets the headers Discourse sends with a webhook: the event
// id, the event name and type, the instance, and
// X-Discourse-Event-Signature: sha256=<hex HMAC-SHA256 of the raw body>.
func signDiscourse(h http.Header, secret string, body []byte, id, event string) {
	h.Set("X-Discourse-Event-Id", id)
	h.Set("X-Discourse-Event", event)
	h.Set("X-Discourse-Event-Type", "post")
	h.Set("X-Discourse-Instance", "https://forum.example.com")
	h.Set("X-Discourse-Event-Signature", "sha256="+hexHMAC(secret, body))
}

// signGitHub sets the headers GitHub sends: X-GitHub-Delivery (a GUID),
// X-GitHub-Event and X-Hub-Signature-256: sha256=<hex HMAC-SHA256>.
func signGitHub(h http.Header, secret string, body []byte, delivery, event string) {
	h.Set("X-GitHub-Delivery", delivery)
	h.Set("X-GitHub-Event", event)
	h.Set("X-GitHub-Hook-ID", "292430182")
	h.Set("X-Hub-Signature-256", "sha256="+hexHMAC(secret, body))
}

// signStandard sets the Standard Webhooks headers with the reference
// scheme: webhook-signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>"
// under the whsec_ secret's decoded key.
func signStandard(h http.Header, secret string, body []byte, id string, at time.Time) {
	key, err := webhook.ParseSecret(secret)
	if err != nil {
		panic(err)
	}
	h.Set(webhook.HeaderID, id)
	h.Set(webhook.HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(webhook.HeaderSignature, webhook.NewSigner(key).Sign(id, at, body))
}

// signGitea is a provider of the hmac-sha256 kind: X-Gitea-Signature holds
// the bare hex HMAC-SHA256 of the body, X-Gitea-Delivery the id.
func signGitea(h http.Header, secret string, body []byte, delivery string) {
	h.Set("X-Gitea-Delivery", delivery)
	h.Set("X-Gitea-Event", "push")
	h.Set("X-Gitea-Signature", hexHMAC(secret, body))
}

// giteaReceiver is the hmac-sha256 settings for signGitea.
func giteaReceiver(secrets ...string) inbound.Receiver {
	return inbound.Receiver{Format: inbound.HMACSHA256, Secrets: secrets, Header: "X-Gitea-Signature", IDHeader: "X-Gitea-Delivery"}
}

func timeUnix(secs int64) time.Time { return time.Unix(secs, 0) }
