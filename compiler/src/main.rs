use clap::Parser;

fn main() {
    let cli = guard_compiler::cli::Cli::parse();
    std::process::exit(guard_compiler::cli::run(cli));
}
