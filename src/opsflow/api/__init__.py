"""The HTTP API: validate, authorize, call the store or runtime, shape the response."""
