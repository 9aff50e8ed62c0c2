//! `tidy`: the architecture's invariants, each an absence, checked with `cargo metadata` and
//! a scan of the sources so that a violation fails the build's tests, not a review.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Role crates: they never depend on each other.
const ROLES: [&str; 4] = ["coderd", "agent", "wsproxy", "provisioner"];
/// Foundation crates: shared by roles, so they never depend on one.
const FOUNDATIONS: [&str; 6] = ["sdk", "tunnel", "apps", "httpd", "store", "site"];

fn workspace_root() -> PathBuf {
    crate::manifest_dir().ancestors().nth(2).unwrap().to_owned()
}

/// A workspace crate: its directory and its normal (non-dev) dependencies on other workspace
/// crates.
struct Package {
    dir: PathBuf,
    deps: Vec<String>,
}

/// Each workspace crate's normal (non-dev) dependencies on other workspace crates.
fn workspace_edges() -> BTreeMap<String, Vec<String>> {
    workspace_packages()
        .into_iter()
        .map(|(name, package)| (name, package.deps))
        .collect()
}

/// Every workspace member by name, wherever its directory (`crates/*`, the bench tools).
fn workspace_packages() -> BTreeMap<String, Package> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let packages = metadata["packages"].as_array().unwrap();
    let names: Vec<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    packages
        .iter()
        .map(|package| {
            let deps = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|dep| dep["kind"].is_null())
                .map(|dep| dep["name"].as_str().unwrap())
                .filter(|name| names.contains(name))
                .map(str::to_owned)
                .collect();
            let manifest = Path::new(package["manifest_path"].as_str().unwrap());
            let dir = manifest.parent().unwrap().to_owned();
            (
                package["name"].as_str().unwrap().to_owned(),
                Package { dir, deps },
            )
        })
        .collect()
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

fn crate_sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&dir.join("src"), &mut files);
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect()
}

#[test]
fn dependencies_point_down() {
    let edges = workspace_edges();
    let mut problems = Vec::new();
    for (krate, deps) in &edges {
        for dep in deps {
            if ROLES.contains(&krate.as_str()) && ROLES.contains(&dep.as_str()) {
                problems.push(format!("role crate {krate} depends on role crate {dep}"));
            }
            if FOUNDATIONS.contains(&krate.as_str()) && ROLES.contains(&dep.as_str()) {
                problems.push(format!(
                    "foundation crate {krate} depends on role crate {dep}"
                ));
            }
            if dep == "store" && !matches!(krate.as_str(), "coderd" | "testkit") {
                problems.push(format!("{krate} depends on store; only coderd may"));
            }
            if dep == "testkit" {
                problems.push(format!(
                    "{krate} depends on testkit outside dev-dependencies"
                ));
            }
        }
        // sdk is every client's; site is only the dashboard's files.
        if (krate == "sdk" || krate == "site") && !deps.is_empty() {
            problems.push(format!("{krate} depends on workspace crates {deps:?}"));
        }
    }
    for role in ROLES.iter().chain(["sdk", "store"].iter()) {
        if let Some(deps) = edges.get(*role)
            && deps.iter().any(|dep| dep == "cli")
        {
            problems.push(format!("{role} depends on cli"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn sql_lives_only_in_store_and_argv_only_in_cli() {
    let packages = workspace_packages();
    let mut problems = Vec::new();
    for (krate, package) in &packages {
        for (path, text) in crate_sources(&package.dir) {
            let shown = path
                .strip_prefix(workspace_root())
                .unwrap()
                .display()
                .to_string();
            if krate != "store" && (text.contains("sqlx::query") || text.contains("SELECT ")) {
                problems.push(format!("{shown}: SQL outside store"));
            }
            if krate != "cli" && krate != "testkit" && text.contains("env::var(\"CODER_") {
                problems.push(format!("{shown}: reads a CODER_ variable outside cli"));
            }
            if krate != "cli" && text.contains("process::exit") {
                problems.push(format!("{shown}: exits the process outside cli"));
            }
            if !text.starts_with("//!") {
                problems.push(format!("{shown}: does not start with a //! module comment"));
            }
        }
    }
    let clap_users: Vec<&String> = packages
        .iter()
        .filter(|(krate, _)| *krate != "cli")
        .filter(|(_, package)| {
            std::fs::read_to_string(package.dir.join("Cargo.toml"))
                .unwrap()
                .lines()
                .any(|line| line.starts_with("clap"))
        })
        .map(|(krate, _)| krate)
        .collect();
    if !clap_users.is_empty() {
        problems.push(format!("library crates depend on clap: {clap_users:?}"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_crate_states_its_job() {
    for (krate, package) in workspace_packages() {
        // A library's root, or a program's (the binary, the bench tools).
        let lib = package.dir.join("src").join("lib.rs");
        let root = if lib.exists() {
            lib
        } else {
            package.dir.join("src").join("main.rs")
        };
        let text = std::fs::read_to_string(&root).unwrap();
        let doc: Vec<&str> = text
            .lines()
            .take_while(|line| line.starts_with("//!"))
            .collect();
        assert!(
            doc.len() >= 2,
            "{krate}: {} needs a //! paragraph stating its job",
            root.display()
        );
    }
}
