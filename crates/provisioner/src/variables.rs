//! The template's `variable` blocks, read from its `.tf` files: an import's plan needs a value
//! for every variable without a default, so required parameters get a placeholder of their
//! type for the import only (users give the real values when they create a workspace).

use std::path::Path;

/// `(name, placeholder)` for each required variable outside the `coder_` facts.
pub(crate) fn required_placeholders(dir: &Path) -> Vec<(String, String)> {
    let mut placeholders = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return placeholders;
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "tf"))
        .collect();
    files.sort();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        // A file that does not parse is left to `terraform init`, which reports it properly.
        let Ok(body) = hcl::parse(&text) else {
            continue;
        };
        for block in body
            .blocks()
            .filter(|block| block.identifier() == "variable")
        {
            let Some(name) = block
                .labels()
                .first()
                .map(|label| label.as_str().to_owned())
            else {
                continue;
            };
            let has_default = block
                .body()
                .attributes()
                .any(|attr| attr.key() == "default");
            if has_default || name.starts_with("coder_") {
                continue;
            }
            let type_text = block
                .body()
                .attributes()
                .find(|attr| attr.key() == "type")
                .map(|attr| attr.expr().to_string())
                .unwrap_or_default();
            placeholders.push((name, placeholder(&type_text)));
        }
    }
    placeholders
}

fn placeholder(type_text: &str) -> String {
    let type_text = type_text.trim();
    let value = if type_text == "number" {
        "0"
    } else if type_text == "bool" {
        "false"
    } else if ["list(", "set(", "tuple("]
        .iter()
        .any(|kind| type_text.starts_with(kind))
    {
        "[]"
    } else if ["map(", "object("]
        .iter()
        .any(|kind| type_text.starts_with(kind))
    {
        "{}"
    } else {
        ""
    };
    value.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_variables_get_typed_placeholders() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("main.tf"),
            r#"
variable "coder_agent_token" { type = string }
variable "region" { type = string }
variable "cpus" { type = number }
variable "gpu" { type = bool }
variable "ports" { type = list(number) }
variable "labels" { type = map(string) }
variable "untyped" {}
variable "has_default" {
  type    = string
  default = "x"
}
"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("broken.tf"), "variable \"x\" {").unwrap();
        let got = required_placeholders(dir.path());
        let got: Vec<(&str, &str)> = got.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("region", ""),
                ("cpus", "0"),
                ("gpu", "false"),
                ("ports", "[]"),
                ("labels", "{}"),
                ("untyped", ""),
            ]
        );
    }
}
