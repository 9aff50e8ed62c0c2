# Creates one resource, then fails on the next: the apply fails part way.
resource "terraform_data" "made" {
  input = "kept in the state"
}

resource "terraform_data" "fails" {
  depends_on = [terraform_data.made]

  provisioner "local-exec" {
    command = "echo failing on purpose; exit 3"
  }
}
