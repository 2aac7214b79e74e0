//! `vdbctl`, vdb's command-line tool.
//!
//! Today it runs the in-process benchmark (`vdbctl bench`); the collection
//! commands arrive with the server.

mod bench;
mod json;
mod vecio;

use clap::{Parser, Subcommand};

/// vdb: a persistent vector database with explainable IVF search.
#[derive(Debug, Parser)]
#[command(name = "vdbctl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an IVF_Flat index from vector files and measure recall@k, QPS
    /// and latency over an nprobe sweep (in-process).
    Bench(bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
