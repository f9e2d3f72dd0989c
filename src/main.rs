fn main() -> std::process::ExitCode {
    resellgate::cli::main()
}
