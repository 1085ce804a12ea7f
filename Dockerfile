# syntax=docker/dockerfile:1
#
# One image with the three terway-hybrid binaries in /usr/local/bin:
#   terway-hybrid-agent       the node agent (DaemonSet)
#   terway-hybrid-controller  the cluster controller (Deployment)
#   terway-hybrid             the CLI (preflight, ...), handy in `kubectl exec`
#
#   docker build -t REGISTRY/terway-hybrid:0.1.0 .
#
# The builder runs the same `cargo build --release --locked` a developer runs
# and copies exactly its outputs from target/release. The binaries link only
# glibc, libm and libgcc_s (rustls, no OpenSSL), which distroless/cc
# provides; Debian 12 on both sides keeps the glibc versions equal.
#
# The image's default user is distroless' nonroot (65532). The controller runs
# as that user; the agent's DaemonSet overrides it with uid 0 and no
# capabilities to read root-only CNI files and BIRD's socket (see
# deploy/base/agent-daemonset.yaml).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the crate registry and target/ between builds; the
# binaries are copied out of the cached target/ within the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p terway-hybrid-agent -p terway-hybrid-controller \
    && mkdir -p /out \
    && cp target/release/terway-hybrid-agent \
          target/release/terway-hybrid-controller \
          target/release/terway-hybrid \
          /out/

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="terway-hybrid" \
      org.opencontainers.image.description="Safe Terway rollout for hybrid (ACK One registered) clusters: node agent, controller and CLI" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/terway-hybrid-agent /usr/local/bin/terway-hybrid-agent
COPY --from=build /out/terway-hybrid-controller /usr/local/bin/terway-hybrid-controller
COPY --from=build /out/terway-hybrid /usr/local/bin/terway-hybrid
USER 65532:65532
# The manifests name the binary to run; without one, print the CLI's help.
CMD ["/usr/local/bin/terway-hybrid", "--help"]
