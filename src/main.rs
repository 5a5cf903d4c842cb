//! The `tuskfish` binary: the operator, the CLI and the dev tools (see `tuskfish --help`).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    tuskfish::cli::main("tuskfish").await
}
