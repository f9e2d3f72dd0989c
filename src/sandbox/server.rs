//! server (being written)
pub struct SandboxServer;
pub struct SandboxHandle;
pub fn spawn() {}
pub fn run_cli() {}
