//! `coder server` as a process: listeners, configuration precedence, bad values, metrics.

use std::time::Duration;

use nix::sys::signal::Signal;
use testkit::TestDb;

use crate::{coder, url};

fn yaml(text: &str) -> serde_json::Value {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).unwrap();
    serde_json::to_value(value).unwrap()
}

#[tokio::test]
async fn serves_and_stops_cleanly_on_sigint() {
    let db = TestDb::new().await;
    let coder = coder();
    let server = coder.server(&[
        "--postgres-url",
        &db.url,
        "--http-address",
        "127.0.0.1:0",
        "--prometheus-enable",
        "--prometheus-address",
        "127.0.0.1:0",
    ]);
    let lines: Vec<&str> = server
        .transcript
        .lines()
        .filter(|line| line.starts_with("Started") || line.starts_with("View"))
        .collect();
    assert_eq!(lines.len(), 3, "{}", server.transcript);
    assert_eq!(
        lines[0],
        format!("Started HTTP listener at {}", url(&server.url))
    );
    assert_eq!(lines[2], format!("View the Web UI: {}", url(&server.url)));
    let metrics_url = lines[1]
        .strip_prefix("Started Prometheus metrics endpoint at ")
        .unwrap();

    let health = reqwest::get(server.url.join("/healthz").unwrap())
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "OK");
    let metrics = reqwest::get(metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"coderd_api_requests_processed_total{code="200",method="GET",path="/healthz"} 1"#
        ),
        "{metrics}"
    );

    let (code, rest) = server.stop_with(Signal::SIGINT);
    assert_eq!(code, Some(0), "{rest}");
    assert!(
        rest.contains("Interrupt caught, gracefully exiting"),
        "{rest}"
    );
    assert!(rest.trim_end().ends_with("Stopped."), "{rest}");
}

#[test]
fn write_config_prints_effective_yaml_without_secrets() {
    let out = coder()
        .run(&[
            "server",
            "--write-config",
            "--postgres-url",
            "postgres://coder:hunter2@db.example.com/coder",
            "--http-address",
            "127.0.0.1:4000",
            "--experiments",
            "moons,other",
        ])
        .success();
    assert!(!out.stdout.contains("hunter2"), "{}", out.stdout);
    let config = yaml(&out.stdout);
    assert_eq!(
        config["networking"]["http"]["httpAddress"],
        "127.0.0.1:4000"
    );
    assert_eq!(config["networking"]["tls"]["address"], "127.0.0.1:3443");
    assert_eq!(config["networking"]["tls"]["enable"], false);
    assert_eq!(config["networking"]["tls"]["clientAuth"], "none");
    assert_eq!(
        config["introspection"]["prometheus"]["address"],
        "127.0.0.1:2112"
    );
    assert_eq!(config["telemetry"]["enable"], false);
    assert_eq!(config["updateCheck"], false);
    assert_eq!(config["experiments"], serde_json::json!(["moons", "other"]));
    assert!(config.get("pgConnectionURL").is_none());
}

#[test]
fn yaml_sits_below_environment_and_flags() {
    let mut coder = coder();
    let file = coder.home().join("coder.yaml");
    std::fs::write(
        &file,
        "networking:\n  http:\n    httpAddress: 127.0.0.1:4001\n    sessionDuration: 2h\n\
         introspection:\n  prometheus:\n    enable: true\n",
    )
    .unwrap();
    let file = file.to_str().unwrap().to_owned();
    let effective = |coder: &testkit::Coder, extra: &[&str]| {
        let mut args = vec!["server", "--write-config", "--config", &file];
        args.extend_from_slice(extra);
        yaml(&coder.run(&args).success().stdout)
    };
    let config = effective(&coder, &[]);
    assert_eq!(
        config["networking"]["http"]["httpAddress"],
        "127.0.0.1:4001"
    );
    assert_eq!(config["networking"]["http"]["sessionDuration"], "2h");
    assert_eq!(config["introspection"]["prometheus"]["enable"], true);

    coder.env("CODER_HTTP_ADDRESS", "127.0.0.1:4002");
    let config = effective(&coder, &[]);
    assert_eq!(
        config["networking"]["http"]["httpAddress"],
        "127.0.0.1:4002"
    );
    assert_eq!(config["networking"]["http"]["sessionDuration"], "2h");

    let config = effective(
        &coder,
        &[
            "--http-address",
            "127.0.0.1:4003",
            "--prometheus-enable=false",
        ],
    );
    assert_eq!(
        config["networking"]["http"]["httpAddress"],
        "127.0.0.1:4003"
    );
    assert_eq!(config["introspection"]["prometheus"]["enable"], false);
}

#[test]
fn bad_values_fail_at_start_naming_the_option() {
    let coder = coder();
    for (args, option) in [
        (vec!["--http-address", "nonsense"], "--http-address"),
        (vec!["--tls-client-auth", "sometimes"], "--tls-client-auth"),
        (vec!["--session-duration", "soon"], "--session-duration"),
        (vec!["--access-url", "ftp://example.com"], "--access-url"),
        (
            vec!["--wildcard-access-url", "apps.example.com"],
            "--wildcard-access-url",
        ),
        (vec!["--tls-min-version", "tls10"], "--tls-min-version"),
    ] {
        let mut full = vec!["server"];
        full.extend(args.iter().copied());
        let out = coder.run(&full).failure(2);
        assert!(out.stderr.contains(option), "{args:?}: {}", out.stderr);
    }
    let mut with_env = crate::coder();
    with_env.env("CODER_TLS_CLIENT_AUTH", "always");
    let out = with_env.run(&["server"]).failure(2);
    assert!(out.stderr.contains("--tls-client-auth"), "{}", out.stderr);

    let file = coder.home().join("typo.yaml");
    std::fs::write(&file, "networking:\n  htpAddress: 127.0.0.1:1\n").unwrap();
    let out = coder
        .run(&["server", "--config", file.to_str().unwrap()])
        .failure(2);
    assert!(
        out.stderr.contains("unknown key \"networking.htpAddress\""),
        "{}",
        out.stderr
    );

    let out = coder
        .run(&["server", "--tls-enable", "--http-address", ""])
        .failure(1);
    assert_eq!(
        out.stderr,
        "error: --tls-cert-file is required with --tls-enable\n"
    );
    let out = coder.run(&["server", "--http-address", ""]).failure(1);
    assert!(
        out.stderr.contains("there is nothing to listen on"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn a_busy_port_is_reported_with_its_option() {
    let db = TestDb::new().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let out = coder()
        .run(&[
            "server",
            "--postgres-url",
            &db.url,
            "--http-address",
            &address,
        ])
        .failure(1);
    assert!(
        out.stderr
            .starts_with(&format!("error: listening on --http-address {address}: ")),
        "{}",
        out.stderr
    );
}

#[test]
fn an_unreachable_database_is_a_clear_error() {
    let out = coder()
        .run(&[
            "server",
            "--postgres-url",
            "postgres://coder@127.0.0.1:1/coder",
            "--http-address",
            "127.0.0.1:0",
        ])
        .failure(1);
    assert!(
        out.stderr
            .contains("error: preparing the database: connecting to PostgreSQL"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_go_to_the_named_file() {
    let db = TestDb::new().await;
    let coder = coder();
    let log = coder.home().join("server.json");
    let server = coder.server(&[
        "--postgres-url",
        &db.url,
        "--http-address",
        "127.0.0.1:0",
        "--log-human",
        "",
        "--log-json",
        log.to_str().unwrap(),
    ]);
    crate::login_first_user(&coder, &server.url);
    let (code, output) = server.stop_with(Signal::SIGTERM);
    assert_eq!(code, Some(0));
    assert!(
        !output.contains("INFO"),
        "no human logs when --log-human is empty: {output}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
        .collect();
    let created = events
        .iter()
        .find(|event| event["fields"]["message"] == "created the first user")
        .unwrap_or_else(|| panic!("no first-user event in {text}"));
    assert_eq!(created["level"], "INFO");
    assert_eq!(created["fields"]["username"], "admin");
    assert!(
        !text.contains(testkit::PASSWORD),
        "secrets never reach the log"
    );
}

/// The seeds' example relay map.
const DERP_MAP: &str = r#"{
  "Regions": {
    "1": {
      "RegionID": 1,
      "RegionCode": "myderp",
      "RegionName": "My DERP",
      "Nodes": [{ "Name": "1", "RegionID": 1, "HostName": "your-hostname.com" }]
    }
  }
}"#;

async fn derp_map_of(coder: &testkit::Coder, server: &testkit::ServerProcess) -> serde_json::Value {
    crate::login_first_user(coder, &server.url);
    let token = std::fs::read_to_string(coder.config_dir().join("session")).unwrap();
    reqwest::Client::new()
        .get(server.url.join("/api/v2/derp-map").unwrap())
        .header(sdk::SESSION_TOKEN_HEADER, token.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_map_file_is_merged_with_the_embedded_relay() {
    let db = TestDb::new().await;
    let coder = coder();
    let file = coder.home().join("derpmap.json");
    std::fs::write(&file, DERP_MAP).unwrap();
    let server = coder.server(&[
        "--postgres-url",
        &db.url,
        "--http-address",
        "127.0.0.1:0",
        "--derp-config-path",
        file.to_str().unwrap(),
    ]);
    let map = derp_map_of(&coder, &server).await;
    assert_eq!(
        map["Regions"]["1"]["Nodes"][0]["HostName"],
        "your-hostname.com"
    );
    let embedded = &map["Regions"]["999"];
    assert_eq!(embedded["RegionCode"], "coder");
    assert_eq!(embedded["RegionName"], "Coder Embedded Relay");
    assert_eq!(embedded["EmbeddedRelay"], true);
    assert_eq!(embedded["Nodes"][0]["HostName"], "127.0.0.1");
    assert_eq!(embedded["Nodes"][0]["DERPPort"], server.url.port().unwrap());
    assert_eq!(embedded["Nodes"][0]["ForceHTTP"], true);

    let out = coder
        .run(&[
            "server",
            "--postgres-url",
            &db.url,
            "--http-address",
            "127.0.0.1:0",
            "--derp-config-path",
            file.to_str().unwrap(),
            "--derp-server-region-id",
            "1",
        ])
        .failure(1);
    assert_eq!(
        out.stderr.lines().last().unwrap(),
        "error: --derp-server-region-id 1 conflicts with the relay map: region ID 1 is used by both the embedded relay and the relay map"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_map_url_is_fetched_at_start() {
    let db = TestDb::new().await;
    let coder = coder();
    std::fs::write(coder.home().join("derpmap.json"), DERP_MAP).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut web = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(coder.home())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    testkit::eventually(
        Duration::from_secs(10),
        "python's web server to listen",
        || async { std::net::TcpStream::connect(("127.0.0.1", port)).ok() },
    )
    .await;
    let server = coder.server(&[
        "--postgres-url",
        &db.url,
        "--http-address",
        "127.0.0.1:0",
        "--derp-config-url",
        &format!("http://127.0.0.1:{port}/derpmap.json"),
    ]);
    let map = derp_map_of(&coder, &server).await;
    let _ = web.kill();
    let _ = web.wait();
    let mut regions: Vec<&String> = map["Regions"].as_object().unwrap().keys().collect();
    regions.sort();
    assert_eq!(regions, ["1", "999"]);
}
