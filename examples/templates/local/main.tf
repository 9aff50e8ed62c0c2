# A workspace on the provisioner's own machine: a home directory per workspace, and the agent
# running as a background process while the workspace is started. It needs no provider
# download, so it works offline and in air-gapped installs. The provisioner passes the coder_*
# variables; see "The template contract" in the repository's README.

terraform {
  required_version = ">= 1.4"
}

variable "coder_access_url" {
  type        = string
  description = "Where the agent reaches the server (set by the provisioner)."
}

variable "coder_agent_token" {
  type        = string
  sensitive   = true
  description = "This build's agent token (set by the provisioner)."
}

variable "coder_workspace_owner" {
  type = string
}

variable "coder_workspace_name" {
  type = string
}

variable "coder_workspace_start_count" {
  type        = number
  description = "1 while the workspace is started, 0 when it is stopped."
}

variable "workspaces_dir" {
  type        = string
  default     = "/tmp/coder-workspaces"
  description = "Directory under which each workspace gets owner/name/."
}

variable "agent_binary" {
  type        = string
  default     = "coder"
  description = "The coder binary the agent runs from (a path, or a name on PATH)."
}

locals {
  root = "${var.workspaces_dir}/${var.coder_workspace_owner}/${var.coder_workspace_name}"
}

# Persistent: the home directory survives stop and goes only when the workspace is deleted.
resource "terraform_data" "home" {
  input = local.root

  provisioner "local-exec" {
    command = "mkdir -p '${self.input}/home'"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "rm -rf '${self.input}'"
  }
}

# Ephemeral: the agent runs only while the workspace is started.
resource "terraform_data" "agent" {
  count      = var.coder_workspace_start_count
  depends_on = [terraform_data.home]
  input = {
    root    = local.root
    pidfile = "${local.root}/agent.pid"
  }

  provisioner "local-exec" {
    command = "cd '${self.input.root}/home' && nohup '${var.agent_binary}' agent >'${self.input.root}/agent.log' 2>&1 & echo $! >'${self.input.pidfile}'"
    environment = {
      CODER_AGENT_URL   = var.coder_access_url
      CODER_AGENT_TOKEN = var.coder_agent_token
    }
  }

  provisioner "local-exec" {
    when    = destroy
    command = "if [ -f '${self.input.pidfile}' ]; then kill \"$(cat '${self.input.pidfile}')\" 2>/dev/null; rm -f '${self.input.pidfile}'; fi"
  }
}

output "coder_agent" {
  value = {
    dir            = "${local.root}/home"
    startup_script = "echo \"workspace ${var.coder_workspace_name} is ready\""
    env = {
      CODER_WORKSPACE_HOME = "${local.root}/home"
    }
  }
}
