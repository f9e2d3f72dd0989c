//! The command line (to be written).
pub fn main() -> std::process::ExitCode { std::process::ExitCode::SUCCESS }
