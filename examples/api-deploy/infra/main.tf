# A stand-in for a real API stack: terraform_data resources need no cloud account, so the
# example plans and applies anywhere Terraform runs.
terraform {
  required_version = ">= 1.4"
}

variable "environment" {
  type        = string
  description = "staging or production"
}

variable "replicas" {
  type    = number
  default = 2
}

resource "terraform_data" "api" {
  input = {
    environment = var.environment
    replicas    = var.replicas
  }
}

resource "terraform_data" "dns" {
  input = "api.${var.environment}.example.internal"
}

variable "endpoint" {
  type        = string
  default     = ""
  description = "Where the API answers; empty: https://api.<environment>.example.internal. Set TF_VAR_endpoint on the agent to point the health check elsewhere (a local stand-in)."
}

output "api_endpoint" {
  value = var.endpoint != "" ? var.endpoint : "https://${terraform_data.dns.output}"
}
