// Package cluster holds the fault tests of hookstream on a NATS JetStream
// cluster: the scale-out topology of compose.yaml (3 clustered NATS nodes
// with R3 streams, 2 dispatchers, 1 poller) run in-process on loopback, with
// the node that leads DELIVERIES killed in the middle of a run, and a check
// that compose.yaml, deploy/nats.conf and the Dockerfile describe that same
// topology. It has no code of its own: everything is in its tests.
package cluster
