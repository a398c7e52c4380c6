//! `burnin-edge scan --edge-url URL`: one operation through a running
//! `burnin-edge serve` ([`burnin_service::client`]), printed as a local
//! scan prints it, with the same exit codes.

use burnin_core::OperationParams;
use burnin_service::client::{EdgeClient, Progress, ScanRequest};
use burnin_service::report::{json, table_with};

use crate::cli::scan::exit_code;
use crate::exit;

/// Runs `params` through the serve at `url`; prints the table or the JSON
/// document; returns the exit code.
pub(crate) fn run(url: &str, token: Option<String>, params: &OperationParams, as_json: bool) -> u8 {
    if let Err(e) = ScanRequest::new(params) {
        return usage(&e);
    }
    let rt = match crate::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        // reqwest's client must be built inside the runtime.
        let client = match EdgeClient::new(url, token) {
            Ok(c) => c,
            Err(e) => return usage(&e),
        };
        let shown = client.shown().to_owned();
        let mut on = |p: Progress| match p {
            Progress::Started { id, deadline } => eprintln!(
                "operation {id} started on the edge at {shown} (collecting until {deadline})"
            ),
            Progress::State(state) => eprintln!("operation {state}"),
            Progress::Replies(n) => eprintln!("collecting: {n} replies"),
        };
        match client.scan(params, &mut on).await {
            Ok((report, words)) => {
                if as_json {
                    println!("{}", json(&report, None));
                } else {
                    let mut words = words.into_iter();
                    print!(
                        "{}",
                        table_with(&report, |d| words
                            .next()
                            .flatten()
                            .unwrap_or_else(|| burnin_service::report::details(d)))
                    );
                }
                exit_code(&report)
            }
            Err(f) => {
                eprintln!("error: {}", f.message);
                if f.refused_input {
                    exit::USAGE
                } else {
                    exit::INTERNAL
                }
            }
        }
    })
}

fn usage(message: &str) -> u8 {
    eprintln!("error: {message}");
    eprintln!("\nFor more information, try 'burnin-edge scan --help'.");
    exit::USAGE
}
