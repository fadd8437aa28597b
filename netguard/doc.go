// Package netguard keeps hookstream's outbound HTTP (webhook deliveries and
// source polls) from being turned against the network it runs in (SSRF). It
// owns the list of address classes an endpoint may not point at, the check of
// a URL when an endpoint or source is created, and the dialer and HTTP client
// that enforce the same rule on every connection, after DNS, so that a host
// name resolving (or later rebinding) to an internal address is refused too.
package netguard
