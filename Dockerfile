# syntax=docker/dockerfile:1
# ctguard: multi-stage build of both binaries and the site, then a slim runtime image for the server.
#
# The build stage runs the same commands as the README (scripts/install-deps.sh, then
# `cargo leptos build --release --split`), so CI exercises these steps on every run even though no
# Docker engine runs on the CI machines.
#
# The helper is NOT run in this image: it needs root (or CAP_NET_ADMIN) in the host's network
# namespace. Run it either
#   - as a host service (recommended): install /usr/local/bin/ctguard-helper from the `helper`
#     stage (`docker build --target helper --output type=local,dest=out .`) and run it under systemd
#     as root with the socket /run/ctguard/helper.sock (mode 0660, group ctguard); or
#   - as a second container: `docker run --network host --cap-add NET_ADMIN --cap-drop ALL
#     -v /run/ctguard:/run/ctguard <this image> ctguard-helper --group ctguard --allow-user ctguard`
#     (add `-v /run/netns:/run/netns` and `--netns NAME` to watch a named namespace).
# Either way, mount /run/ctguard into the server container and give both the same ctguard gid.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
RUN bash scripts/install-deps.sh
RUN PATH=/src/end2end/node_modules/.bin:$PATH cargo leptos build --release --split \
    && cargo build --release --locked -p ctguard-helper \
    && strip target/release/ctguard-server target/release/ctguard-helper

FROM scratch AS helper
COPY --from=build /src/target/release/ctguard-helper /ctguard-helper

FROM debian:bookworm-slim AS runtime
# The helper runs nft (blocks) and conntrack (deleting entries) with argument vectors.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nftables conntrack \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system ctguard \
    && useradd --system --gid ctguard --no-create-home --shell /usr/sbin/nologin ctguard \
    && install -d -o ctguard -g ctguard -m 0700 /var/lib/ctguard \
    && install -d -o root -g root -m 0700 /var/lib/ctguard-helper
COPY --from=build /src/target/release/ctguard-server /usr/local/bin/ctguard-server
COPY --from=build /src/target/release/ctguard-helper /usr/local/bin/ctguard-helper
COPY --from=build /src/target/site /usr/share/ctguard/site
ENV LEPTOS_SITE_ROOT=/usr/share/ctguard/site \
    LEPTOS_SITE_ADDR=0.0.0.0:3000 \
    CTGUARD_HELPER_SOCKET=/run/ctguard/helper.sock \
    CTGUARD_STATE_DIR=/var/lib/ctguard \
    RUST_LOG=info
# The day's history of the table survives container restarts when this is a volume; so do the
# helper's blocks and journal in its own root-only directory (never the server's), when the
# helper runs from this image as root (`ctguard-helper`, default --state-dir).
VOLUME /var/lib/ctguard /var/lib/ctguard-helper
USER ctguard
EXPOSE 3000
CMD ["ctguard-server"]
