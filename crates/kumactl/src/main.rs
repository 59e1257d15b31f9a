//! kumactl: the command line client of the control plane's REST API.
//!
//! Behaves like Kuma's kumactl: same commands, flags, config file and output.

use std::process::ExitCode;

mod cli;
mod client;
mod commands;
mod config;
mod output;
mod table;

fn main() -> ExitCode {
    let cli = match cli::parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => {
            let failed = e.use_stderr();
            // Help and usage errors print themselves; kumactl exits 1 on any error.
            let _ = e.print();
            return if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    let mut io = commands::Io {
        stdin: &mut stdin,
        stdout: &mut stdout,
        stderr: &mut stderr,
    };
    match commands::run(cli, &mut io) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
