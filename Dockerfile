# muster's container image: muster-scheduler (the entrypoint) and the muster
# CLI, static binaries on distroless, running as the distroless nonroot user.
#
#   docker build -t ghcr.io/muster-dev/muster-scheduler:dev .
#
# Plain Dockerfile syntax (no BuildKit-only features), so the legacy builder
# works too.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION} AS builder
WORKDIR /src

# Dependencies first, so that source edits do not re-download them.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags "-s -w" -o /out/muster-scheduler ./cmd/muster-scheduler && \
    go build -trimpath -ldflags "-s -w" -o /out/muster ./cmd/muster

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=builder /out/muster-scheduler /muster-scheduler
COPY --from=builder /out/muster /muster
USER 65532:65532
ENTRYPOINT ["/muster-scheduler"]
