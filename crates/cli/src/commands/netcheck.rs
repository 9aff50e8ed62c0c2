//! `coder netcheck`: what this machine's network looks like to the tunnels: which relay regions
//! answer and how fast, whether UDP works, the public addresses seen, and whether the NAT maps
//! ports per destination (which rules out direct connections). Printed as JSON.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use tunnel::{EndpointOptions, SecretKey, Watcher};

use crate::commands::GlobalArgs;
use crate::output;
use crate::session;

/// How long to wait for the first complete report.
const REPORT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize)]
struct Region {
    region_id: i64,
    region_code: String,
    region_name: String,
    url: String,
    reachable: bool,
    latency_ms: Option<f64>,
    probe: Option<String>,
    preferred: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    regions: Vec<Region>,
    udp_v4: bool,
    udp_v6: bool,
    global_v4: Option<String>,
    global_v6: Option<String>,
    /// `true` is a hard NAT: direct connections cannot form, the relay carries the traffic.
    mapping_varies_by_dest_ip: Option<bool>,
    warnings: Vec<String>,
}

pub(crate) async fn run(global: &GlobalArgs) -> Result<ExitCode> {
    let client = session::client(global)?;
    let info = client
        .agent_connection_info()
        .await
        .map_err(session::explain)
        .context("reading the deployment's relay map")?;
    let endpoint = tunnel::bind(EndpointOptions {
        secret_key: SecretKey::generate(),
        relays: tunnel::relay_map::relays(&info.derp_map),
        alpns: Vec::new(),
        direct: true,
        bind: None,
        lookup: None,
    })
    .await
    .context("starting the tunnel endpoint")?;
    let mut reports = endpoint.net_report();
    let report = tokio::time::timeout(REPORT_TIMEOUT, async {
        loop {
            if let Some(report) = reports.get() {
                return report;
            }
            if reports.updated().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    })
    .await
    .ok();
    endpoint.close().await;
    let mut warnings = Vec::new();
    let regions = info
        .derp_map
        .regions
        .values()
        .flat_map(|region| region.nodes.iter().map(move |node| (region, node)))
        .filter(|(_, node)| !node.stun_only)
        .map(|(region, node)| {
            let url = node.relay_url();
            let measured = report.as_ref().and_then(|report| {
                report
                    .relay_latency
                    .iter()
                    .find(|(_, relay, _)| relay.as_str().trim_end_matches('/') == url)
                    .map(|(probe, _, latency)| (format!("{probe:?}").to_lowercase(), latency))
            });
            let preferred = report
                .as_ref()
                .and_then(|report| report.preferred_relay.as_ref())
                .is_some_and(|relay| relay.as_str().trim_end_matches('/') == url);
            Region {
                region_id: region.region_id,
                region_code: region.region_code.clone(),
                region_name: region.region_name.clone(),
                url,
                reachable: measured.is_some(),
                latency_ms: measured
                    .as_ref()
                    .map(|(_, latency)| latency.as_secs_f64() * 1000.0),
                probe: measured.map(|(probe, _)| probe),
                preferred,
            }
        })
        .collect::<Vec<_>>();
    if report.is_none() {
        warnings.push(format!(
            "no network report within {}s: no relay answered",
            REPORT_TIMEOUT.as_secs()
        ));
    }
    for region in regions.iter().filter(|region| !region.reachable) {
        warnings.push(format!(
            "relay region {} ({}) is unreachable at {}",
            region.region_id, region.region_name, region.url
        ));
    }
    let report = match report {
        Some(report) => {
            if report.mapping_varies_by_dest_ipv4 == Some(true) {
                warnings.push(
                    "this network's NAT maps ports per destination (hard NAT): direct \
                     connections will not form; tunnels use a relay"
                        .to_owned(),
                );
            }
            if !report.udp_v4 && !report.udp_v6 {
                warnings.push(
                    "UDP is blocked or no relay offers address discovery: tunnels use a relay"
                        .to_owned(),
                );
            }
            Report {
                regions,
                udp_v4: report.udp_v4,
                udp_v6: report.udp_v6,
                global_v4: report.global_v4.map(|a| a.to_string()),
                global_v6: report.global_v6.map(|a| a.to_string()),
                mapping_varies_by_dest_ip: report.mapping_varies_by_dest_ipv4,
                warnings,
            }
        }
        None => Report {
            regions,
            udp_v4: false,
            udp_v6: false,
            global_v4: None,
            global_v6: None,
            mapping_varies_by_dest_ip: None,
            warnings,
        },
    };
    output::json(&report)?;
    Ok(ExitCode::SUCCESS)
}
