//! What ships beside the binary: the systemd units (and the readiness protocol they rely on),
//! the Helm chart and the Docker image's layout, as the seeds' install instructions use them.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;
use testkit::TestDb;

use crate::coder;

fn repo() -> PathBuf {
    crate::manifest_dir().join("../..")
}

fn receive(socket: &UnixDatagram) -> String {
    let mut buffer = [0u8; 256];
    let n = socket.recv(&mut buffer).expect("a notification from coder");
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

#[tokio::test]
async fn the_server_tells_systemd_when_it_is_ready_and_when_it_stops() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut coder = coder();
    coder.env("NOTIFY_SOCKET", socket_path.to_str().unwrap());
    let server = coder.server(&["--postgres-url", &db.url, "--http-address", "127.0.0.1:0"]);
    // READY=1 comes once the server answers: the unit's `systemctl start` returns then.
    assert_eq!(receive(&socket), "READY=1");
    let health = reqwest::get(server.url.join("/healthz").unwrap())
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let (code, rest) = server.stop_with(Signal::SIGTERM);
    assert_eq!(receive(&socket), "STOPPING=1");
    assert_eq!(code, Some(0), "{rest}");
}

/// `systemd-analyze verify` on both units, with ExecStart pointing at the binary under test.
#[test]
fn the_systemd_units_verify_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    for unit in ["coder.service", "coder-workspace-proxy.service"] {
        let text = std::fs::read_to_string(repo().join("packaging/systemd").join(unit)).unwrap();
        assert!(
            text.contains("EnvironmentFile=/etc/coder.d/"),
            "{unit} reads /etc/coder.d"
        );
        assert!(text.contains("Type=notify"), "{unit}");
        let text = text.replace("/usr/bin/coder", env!("CARGO_BIN_EXE_coder"));
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    let proxy =
        std::fs::read_to_string(repo().join("packaging/systemd/coder-workspace-proxy.service"))
            .unwrap();
    assert!(
        proxy.contains("EnvironmentFile=/etc/coder.d/coder-workspace-proxy.env")
            && proxy.contains("wsproxy server"),
        "{proxy}"
    );
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("coder.service"))
        .arg(dir.path().join("coder-workspace-proxy.service"))
        .output()
        .expect("systemd-analyze (Debian's systemd package) is installed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Any complaint about our files (unknown keys, bad values) is a failure; systemd's own
    // notes about the host (no running manager in a container) are not.
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains(".service"))
        .collect();
    assert!(output.status.success() && complaints.is_empty(), "{stderr}");
}

/// The example env files name only settings the matching command reads (its `--help` lists
/// each option's variable).
#[test]
fn the_env_files_hold_settings_the_binary_accepts() {
    for (file, command) in [
        ("coder.env", vec!["server"]),
        ("coder-workspace-proxy.env", vec!["wsproxy", "server"]),
    ] {
        let text = std::fs::read_to_string(repo().join("packaging/env").join(file)).unwrap();
        let help = coder()
            .run(&[command.as_slice(), &["--help"]].concat())
            .success();
        for line in text.lines() {
            let line = line.trim_start_matches('#');
            let Some((name, _)) = line.split_once('=') else {
                continue;
            };
            if !name.starts_with("CODER_") {
                continue;
            }
            assert!(
                help.stdout.contains(&format!("{name}="))
                    || help.stdout.contains(&format!("{name}]")),
                "{file} sets {name}, which `coder {}` does not read",
                command.join(" ")
            );
        }
    }
}

/// Renders the chart as `helm template` would (Go templates with Sprig, offline from Debian's
/// Go packages; see packaging/helm-template) and returns the manifests.
fn helm_template(values: Option<&str>) -> Result<Vec<Value>, String> {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new("go");
    command
        .current_dir(repo().join("packaging/helm-template"))
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOFLAGS", "")
        .args(["run", "main.go"])
        .arg(repo().join("helm/coder"));
    if let Some(values) = values {
        let path = dir.path().join("values.yaml");
        std::fs::write(&path, values).unwrap();
        command.arg(path);
    }
    let output = command
        .output()
        .expect("go (Debian's golang-go) is installed");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&output.stdout).unwrap())
}

fn kind<'a>(manifests: &'a [Value], kind: &str) -> &'a Value {
    manifests
        .iter()
        .find(|m| m["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {manifests:#?}"))
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
}

/// The seeds' `values-wsproxy.yaml`, verbatim but for the placeholders.
const WSPROXY_VALUES: &str = r#"
coder:
  env:
    - name: CODER_PRIMARY_ACCESS_URL
      value: "https://coderd.example.com"
    - name: CODER_PROXY_SESSION_TOKEN
      value: "2b0d8e8f-5f5d-4f6e-9b7a-3a8d2c1e4f5a:abc"
    # Example: https://east.coderd.example.com
    - name: CODER_ACCESS_URL
      value: "https://east.coderd.example.com"
    # Example: *.east.coderd.example.com
    - name: CODER_WILDCARD_ACCESS_URL
      value: "*.east.coderd.example.com"

  tls:
    secretNames:
      - kubernetes-wsproxy-secret

  # enable workspace proxy
  workspaceProxy: true
"#;

#[test]
fn the_helm_chart_runs_the_server_by_default_and_a_proxy_with_workspace_proxy_true() {
    let server = helm_template(None).unwrap();
    let container = &kind(&server, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"], serde_json::json!(["/opt/coder"]));
    assert_eq!(container["args"], serde_json::json!(["server"]));
    assert_eq!(env_value(container, "CODER_TLS_ENABLE"), None);
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/healthz");
    let ports = &kind(&server, "Service")["spec"]["ports"];
    assert_eq!(ports.as_array().unwrap().len(), 1, "{ports}");

    let proxy = helm_template(Some(WSPROXY_VALUES)).unwrap();
    let deployment = kind(&proxy, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["args"], serde_json::json!(["wsproxy", "server"]));
    assert_eq!(
        deployment["metadata"]["labels"]["app.kubernetes.io/component"],
        "workspace-proxy"
    );
    for (name, value) in [
        ("CODER_PRIMARY_ACCESS_URL", "https://coderd.example.com"),
        ("CODER_ACCESS_URL", "https://east.coderd.example.com"),
        ("CODER_WILDCARD_ACCESS_URL", "*.east.coderd.example.com"),
        ("CODER_TLS_ENABLE", "true"),
        (
            "CODER_TLS_CERT_FILE",
            "/etc/ssl/certs/coder/kubernetes-wsproxy-secret/tls.crt",
        ),
        (
            "CODER_TLS_KEY_FILE",
            "/etc/ssl/certs/coder/kubernetes-wsproxy-secret/tls.key",
        ),
    ] {
        assert_eq!(env_value(container, name), Some(value), "{container:#}");
    }
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"],
        "kubernetes-wsproxy-secret"
    );
    assert_eq!(
        container["volumeMounts"][0]["mountPath"],
        "/etc/ssl/certs/coder/kubernetes-wsproxy-secret"
    );
    let ports: Vec<&Value> = kind(&proxy, "Service")["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["port"])
        .collect();
    assert_eq!(ports, [&serde_json::json!(80), &serde_json::json!(443)]);
}

#[test]
fn the_helm_chart_refuses_a_proxy_without_its_primary_or_token() {
    let err = helm_template(Some("coder:\n  workspaceProxy: true\n")).unwrap_err();
    assert!(
        err.contains("set CODER_PRIMARY_ACCESS_URL in coder.env"),
        "{err}"
    );
    let err = helm_template(Some("coder:\n  tls:\n    secretNames: [a, b]\n")).unwrap_err();
    assert!(err.contains("name one secret"), "{err}");
}

/// The image puts the binary at /opt/coder, so the seeds' `--entrypoint /opt/coder ...
/// wsproxy server` and `ENTRYPOINT ["/opt/coder", "wsproxy", "server"]` work.
#[test]
fn the_docker_image_has_the_binary_at_opt_coder() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let copy = dockerfile
        .lines()
        .find(|line| line.starts_with("COPY"))
        .expect("a COPY line");
    assert!(copy.ends_with(" target/release/coder /opt/coder"), "{copy}");
    let entrypoint = dockerfile
        .lines()
        .find(|line| line.starts_with("ENTRYPOINT"))
        .unwrap();
    let entrypoint: Vec<String> =
        serde_json::from_str(entrypoint.trim_start_matches("ENTRYPOINT ")).unwrap();
    assert_eq!(entrypoint[entrypoint.len() - 2..], ["/opt/coder", "server"]);
    // The build context lets exactly the release binary through.
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l == "!target/release/coder"),
        "{ignore}"
    );
}
