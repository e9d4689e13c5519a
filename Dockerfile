# syntax=docker/dockerfile:1
# The callbridge agent as a container image: built in a Rust image, run in
# Debian slim as an unprivileged user.
#
#   docker build -t callbridge-agent --build-arg CALLBRIDGE_GIT_SHA=$(git rev-parse --short HEAD) .
#   docker compose up -d      # compose.yaml: ports, volumes, environment
#
# The store (SQLite database and its journal spool) and the recordings are
# volumes; /livez is the health check; SIGTERM drains live calls.

ARG RUST_VERSION=1.89
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN} AS build
# aws-lc-sys and the bundled SQLite need only the image's C compiler.
WORKDIR /src
COPY . .
ARG CALLBRIDGE_GIT_SHA=
ENV CALLBRIDGE_GIT_SHA=${CALLBRIDGE_GIT_SHA}
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p callbridge-agent --bin agent \
 && install -m 0755 target/release/agent /usr/local/bin/callbridge-agent

FROM debian:${DEBIAN}-slim AS runtime
# ca-certificates: TLS to the model provider; curl: the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 callbridge \
 && useradd --system --uid 10001 --gid callbridge --home-dir /var/lib/callbridge \
      --shell /usr/sbin/nologin callbridge \
 && install -d -o callbridge -g callbridge -m 0750 \
      /var/lib/callbridge /var/lib/callbridge/store /var/lib/callbridge/recordings \
 && install -d -m 0755 /etc/callbridge
COPY --from=build /usr/local/bin/callbridge-agent /usr/local/bin/callbridge-agent
COPY deploy/docker/agent.toml /etc/callbridge/agent.toml
COPY agent.example.toml /usr/share/doc/callbridge/agent.example.toml

USER callbridge:callbridge
WORKDIR /var/lib/callbridge
VOLUME ["/var/lib/callbridge/store", "/var/lib/callbridge/recordings"]
# SIP, HTTP (API, /metrics, probes), RTP (rtp.port_min..port_max).
EXPOSE 5060/udp 8080/tcp 20000-20199/udp
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS -o /dev/null http://127.0.0.1:8080/livez || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/callbridge-agent"]
CMD ["run", "--config", "/etc/callbridge/agent.toml"]
