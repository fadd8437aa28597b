// Package endpoints owns the endpoint registry: the configuration of every
// webhook endpoint in the KV bucket streams.BucketEndpoints (its URL, type
// filters, signing secrets and limits), the validation of that configuration,
// the operator's side of endpoint health (enable and disable, by
// compare-and-set on streams.BucketHealth), secret rotation, the reading of an
// endpoint's attempt log, and the /v1/endpoints HTTP routes over all of it.
//
// It publishes no event: creating, updating or deleting an endpoint sends
// nothing, and the endpoint.status_changed that enabling or disabling calls
// for is published by the dispatcher from the health record's outbox fields.
// Deleting an endpoint leaves a tombstone (Endpoint.Deleted) so that
// dispatchers can dead-letter its pending deliveries before they remove the
// key.
package endpoints
