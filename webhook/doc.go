// Package webhook owns the Standard Webhooks format of hookstream's outgoing
// requests: the endpoint secrets ("whsec_" + base64 key), the signature of a
// request (the webhook-id, webhook-timestamp and webhook-signature headers)
// and its verification on the receiving side. The dispatcher signs with it and
// `hookstream sink` verifies with it, so the two can never disagree about the
// format; anything a receiver's own Standard Webhooks library accepts, this
// package produces, and the reverse.
package webhook
