// Package bench measures hookstream against its floors: what JetStream and
// a plain Go HTTP client and server do on the same machine with the same
// message, and what the whole pipeline does end to end (deliveries/s, the
// publish-to-receipt latency at a fixed rate, the process's peak RSS). It is
// the machinery of `hookstream bench` and of the big benchmarks; it knows
// nothing of how the pipeline under test was started: it takes functions
// that publish and receivers that count what arrives.
package bench
