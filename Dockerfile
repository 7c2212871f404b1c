# onair in a container: the `onair` binary (serve, push, demo) with the browser player built
# in. Stages: the player (Node), the binary (Rust), and a small Debian runtime; or, with
# `--target runtime-prebuilt`, the runtime around a binary and player built beforehand.
#
#   docker build -t onair:local .
#   docker run --rm -p 1935:1935 -p 8080:8080 onair:local            # the server
#   docker run --rm -p 1935:1935 -p 8080:8080 onair:local demo       # server + test pattern
#
# The base images are build arguments (NODE_IMAGE, RUST_IMAGE, RUNTIME_IMAGE): the official
# images by default; tests/docker.rs builds on a local debootstrapped Debian instead.
# The prebuilt runtime takes the build context's prebuilt/onair and prebuilt/player/:
#
#   docker build --target runtime-prebuilt --build-arg RUNTIME_IMAGE=local/debian:bookworm \
#       -t onair:local CONTEXT     # CONTEXT holds Dockerfile, docker/onair.toml, prebuilt/
#
# docker-compose.yml runs the server and a demo pusher as two services.
ARG NODE_IMAGE=node:20-bookworm-slim
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# The runtime without onair in it. First in the file: the classic builder builds every stage
# before the target, so the prebuilt target never builds the Node and Rust stages (BuildKit
# builds only the stages a target needs).
FROM ${RUNTIME_IMAGE} AS runtime-base
# What `onair` links beyond glibc (ldd: libstdc++; the pusher's libopus, libvpx for VP9,
# webrtc-audio-processing for echo cancellation, and ALSA for capture).
# apt only when the base lacks them (scripts/docker-base-image.sh's base has them).
RUN if ! dpkg -s libstdc++6 libopus0 libvpx7 libwebrtc-audio-processing1 libasound2 \
        ca-certificates >/dev/null 2>&1; then \
      apt-get update \
      && apt-get install -y --no-install-recommends libstdc++6 libopus0 libvpx7 \
        libwebrtc-audio-processing1 libasound2 ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && useradd --system --home-dir /var/lib/onair --create-home onair
COPY docker/onair.toml /etc/onair/onair.toml
WORKDIR /var/lib/onair
ENV RUST_LOG=info
EXPOSE 1935 8080
ENTRYPOINT ["onair"]
CMD ["serve", "--config", "/etc/onair/onair.toml"]

FROM runtime-base AS runtime-prebuilt
# prebuilt/ holds onair and player/. `prebuil[t]` is a pattern, and docker/onair.toml a file
# that is always there, because the classic builder builds this stage on its way to the
# last one even when prebuilt/ does not exist (the repository): then only the .toml lands.
COPY docker/onair.toml prebuil[t]/ /usr/share/onair/
ENV PATH=/usr/share/onair:$PATH
USER onair

FROM ${NODE_IMAGE} AS player
WORKDIR /src/player-web
COPY player-web/package.json player-web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY player-web/ ./
RUN npm run build

FROM ${RUST_IMAGE} AS build
# The pusher's codecs (openh264, fdk-aac) are C/C++ built from source by their -sys crates;
# its Opus, VP9 and echo-cancellation code link the system libopus, libvpx and
# webrtc-audio-processing through pkg-config (bindgen needs libclang).
RUN apt-get update \
 && apt-get install -y --no-install-recommends nasm libopus-dev libvpx-dev \
      libwebrtc-audio-processing-dev libasound2-dev libclang-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin onair \
 && cp target/release/onair /usr/local/bin/onair

FROM runtime-base AS runtime
COPY --from=build /usr/local/bin/onair /usr/local/bin/onair
COPY --from=player /src/player-web/dist /usr/share/onair/player
USER onair
