//! The one integration-test binary (pingora is linked once). Each module pins one
//! area of behaviour through real HTTP against the built-in sandbox.

mod harness;

mod bad_input;
mod cli;
mod gateway;
mod logs;
mod orders;
mod upstream_failures;
