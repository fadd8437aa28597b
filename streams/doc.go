// Package streams owns everything hookstream keeps in NATS JetStream: the
// names and definitions of its streams and key-value buckets (created or
// updated idempotently by Ensure), the wire types stored in them with their
// versioned msgpack codec, and the embedded NATS server that `hookstream
// serve` runs. Every other package depends downward on this one; none of them
// defines a stream, a bucket or a stored type of its own.
package streams
