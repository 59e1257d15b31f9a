//! `echo-service NAME PORT`: answers every HTTP request with NAME. The demo's
//! stand-in for an application behind a data plane proxy.

use kuma_e2e::service::TestService;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(name), port) = (args.next(), args.next()) else {
        eprintln!("usage: echo-service NAME [PORT]");
        return std::process::ExitCode::FAILURE;
    };
    let port: u16 = match port.as_deref().map(str::parse).transpose() {
        Ok(p) => p.unwrap_or(0),
        Err(e) => {
            eprintln!("invalid port: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let service = match TestService::start_on(&name, port).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("could not listen on 127.0.0.1:{port}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("{} listening on {}", service.name, service.address);
    let _ = tokio::signal::ctrl_c().await;
    std::process::ExitCode::SUCCESS
}
