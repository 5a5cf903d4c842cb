//! The kubectl plugin: `kubectl tuskfish status` runs this binary, which is the `tuskfish` CLI.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    tuskfish::cli::main("kubectl-tuskfish").await
}
