# The edge stack of one region. terraform_data keeps the example runnable without a cloud
# account; a real stack would declare load balancers and DNS here.
terraform {
  required_version = ">= 1.4"
}

variable "region" {
  type = string
}

variable "release" {
  type = string
}

variable "edge_nodes" {
  type    = number
  default = 2
}

resource "terraform_data" "edge" {
  count = var.edge_nodes
  input = {
    name    = "edge-${var.region}-${count.index}"
    release = var.release
  }
}

output "edge_nodes" {
  value = [for node in terraform_data.edge : node.output.name]
}
