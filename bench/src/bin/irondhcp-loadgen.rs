//! `irondhcp-loadgen`: the bundled DHCPv4 load generator. See
//! `irondhcp_bench::loadgen` and `--help`.

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser as _};
use irondhcp_bench::loadgen::{self, cli::Args};

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(msg) = args.validate() {
        Args::command()
            .error(clap::error::ErrorKind::ValueValidation, msg)
            .exit();
    }
    match loadgen::run(&args) {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.table());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("irondhcp-loadgen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
