//! Counting what the operator sends to the API server.

mod request_counter;

pub use request_counter::{RequestCounter, RequestCounts};
