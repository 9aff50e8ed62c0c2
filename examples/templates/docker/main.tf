# A workspace in a Docker container on the provisioner's Docker host, with a persistent volume
# for /home/coder. The image must have the `coder` binary on its PATH: the container's command
# is `coder agent`. Needs the kreuzwerker/docker provider (from the registry, or a mirror in
# air-gapped installs).

terraform {
  required_version = ">= 1.4"
  required_providers {
    docker = {
      source  = "kreuzwerker/docker"
      version = "~> 3.0"
    }
  }
}

variable "coder_access_url" {
  type        = string
  description = "Where the agent reaches the server; must be reachable from inside the container."
}

variable "coder_agent_token" {
  type      = string
  sensitive = true
}

variable "coder_workspace_owner" {
  type = string
}

variable "coder_workspace_name" {
  type = string
}

variable "coder_workspace_start_count" {
  type = number
}

variable "image" {
  type        = string
  default     = "coder-workspace:latest"
  description = "A Linux image with the coder binary on its PATH and a 'coder' user."
}

variable "docker_host" {
  type        = string
  default     = "unix:///var/run/docker.sock"
  description = "The Docker daemon the provisioner uses."
}

provider "docker" {
  host = var.docker_host
}

locals {
  name = "coder-${lower(var.coder_workspace_owner)}-${lower(var.coder_workspace_name)}"
}

# Persistent: survives stop, goes with the workspace.
resource "docker_volume" "home" {
  name = "${local.name}-home"
}

# Ephemeral: the container exists only while the workspace is started.
resource "docker_container" "workspace" {
  count    = var.coder_workspace_start_count
  image    = var.image
  name     = local.name
  hostname = var.coder_workspace_name
  command  = ["coder", "agent"]
  user     = "coder"
  env = [
    "CODER_AGENT_URL=${var.coder_access_url}",
    "CODER_AGENT_TOKEN=${var.coder_agent_token}",
  ]

  # Lets an access URL on the Docker host be reached as host.docker.internal.
  host {
    host = "host.docker.internal"
    ip   = "host-gateway"
  }

  volumes {
    container_path = "/home/coder"
    volume_name    = docker_volume.home.name
  }
}

output "coder_agent" {
  value = {
    dir            = "/home/coder"
    startup_script = "echo \"workspace ${var.coder_workspace_name} is ready\""
  }
}
