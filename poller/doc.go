// Package poller owns hookstream's sources: the systems whose change feeds it
// polls. It keeps their configuration (and the CRUD routes under
// /v1/sources), polls each feed on its interval, turns every change into an
// event with id "<source id>:<change id>" (the id the source's own producer
// uses, so a change published both ways is stored once), advances a source's
// cursor only once JetStream acknowledged the page (an invalid change is
// skipped and recorded on the source, never allowed to stall its feed),
// detects gaps (a source
// that has sent nothing within its expected window is polled at once),
// derives each source's connection status and announces its changes
// (connection.status_changed). It also watches endpoint health and sends the
// one targeted webhook.catchup an endpoint is owed after a gap.
//
// A source may also receive its system's own webhooks (its inbound
// settings): PublicRoutes serves POST /ingest/{source}, which verifies a
// push with package inbound on its raw body before anything parses it,
// publishes it as event "<source>:<provider id>" with the body as data (202
// only once JetStream acknowledged it), and records the push on the
// source's state, at most once per a quarter of its expected window per
// process, so that gap detection counts pushes as the source's events. A
// source has a changes_url, inbound settings, or both; one without a
// changes_url is never polled.
//
// A Source is any change feed; HTTPSource is the built-in adapter for the
// HTTP feed format in DESIGN.md, and Go code can Register its own.
//
// Everything a poller knows lives in JetStream (source configuration in
// streams.BucketSources, cursors and status in streams.BucketSourceState,
// short poll leases in streams.BucketLeases), so any number of pollers can
// run side by side and a crash loses nothing: a page published but whose
// cursor was not saved is polled again and its events are answered as
// duplicates.
package poller
