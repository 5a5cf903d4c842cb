// The loopback Git server of the Flux benchmark (built by hack/build-control-plane.sh --flux).
module tuskfish.dev/hack/githttp

go 1.24
