# syntax=docker/dockerfile:1
#
# baton-segment: the Twilio Segment connector for ConductorOne, as a small non-root image.
#
#   docker build -t baton-segment:0.1.0 .
#
# The build needs the network for the Rust toolchain's wasm32-wasip2 target and for crates
# (crates.io); the image runs as UID 65532 with nothing but the binary and glibc.
# See docs/service-mode.md for running it and deploy/kubernetes/ for a deployment.

# ---- Builder: the host binary, with the connector component (wasm32-wasip2) built and
# embedded by host/build.rs.
FROM rust:1.95-bookworm AS builder
WORKDIR /src

# The toolchain pinned by rust-toolchain.toml (1.95.0) and its wasm32-wasip2 target.
COPY rust-toolchain.toml ./
RUN rustup toolchain install \
    && rustup target add wasm32-wasip2 \
    && rustup target list --installed | grep -qx wasm32-wasip2

COPY . .
# Cache mounts keep the crate downloads and build outputs between builds (BuildKit); the
# binary is copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release -p baton-segment --locked \
    && install -D -m 0755 target/release/baton-segment /out/baton-segment

# ---- Runtime: distroless (glibc, CA certificates, no shell), non-root.
FROM gcr.io/distroless/cc-debian12:nonroot
# At /baton-segment, where the Go connector's image has it, so that manifests naming
# `command: ["/baton-segment"]` work unchanged.
COPY --from=builder /out/baton-segment /baton-segment
# Numeric, so that Kubernetes' runAsNonRoot can verify it (65532 is distroless' "nonroot").
USER 65532:65532
WORKDIR /tmp
ENV BATON_LOG_FORMAT=json
# Health checks (--health-check / BATON_HEALTH_CHECK=true with BATON_HEALTH_CHECK_BIND_ADDRESS=0.0.0.0).
EXPOSE 8081
# The image has no shell or curl; `/baton-segment health-check` probes /ready for an exec probe
# or `docker run --health-cmd` (with the health port on).
ENTRYPOINT ["/baton-segment"]
