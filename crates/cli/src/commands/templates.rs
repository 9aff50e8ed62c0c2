//! `coder templates`: init (an example template), push (upload, import with the log streamed
//! live, a summary of what changed, then create or activate), list, versions list, delete.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use sdk::client::Client;
use sdk::{
    CreateTemplateRequest, CreateTemplateVersionRequest, ProvisionerJobStatus, Template,
    TemplateVersionVariable, WorkspaceResource,
};

use crate::commands::GlobalArgs;
use crate::commands::provisioner::parse_tags;
use crate::output::{self, Format, Table};
use crate::session;

/// The examples `templates init` can write, by id.
const EXAMPLES: &[(&str, &str, &str)] = &[(
    "local",
    "A workspace on the provisioner's machine; needs no provider download",
    include_str!("../../../../examples/templates/local/main.tf"),
)];

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TemplatesCommand {
    /// Write an example template into a directory.
    Init {
        /// Where to write it [default: ./<id>].
        directory: Option<PathBuf>,
        /// Which example.
        #[arg(long, default_value = "local")]
        id: String,
    },
    /// Push a template directory as a new version (creating the template the first time).
    Push {
        /// The template's name [default: the directory's name].
        template: Option<String>,
        /// The template's directory.
        #[arg(short, long, default_value = ".")]
        directory: PathBuf,
        /// The version's name [default: generated].
        #[arg(long)]
        name: Option<String>,
        /// A message describing the change.
        #[arg(short, long, default_value = "")]
        message: String,
        /// Make the new version active.
        #[arg(long, num_args = 0..=1, require_equals = true, default_value = "true",
              default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
        activate: bool,
        /// Tags (key=value) a provisioner needs to import it.
        #[arg(long = "provisioner-tag", value_delimiter = ',')]
        provisioner_tags: Vec<String>,
        /// Don't ask for confirmation.
        #[arg(short, long)]
        yes: bool,
        /// The organization.
        #[arg(long, short = 'O', env = "CODER_ORGANIZATION")]
        org: Option<String>,
    },
    /// List templates.
    #[command(alias = "ls")]
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Manage a template's versions.
    Versions {
        #[command(subcommand)]
        command: VersionsCommand,
    },
    /// Delete a template.
    #[command(alias = "rm")]
    Delete {
        template: String,
        #[arg(short, long)]
        yes: bool,
        #[arg(long, short = 'O', env = "CODER_ORGANIZATION")]
        org: Option<String>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum VersionsCommand {
    /// List a template's versions.
    #[command(alias = "ls")]
    List {
        template: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
        #[arg(long, short = 'O', env = "CODER_ORGANIZATION")]
        org: Option<String>,
    },
}

pub(crate) async fn run(global: &GlobalArgs, command: TemplatesCommand) -> Result<ExitCode> {
    match command {
        TemplatesCommand::Init { directory, id } => init(directory, &id),
        TemplatesCommand::Push {
            template,
            directory,
            name,
            message,
            activate,
            provisioner_tags,
            yes,
            org,
        } => {
            let client = session::client(global)?;
            let org = organization(&client, org).await?;
            push(
                &client,
                &org,
                template,
                &directory,
                PushOptions {
                    name,
                    message,
                    activate,
                    tags: parse_tags(&provisioner_tags)?,
                    yes,
                },
            )
            .await
        }
        TemplatesCommand::List { output } => {
            let client = session::client(global)?;
            list(&client, output).await
        }
        TemplatesCommand::Versions {
            command:
                VersionsCommand::List {
                    template,
                    output,
                    org,
                },
        } => {
            let client = session::client(global)?;
            let org = organization(&client, org).await?;
            versions(&client, &org, &template, output).await
        }
        TemplatesCommand::Delete { template, yes, org } => {
            let client = session::client(global)?;
            let org = organization(&client, org).await?;
            let found = find_template(&client, &org, &template).await?;
            confirm(yes, &format!("Delete template {template:?}?"))?;
            client
                .delete_template(found.id)
                .await
                .map_err(session::explain)?;
            output::line(format!("Deleted template {template:?}."))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The organization to use: the flag, else the caller's first (the default organization).
async fn organization(client: &Client, org: Option<String>) -> Result<String> {
    if let Some(org) = org {
        return Ok(org);
    }
    let organizations = client.organizations().await.map_err(session::explain)?;
    organizations
        .iter()
        .find(|organization| organization.is_default)
        .or(organizations.first())
        .map(|organization| organization.name.clone())
        .context("you belong to no organization")
}

async fn find_template(client: &Client, org: &str, name: &str) -> Result<Template> {
    client
        .template_by_name(org, name)
        .await
        .map_err(session::explain)?
        .with_context(|| format!("template {name:?} not found in organization {org:?}"))
}

fn confirm(yes: bool, question: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("not a terminal: pass --yes to confirm");
    }
    output::prompt(format!("{question} (yes/no) "));
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "yes") {
        bail!("cancelled");
    }
    Ok(())
}

fn init(directory: Option<PathBuf>, id: &str) -> Result<ExitCode> {
    let Some((_, _, main_tf)) = EXAMPLES.iter().find(|(name, _, _)| *name == id) else {
        let known: Vec<String> = EXAMPLES
            .iter()
            .map(|(name, about, _)| format!("{name} ({about})"))
            .collect();
        bail!("no example {id:?}; examples: {}", known.join(", "));
    };
    let directory = directory.unwrap_or_else(|| PathBuf::from(id));
    let target = directory.join("main.tf");
    if target.exists() {
        bail!(
            "{} already exists; choose another directory",
            target.display()
        );
    }
    std::fs::create_dir_all(&directory)
        .with_context(|| format!("creating {}", directory.display()))?;
    std::fs::write(&target, main_tf).with_context(|| format!("writing {}", target.display()))?;
    output::line(format!(
        "Extracted the {id} example to {}",
        directory.display()
    ))?;
    output::line(format!(
        "Create the template with: coder templates push {id} -d {}",
        directory.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}

struct PushOptions {
    name: Option<String>,
    message: String,
    activate: bool,
    tags: BTreeMap<String, String>,
    yes: bool,
}

async fn push(
    client: &Client,
    org: &str,
    template: Option<String>,
    directory: &Path,
    options: PushOptions,
) -> Result<ExitCode> {
    let directory = directory
        .canonicalize()
        .with_context(|| format!("reading {}", directory.display()))?;
    let name = match template {
        Some(name) => name,
        None => directory
            .file_name()
            .and_then(|name| name.to_str())
            .context("name the template: coder templates push NAME")?
            .to_owned(),
    };
    let existing = client
        .template_by_name(org, &name)
        .await
        .map_err(session::explain)?;
    if existing.is_none() {
        confirm(
            options.yes || !std::io::stdin().is_terminal(),
            &format!("Create template {name:?}?"),
        )?;
    }
    let archive = {
        let directory = directory.clone();
        tokio::task::spawn_blocking(move || tar_directory(&directory))
            .await
            .context("archiving the template")??
    };
    let upload = client
        .upload_tar(archive)
        .await
        .map_err(session::explain)
        .context("uploading the template")?;
    let version = client
        .create_template_version(
            org,
            &CreateTemplateVersionRequest {
                name: options.name.clone().unwrap_or_default(),
                message: options.message.clone(),
                template_id: existing.as_ref().map(|template| template.id),
                file_id: upload.id,
                tags: options.tags.clone(),
                ..CreateTemplateVersionRequest::default()
            },
        )
        .await
        .map_err(session::explain)
        .context("creating the template version")?;
    output::note(format!(
        "Importing version {} of template {name:?}...",
        version.name
    ));
    let mut stage = String::new();
    let job = client
        .follow_job_logs(
            &format!("/api/v2/templateversions/{}/logs", version.id),
            |log| {
                if log.stage != stage {
                    stage = log.stage.clone();
                    output::note(format!("==> {stage}"));
                }
                if !log.output.is_empty() {
                    output::note(format!("    {}", log.output));
                }
            },
        )
        .await
        .map_err(session::explain)
        .context("following the import's log")?;
    if job.status != ProvisionerJobStatus::Succeeded {
        bail!(
            "the template version's import {}: {}",
            job.status.name(),
            job.error
        );
    }
    print_changes(client, existing.as_ref(), version.id).await?;
    match existing {
        None => {
            client
                .create_template(
                    org,
                    &CreateTemplateRequest {
                        name: name.clone(),
                        template_version_id: version.id,
                        ..CreateTemplateRequest::default()
                    },
                )
                .await
                .map_err(session::explain)
                .context("creating the template")?;
            output::line(format!(
                "Template {name:?} has been created with version {}.",
                version.name
            ))?;
        }
        Some(template) if options.activate => {
            client
                .set_active_template_version(template.id, version.id)
                .await
                .map_err(session::explain)?;
            output::line(format!(
                "Template {name:?} updated: version {} is active.",
                version.name
            ))?;
        }
        Some(_) => {
            output::line(format!(
                "Pushed version {} of {name:?} (not activated).",
                version.name
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints what the new version changes against the template's active version.
async fn print_changes(
    client: &Client,
    existing: Option<&Template>,
    version: uuid::Uuid,
) -> Result<()> {
    let new_resources = client
        .template_version_resources(version)
        .await
        .map_err(session::explain)?;
    let new_variables = client
        .template_version_variables(version)
        .await
        .map_err(session::explain)?;
    let (old_resources, old_variables) = match existing {
        Some(template) => (
            client
                .template_version_resources(template.active_version_id)
                .await
                .map_err(session::explain)?,
            client
                .template_version_variables(template.active_version_id)
                .await
                .map_err(session::explain)?,
        ),
        None => (Vec::new(), Vec::new()),
    };
    let lines = changes(
        &old_resources,
        &new_resources,
        &old_variables,
        &new_variables,
    );
    if lines.is_empty() {
        output::line("No changes to resources or parameters.")?;
    } else {
        output::line("Changes:")?;
        for line in lines {
            output::line(format!("  {line}"))?;
        }
    }
    Ok(())
}

fn changes(
    old_resources: &[WorkspaceResource],
    new_resources: &[WorkspaceResource],
    old_variables: &[TemplateVersionVariable],
    new_variables: &[TemplateVersionVariable],
) -> Vec<String> {
    let mut lines = Vec::new();
    for resource in new_resources {
        if !old_resources
            .iter()
            .any(|old| old.address == resource.address)
        {
            lines.push(format!("+ resource {}", resource.address));
        }
    }
    for resource in old_resources {
        if !new_resources
            .iter()
            .any(|new| new.address == resource.address)
        {
            lines.push(format!("- resource {}", resource.address));
        }
    }
    let describe = |variable: &TemplateVersionVariable| match &variable.default_value {
        Some(default) => format!("default {default}"),
        None => "required".to_owned(),
    };
    for variable in new_variables {
        match old_variables.iter().find(|old| old.name == variable.name) {
            None => lines.push(format!(
                "+ parameter {} ({})",
                variable.name,
                describe(variable)
            )),
            Some(old) if old.default_value != variable.default_value => lines.push(format!(
                "~ parameter {} ({} -> {})",
                variable.name,
                describe(old),
                describe(variable)
            )),
            Some(_) => {}
        }
    }
    for variable in old_variables {
        if !new_variables.iter().any(|new| new.name == variable.name) {
            lines.push(format!("- parameter {}", variable.name));
        }
    }
    lines
}

/// The template's files as a tar archive, leaving out Terraform's caches and state.
fn tar_directory(directory: &Path) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    add_directory(&mut builder, directory, Path::new(""))?;
    let archive = builder.into_inner().context("finishing the archive")?;
    Ok(archive)
}

fn add_directory(builder: &mut tar::Builder<Vec<u8>>, root: &Path, relative: &Path) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(root.join(relative))
        .with_context(|| format!("reading {}", root.join(relative).display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let name = entry.file_name();
        let text = name.to_string_lossy();
        let skipped = matches!(text.as_ref(), ".terraform" | ".git" | ".terraform.lock.hcl")
            || text.contains(".tfstate");
        if skipped {
            continue;
        }
        let path = relative.join(&name);
        let kind = entry.file_type()?;
        if kind.is_dir() {
            add_directory(builder, root, &path)?;
        } else if kind.is_file() {
            builder
                .append_path_with_name(root.join(&path), &path)
                .with_context(|| format!("archiving {}", path.display()))?;
        }
    }
    Ok(())
}

async fn list(client: &Client, format: Format) -> Result<ExitCode> {
    let templates = client.templates().await.map_err(session::explain)?;
    if format == Format::Json {
        output::json(&templates)?;
        return Ok(ExitCode::SUCCESS);
    }
    if templates.is_empty() {
        output::note("No templates found. Create one with 'coder templates push'.");
        return Ok(ExitCode::SUCCESS);
    }
    let columns = ["name", "active version", "last updated", "created by"];
    let columns: Vec<String> = columns.iter().map(|column| (*column).to_owned()).collect();
    let mut table = Table::new(
        &["name", "active version", "last updated", "created by"],
        &columns,
    )?;
    for template in &templates {
        let version = client
            .template_version(template.active_version_id)
            .await
            .map_err(session::explain)?;
        table.row(vec![
            template.name.clone(),
            version.name,
            output::time(template.updated_at),
            template.created_by_name.clone(),
        ]);
    }
    table.print()?;
    Ok(ExitCode::SUCCESS)
}

async fn versions(client: &Client, org: &str, name: &str, format: Format) -> Result<ExitCode> {
    let template = find_template(client, org, name).await?;
    let versions = client
        .template_versions(template.id)
        .await
        .map_err(session::explain)?;
    if format == Format::Json {
        output::json(&versions)?;
        return Ok(ExitCode::SUCCESS);
    }
    let columns = ["name", "created at", "created by", "status", "active"];
    let chosen: Vec<String> = columns.iter().map(|column| (*column).to_owned()).collect();
    let mut table = Table::new(&columns, &chosen)?;
    for version in versions.iter().rev() {
        table.row(vec![
            version.name.clone(),
            output::time(version.created_at),
            version.created_by.username.clone(),
            version.job.status.name().to_owned(),
            if version.id == template.active_version_id {
                "Active"
            } else {
                ""
            }
            .to_owned(),
        ]);
    }
    table.print()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(address: &str) -> WorkspaceResource {
        WorkspaceResource {
            address: address.to_owned(),
            kind: "terraform_data".to_owned(),
            name: address.to_owned(),
        }
    }

    fn variable(name: &str, default: Option<serde_json::Value>) -> TemplateVersionVariable {
        TemplateVersionVariable {
            name: name.to_owned(),
            description: String::new(),
            default_value: default,
            required: false,
            sensitive: false,
        }
    }

    #[test]
    fn change_summary() {
        let lines = changes(
            &[resource("terraform_data.a"), resource("terraform_data.b")],
            &[resource("terraform_data.b"), resource("terraform_data.c")],
            &[variable("cpu", Some(2.into())), variable("old", None)],
            &[variable("cpu", Some(4.into())), variable("disk", None)],
        );
        assert_eq!(
            lines,
            [
                "+ resource terraform_data.c",
                "- resource terraform_data.a",
                "~ parameter cpu (default 2 -> default 4)",
                "+ parameter disk (required)",
                "- parameter old",
            ]
        );
    }

    #[test]
    fn archives_leave_out_terraform_state_and_caches() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.tf"), "# x").unwrap();
        std::fs::write(dir.path().join("terraform.tfstate"), "{}").unwrap();
        std::fs::create_dir_all(dir.path().join(".terraform/providers")).unwrap();
        std::fs::create_dir_all(dir.path().join("modules/a")).unwrap();
        std::fs::write(dir.path().join("modules/a/main.tf"), "# y").unwrap();
        let archive = tar_directory(dir.path()).unwrap();
        let mut names: Vec<String> = tar::Archive::new(archive.as_slice())
            .entries()
            .unwrap()
            .map(|entry| entry.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["main.tf", "modules/a/main.tf"]);
    }
}
