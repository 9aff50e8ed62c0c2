# A workspace as a Kubernetes pod with a persistent volume claim for /home/coder. The agent
# token reaches the pod through a Secret, never the pod spec. The image must have the `coder`
# binary on its PATH. Needs the hashicorp/kubernetes provider (from the registry, or a mirror
# in air-gapped installs); with an empty kubeconfig it uses the in-cluster service account.

terraform {
  required_version = ">= 1.4"
  required_providers {
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.23"
    }
  }
}

variable "coder_access_url" {
  type        = string
  description = "Where the agent reaches the server; must be reachable from the pod."
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

variable "namespace" {
  type        = string
  default     = "coder-workspaces"
  description = "The namespace workspaces run in."
}

variable "kubeconfig" {
  type        = string
  default     = ""
  description = "A kubeconfig path; empty uses the provisioner's in-cluster credentials."
}

variable "image" {
  type        = string
  default     = "coder-workspace:latest"
  description = "A Linux image with the coder binary on its PATH."
}

variable "home_size" {
  type        = string
  default     = "10Gi"
  description = "The size of the home volume."
}

provider "kubernetes" {
  config_path = var.kubeconfig == "" ? null : var.kubeconfig
}

locals {
  name = "coder-${lower(var.coder_workspace_owner)}-${lower(var.coder_workspace_name)}"
  labels = {
    "app.kubernetes.io/name"     = "coder-workspace"
    "app.kubernetes.io/instance" = local.name
  }
}

# Persistent: survives stop, goes with the workspace.
resource "kubernetes_persistent_volume_claim_v1" "home" {
  metadata {
    name      = "${local.name}-home"
    namespace = var.namespace
    labels    = local.labels
  }
  wait_until_bound = false
  spec {
    access_modes = ["ReadWriteOnce"]
    resources {
      requests = {
        storage = var.home_size
      }
    }
  }
}

# The token of this build, readable only by what may read Secrets in the namespace.
resource "kubernetes_secret_v1" "agent" {
  count = var.coder_workspace_start_count
  metadata {
    name      = "${local.name}-agent"
    namespace = var.namespace
    labels    = local.labels
  }
  data = {
    token = var.coder_agent_token
  }
}

# Ephemeral: the pod exists only while the workspace is started.
resource "kubernetes_pod_v1" "workspace" {
  count = var.coder_workspace_start_count
  metadata {
    name      = local.name
    namespace = var.namespace
    labels    = local.labels
  }
  spec {
    security_context {
      run_as_user = 1000
      fs_group    = 1000
    }
    container {
      name    = "dev"
      image   = var.image
      command = ["coder", "agent"]
      env {
        name  = "CODER_AGENT_URL"
        value = var.coder_access_url
      }
      env {
        name = "CODER_AGENT_TOKEN"
        value_from {
          secret_key_ref {
            name = kubernetes_secret_v1.agent[0].metadata[0].name
            key  = "token"
          }
        }
      }
      volume_mount {
        name       = "home"
        mount_path = "/home/coder"
      }
    }
    volume {
      name = "home"
      persistent_volume_claim {
        claim_name = kubernetes_persistent_volume_claim_v1.home.metadata[0].name
      }
    }
  }
}

output "coder_agent" {
  value = {
    dir            = "/home/coder"
    startup_script = "echo \"workspace ${var.coder_workspace_name} is ready\""
  }
}
