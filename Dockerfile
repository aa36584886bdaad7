# syntax=docker/dockerfile:1
# TalkConnect as a container image: the one binary (the web app embedded), a non-root user,
# its state in the /data volume.
#
#   docker build -t talkconnect .
#   docker run -d -p 8080:8080 -p 40000-40099:40000-40099/udp \
#     -e TALKCONNECT__SFU__UDP_PORT_MAX=40099 -e TALKCONNECT__SFU__ANNOUNCED_IP=203.0.113.7 \
#     -v talkconnect-data:/data talkconnect
#
# With HTTPS, one server: deploy/compose.yml. Replicas on PostgreSQL + Redis behind nginx:
# deploy/compose.cluster.yml. Settings are TALKCONNECT__SECTION__KEY variables (every key is in
# config/default.toml) or a file: mount it and add `--config /etc/talkconnect/config.toml`.
# What of this file is checked, and how, without a Docker engine: scripts/check-deploy
# (README, "Deploy").

ARG RUST_VERSION=1.95
ARG NODE_VERSION=20.19

# The web app (web/, Vite) into web/dist, which build.rs embeds in the binary.
FROM node:${NODE_VERSION}-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# The release binary. Same Debian release as the runtime stage: it links the same glibc,
# libpq and libsqlite3.
FROM rust:${RUST_VERSION}-slim-bookworm AS build
# Debian's current versions of the release (pinning them would break at each security update).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq-dev libsqlite3-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src/ src/
COPY migrations/ migrations/
COPY config/ config/
COPY docs/openapi.json docs/
# Cargo.toml names the test kit (a workspace member) and the examples' files.
COPY testkit/ testkit/
COPY bench/ bench/
COPY examples/ examples/
COPY --from=web /src/web/dist/ web/dist/
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin talkconnect \
 && install -m 0755 target/release/talkconnect /usr/local/bin/talkconnect

# What runs: Debian slim, the two libraries the binary links, CA certificates (PostgreSQL
# over TLS), and bash, which the health check uses (no curl in the image).
FROM debian:bookworm-slim AS runtime
# scripts/check-deploy installs the same list into its stand-in for this stage.
ARG RUNTIME_PACKAGES="ca-certificates libpq5 libsqlite3-0"
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ${RUNTIME_PACKAGES} \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin talkconnect \
 && install -d -m 0700 -o talkconnect -g talkconnect /data
COPY --from=build /usr/local/bin/talkconnect /usr/local/bin/talkconnect
COPY deploy/healthcheck /usr/local/bin/talkconnect-healthcheck
# The SQLite database, the generated JWT secret and a self-signed certificate live in /data.
ENV TALKCONNECT__SERVER__DATA_DIR=/data \
    TALKCONNECT__DATABASE__URL=sqlite:///data/talkconnect.db \
    TALKCONNECT__SERVER__PORT=8080
WORKDIR /data
VOLUME ["/data"]
# Numeric, so orchestrators can tell it is not root without reading /etc/passwd.
USER 10001:10001
# 8080: HTTP (or, with TLS on, the plain port that redirects: server.tls.redirect_port);
# 8443: HTTPS when TLS is on (deploy/compose.yml), and TURN over TLS beside it. 3478: the
# TURN relay (turn.enabled), UDP and TCP; 49160-49999: its relayed addresses
# (turn.relay_port_min/max). 40000-40999: the SFU's media, one port per participant, UDP and
# ICE-TCP (sfu.udp_port_min/max; publish fewer by narrowing them, or carry everyone on
# sfu.single_udp_port).
EXPOSE 8080/tcp 8443/tcp 3478/udp 3478/tcp 40000-40999/udp 40000-40999/tcp 49160-49999/udp
# GET /healthz on loopback with bash's /dev/tcp (deploy/healthcheck).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/talkconnect-healthcheck"]
# SIGTERM: the server closes its sockets and finishes the requests in flight (10 s at most).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/talkconnect"]
CMD ["serve"]
