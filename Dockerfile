# greenlight's image: built in one stage, run from a slim Debian with what
# the sandbox needs. Running stages takes privileges inside a container:
# see the README's "Deploy" section (in short: `docker run --privileged`,
# or the capabilities and devices listed there; Fly Machines are VMs where
# the container's root has them).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin greenlight

FROM debian:bookworm-slim
# bubblewrap: the step sandbox; passt (pasta) and iproute2: the isolated step
# network; e2fsprogs: capped workspaces (mkfs.ext4 on a loop image); git:
# clones; redis-server: the embedded Redis of a single machine; tini: signals.
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap passt iproute2 e2fsprogs git redis-server ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/greenlight /usr/local/bin/greenlight
ENV GREENLIGHT_DATA_DIR=/data \
    GREENLIGHT_ADDR=0.0.0.0:3000
VOLUME /data
EXPOSE 3000
ENTRYPOINT ["tini", "--", "greenlight"]
CMD ["serve"]
