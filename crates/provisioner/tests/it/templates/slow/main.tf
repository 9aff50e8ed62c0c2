variable "coder_workspace_start_count" {
  type = number
}

resource "terraform_data" "slow" {
  count = var.coder_workspace_start_count

  provisioner "local-exec" {
    command = "echo sleeping; sleep 120"
  }
}
