# Multi-stage build: compile in the official Rust image, run on a slim Debian.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY migrations ./migrations
COPY config ./config
RUN cargo build --release --locked --bin dbs-archiver

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/dbs-archiver --create-home dbs
COPY --from=build /src/target/release/dbs-archiver /usr/local/bin/dbs-archiver
USER dbs
WORKDIR /var/lib/dbs-archiver
EXPOSE 8080
ENTRYPOINT ["dbs-archiver"]
CMD ["serve"]
