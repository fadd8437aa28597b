// Package dlq owns hookstream's dead-letter records once they are written:
// listing them with filters, showing, deleting and replaying one, and bulk
// replay jobs that replay every record matching a filter, resumably and by one
// process at a time. The dispatcher writes the records (an immutable message
// in the DLQ stream plus a mutable state in the dead-letter state bucket) and
// marks a replayed record `delivered`; this package never writes a record.
//
// # Routes
//
//	GET    /v1/dlq                  list (filters endpoint, reason, type, since, until, state; limit, cursor)
//	GET    /v1/dlq/{id}             one record
//	DELETE /v1/dlq/{id}             204; removes the stream message and the state
//	POST   /v1/dlq/{id}/replay      202 with the record, state "replayed"; 409 when it is not dead
//	                                or its endpoint is deleted
//	POST   /v1/dlq/replay           body {"endpoint"?, "reason"?, "type"?, "since"?, "until"?, "state"?};
//	                                202 {"job": "<id>", "matched": N}
//	GET    /v1/dlq/replays/{job}    {"job", "state": "running|done|failed", "matched", "replayed",
//	                                "skipped", "failed", "filter": {…}, "created_at", "updated_at", "error"?}
//
// Filters: endpoint is an endpoint id; reason is expired, endpoint_gone or
// endpoint_deleted; type is an exact event type or a prefix such as
// "order.*"; since and until are RFC 3339 times compared with dead_at (since
// inclusive, until exclusive); state is dead, replayed or delivered. A bad
// value answers 400 naming the parameter.
//
// A list is ordered by DLQ stream sequence, oldest first. cursor is the
// decimal DLQ stream sequence to continue from; next_cursor is "" when there
// is nothing more now. A client that follows new records (`hookstream dlq
// tail`) polls with cursor = the last seq it saw + 1. One request reads a
// bounded number of stream messages: a sparse filter may answer fewer items
// than limit (even none) with a next_cursor to continue from.
//
// # Record
//
// A record, as the API shows it and the README documents it:
//
//	{
//	  "id": "dl_…",                   record id, from the failed delivery's Nats-Msg-Id
//	  "seq": 42,                      DLQ stream sequence
//	  "state": "dead",                dead | replayed | delivered
//	  "reason": "expired",            expired | endpoint_gone | endpoint_deleted
//	  "endpoint_id": "ep_…",
//	  "url": "https://…",             the endpoint URL the attempts went to
//	  "event": {"id", "type", "source", "time", "data"},
//	  "generation": 0,                delivery generation that failed (0 from fan-out, n for the n-th replay)
//	  "attempt_count": 31,            every attempt made
//	  "attempts": [                   the first 5 and the last 20
//	    {"attempt": 1, "time": "…", "duration": "1.2s", "status_code": 500, "error": "", "response_body": "…"}
//	  ],
//	  "first_attempt": "…",           absent when no attempt was made
//	  "last_attempt": "…",            absent when no attempt was made
//	  "dead_at": "…",
//	  "replay_generation": 0          delivery generation the last replay published (0: never replayed)
//	}
//
// Times are RFC 3339 in UTC; durations are Go duration strings; "data" is the
// event's JSON object exactly as published; status_code is 0 when no response
// came. The message published on dlq.<endpoint_id> (which any NATS client may
// subscribe to) is the msgpack streams.DeadLetter this JSON is made from;
// state and replay_generation live in the state bucket.
//
// # Replay
//
// A replay publishes generation+1 of the delivery (same event id, so the same
// webhook-id; a fresh retry window) with Nats-Msg-Id
// <event_id>.<endpoint_id>.<generation>, waits for JetStream's ack, and only
// then marks the record replayed by compare-and-set: two replays of one
// record make one delivery, and a crash between the two steps leaves a record
// whose next replay is answered by JetStream as a duplicate.
//
// A bulk job counts the matching dead records when it is created (matched)
// and replays those dead-lettered up to that moment. Runners claim jobs by
// compare-and-set with a lease and save progress after each batch; a job
// interrupted by a crash is resumed from the saved cursor by any process, and
// matched records that were no longer dead when the job reached them
// (replayed meanwhile, deleted, aged out) count as skipped.
package dlq
