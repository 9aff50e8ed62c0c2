resource "terraform_data" "oops" {
  input = "no closing brace"
