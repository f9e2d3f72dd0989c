//! The `resellgate` binary. Everything is in the library (`resellgate::cli`); this file
//! adds the one call into the C library that the library's `#![forbid(unsafe_code)]`
//! keeps out: glibc's `malloc_trim`, run by the gateway's memory-trim background service.

fn main() -> std::process::ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    resellgate::app::background::set_memory_trim(trim);
    resellgate::cli::main()
}

/// Returns the free pages of every glibc arena to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: `malloc_trim` takes no pointers and is thread-safe (it locks each arena);
    // it only releases memory that no allocation uses.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}
