//! Schemathesis (PyPI; `scripts/install-deps.sh` puts it in `.venv-schemathesis`) fuzzes the
//! admin API from its own generated OpenAPI document, with a token, for a bounded number of
//! cases per operation, while a publisher is connected so the client list is not empty. It
//! must find no 5xx and no response that breaks the document (status, content type,
//! headers, body schema), and valid requests must not be refused.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use common::viewers::SyntheticPublisher;
use common::*;

/// Cases per operation: small for CI; `ONAIR_SCHEMATHESIS_EXAMPLES` for a longer run
/// (`ONAIR_SCHEMATHESIS_SEED` for other cases than CI's).
const EXAMPLES: &str = "25";
const SEED: &str = "19";

fn schemathesis() -> PathBuf {
    let path = std::env::var_os("ONAIR_SCHEMATHESIS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-schemathesis/bin/schemathesis"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "schemathesis is required for this test: run scripts/install-deps.sh (it creates .venv-schemathesis)"
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let bin = schemathesis();
    let server =
        ServerProc::start("[admin]\ntokens = [{ name = \"fuzz\", secret = \"fz-token\" }]\n");
    let publisher = SyntheticPublisher::start(&server.rtmp_url("live/fuzzed"), 60).await;
    let admin = server.admin.unwrap();
    let work = TempDir::new("onair-schemathesis");
    let examples = std::env::var("ONAIR_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| EXAMPLES.into());
    let seed = std::env::var("ONAIR_SCHEMATHESIS_SEED").unwrap_or_else(|_| SEED.into());
    let out = tokio::task::block_in_place(|| {
        Command::new(&bin)
            .current_dir(&work.path)
            .args(["run", &format!("http://{admin}/api/admin/openapi.json")])
            .args(["--header", "Authorization: Bearer fz-token"])
            // Every check but the one that expects a created ban to still exist later: bans
            // expire and kicked clients leave, as they should.
            .args([
                "--checks",
                "all",
                "--exclude-checks",
                "ensure_resource_availability",
            ])
            .args(["--max-examples", &examples, "--seed", &seed])
            .args([
                "--generation-database",
                "none",
                "--no-color",
                "--request-timeout",
                "10",
            ])
            .output()
            .expect("run schemathesis")
    });
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    publisher.stop().await;
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
    let summary = text
        .lines()
        .filter(|l| l.contains("generated") || l.contains("passed"))
        .collect::<Vec<_>>();
    println!("schemathesis: {}", summary.join(" | "));
}
