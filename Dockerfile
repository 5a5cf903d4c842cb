# A small static image: tuskfish built for musl, on distroless "static" as a non-root user.
# Not built by CI here (this workplace has no container engine); `make test` installs and runs the
# chart with the binary instead of the image.
FROM rust:1-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl \
 && apt-get update && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin tuskfish \
 && strip target/x86_64-unknown-linux-musl/release/tuskfish

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/tuskfish /tuskfish
USER 65532:65532
ENTRYPOINT ["/tuskfish"]
CMD ["run"]
