# A test template: a persistent "home" directory that survives stop, an ephemeral "running"
# marker that exists only while the workspace is started, and the agent's settings.

variable "coder_workspace_name" {
  type = string
}

variable "coder_workspace_start_count" {
  type = number
}

variable "root" {
  type        = string
  default     = "/tmp/coder-provisioner-test"
  description = "Where workspaces live"
}

variable "greeting" {
  type        = string
  default     = "hello"
  description = "Written into the running marker"
}

locals {
  dir = "${var.root}/${var.coder_workspace_name}"
}

resource "terraform_data" "home" {
  input = local.dir

  provisioner "local-exec" {
    command = "mkdir -p '${self.input}/home'"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "rm -rf '${self.input}'"
  }
}

resource "terraform_data" "running" {
  count      = var.coder_workspace_start_count
  depends_on = [terraform_data.home]
  input      = local.dir

  provisioner "local-exec" {
    command = "echo '${var.greeting}' > '${self.input}/running'"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "rm -f '${self.input}/running'"
  }
}

output "coder_agent" {
  value = {
    startup_script = "echo started"
    dir            = "${local.dir}/home"
    env            = { GREETING = var.greeting }
    apps = [{
      slug         = "web"
      display_name = "Web"
      url          = "http://localhost:8000"
      healthcheck  = { url = "http://localhost:8000/", interval = 5, threshold = 3 }
    }]
  }
}
