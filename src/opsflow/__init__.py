"""opsflow: durable DAG workflows for operations teams."""

__version__ = "0.1.0"
