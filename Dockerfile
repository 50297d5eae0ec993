# Strata's container image: `strata run` (the controllers) on a Kubernetes cluster, see deploy/.
#
#   docker build -t strata:0.1.0 .
#
# scripts/image builds the same image without a Docker daemon (with umoci), from a binary built
# on the host; a test (tests/it/image.rs) checks that its entrypoint, user and labels are the
# ones below. Change both together.

# The builder: Debian 12, as the runtime base, so the binary links the glibc it runs with.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin strata \
    && cp target/release/strata /strata

# The runtime: Debian 12 slim (the builder's glibc) with CA certificates; user nonroot 65532.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 nonroot \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /home/nonroot nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="strata" \
      org.opencontainers.image.description="Strata: a composition engine for cloud infrastructure on Kubernetes" \
      org.opencontainers.image.source="https://github.com/strata-dev/strata" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /strata /usr/local/bin/strata
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/strata"]
