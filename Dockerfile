# hookstream: one static binary. compose.yaml runs its roles (api,
# dispatcher, poller, sink) from this image: the role is the command.
#
#   docker build -t hookstream --build-arg VERSION=$(git describe --tags --always) .
#   docker run --rm hookstream version

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a code change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
    -ldflags "-s -w -X main.version=${VERSION}" \
    -o /out/hookstream ./cmd/hookstream

# Static binary, no shell: distroless with CA certificates (for https
# endpoints and sources) and a non-root user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hookstream /usr/local/bin/hookstream
USER nonroot:nonroot
# 8080: the HTTP API, /healthz, /readyz, /metrics. 9000: `hookstream sink`.
EXPOSE 8080 9000
ENTRYPOINT ["/usr/local/bin/hookstream"]
CMD ["help"]
