//! `vdbctl`, vdb's command-line tool: the collection commands (a gRPC
//! client of `vdbd`) and the benchmark.

mod bench;
mod client;
mod connection;
mod demo;
mod explain;
mod explain_page;
mod human;
mod local;
mod tune;
mod vecio;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// vdb: a persistent vector database with explainable IVF search.
#[derive(Debug, Parser)]
#[command(
    name = "vdbctl",
    version,
    about,
    after_help = "The collection commands talk to a running vdbd (--server or VDB_SERVER).\n\n\
Examples:\n  \
vdbctl create-collection images --dim 64 --nlist 16\n  \
vdbctl import images data/digits/base.fvecs\n  \
vdbctl search images --file data/digits/query.fvecs --row 0 --k 5\n  \
vdbctl explain images --file data/digits/query.fvecs --row 0 --nprobe 4\n  \
vdbctl describe images --json\n\n\
Exit codes: 0 success; 1 local error (bad file or flag); 2 invalid request;\n\
3 not found; 4 already exists; 5 server unreachable or overloaded (retry);\n\
6 other server error; 7 missing, invalid or read-only API key."
)]
struct Cli {
    #[command(flatten)]
    client: client::ClientArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Reverse image search in one command: start a server in this
    /// process, load the bundled digit images, show queries and their
    /// nearest images as terminal pictures, and recall across nprobe.
    Demo(demo::DemoArgs),
    /// Build an IVF_Flat index from vector files and measure recall@k, QPS
    /// and latency over an nprobe sweep (in-process).
    Bench(Box<bench::BenchArgs>),
    #[command(flatten)]
    Client(client::ClientCommand),
}

fn main() -> std::process::ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let result = match &cli.command {
        Command::Bench(args) => {
            let mut args = (**args).clone();
            args.json = cli.client.json;
            // The bench goes over gRPC only when --server is on its command
            // line, never because VDB_SERVER happens to be set.
            let sub = matches.subcommand_matches("bench");
            let explicit = [Some(&matches), sub]
                .into_iter()
                .flatten()
                .any(|m| m.value_source("server") == Some(ValueSource::CommandLine));
            if explicit {
                args.server = Some(cli.client.server.clone());
                args.api_key = cli.client.api_key.clone();
                args.tls_ca = cli.client.tls_ca.clone();
            }
            bench::run(&args)
        }
        Command::Demo(args) => demo::run(args),
        Command::Client(cmd) => client::run(&cli.client, cmd),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let code = e
                .chain()
                .find_map(|c| c.downcast_ref::<connection::ServerError>())
                .map_or(1, connection::ServerError::exit_code);
            std::process::ExitCode::from(code)
        }
    }
}
