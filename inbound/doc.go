// Package inbound owns the formats of the webhooks hookstream receives from
// providers (POST /ingest/{source}): how each one is signed and verified,
// where its delivery id and event type are found, and what a source's
// shared secret must be. It knows nothing of JetStream or HTTP routing; the
// poller, which owns sources, stores a Receiver's settings and publishes
// what Read returns.
//
// Every signature is checked on the raw bytes of the body, before anything
// parses it, and compared in constant time (hmac.Equal). The formats:
//
//   - standard: Standard Webhooks (webhook-id, webhook-timestamp,
//     webhook-signature), a whsec_ secret, a timestamp tolerance;
//   - discourse: X-Discourse-Event-Signature: sha256=<hex HMAC-SHA256 of
//     the body>, id X-Discourse-Event-Id, type discourse.<X-Discourse-Event>;
//   - github: X-Hub-Signature-256: sha256=<hex>, id X-GitHub-Delivery, type
//     github.<X-GitHub-Event>;
//   - hmac-sha256: a configured header holding the hex HMAC-SHA256 of the
//     body (optionally after "sha256="), id from a configured header.
//
// Discourse, GitHub and hmac-sha256 sign the body alone: their headers (the
// delivery id among them) and the time are not covered, so a captured push
// can be sent again under another id. id_from, which takes the id from the
// signed body, closes that gap where the body holds one.
package inbound
