//! The one integration-test binary (pingora is linked once). Each module pins one
//! area of behaviour through real HTTP against the built-in sandbox.

mod client;
mod harness;
mod pg;

mod admin;
mod ambiguity;
mod bad_input;
mod catalog;
mod cli;
mod console;
mod corpus;
mod fleet;
mod gateway;
mod hostile_upstream;
mod hot_path;
mod large_answers;
mod lifecycle;
mod login_bounds;
mod logs;
mod operator;
mod orders;
mod pingora_logs;
mod sandbox_server;
mod slow_clients;
mod store_contract;
mod store_growth;
mod tls;
mod upstream_failures;
mod webdriver;
mod wire;
