# onair in a container: the `onair` binary (serve, push, demo) with the browser player built
# in. Three stages: the player (Node), the binary (Rust), and a small Debian runtime.
#
#   docker build -t onair:local .
#   docker run --rm -p 1935:1935 -p 8080:8080 onair:local            # the server
#   docker run --rm -p 1935:1935 -p 8080:8080 onair:local demo       # server + test pattern
#
# docker-compose.yml runs the server and a demo pusher as two services.

FROM node:20-bookworm-slim AS player
WORKDIR /src/player-web
COPY player-web/package.json player-web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY player-web/ ./
RUN npm run build

FROM rust:1-bookworm AS build
# The pusher's codecs (openh264, fdk-aac) are C/C++ built from source by their -sys crates.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nasm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin onair \
 && cp target/release/onair /usr/local/bin/onair

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libstdc++6 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/onair --create-home onair
COPY --from=build /usr/local/bin/onair /usr/local/bin/onair
COPY --from=player /src/player-web/dist /usr/share/onair/player
COPY docker/onair.toml /etc/onair/onair.toml
USER onair
WORKDIR /var/lib/onair
ENV RUST_LOG=info
EXPOSE 1935 8080
ENTRYPOINT ["onair"]
CMD ["serve", "--config", "/etc/onair/onair.toml"]
