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

# Helm v4 renders chart AppVersions; built from its Go module (as hack/build-control-plane.sh --helm).
FROM golang:1.26-bookworm AS helm
ARG HELM_VERSION=4.3.2
RUN CGO_ENABLED=0 GOBIN=/out go install -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=v${HELM_VERSION}" \
      helm.sh/helm/v4/cmd/helm@v${HELM_VERSION}

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/tuskfish /tuskfish
COPY --from=helm /out/helm /helm
USER 65532:65532
ENTRYPOINT ["/tuskfish"]
CMD ["run"]
