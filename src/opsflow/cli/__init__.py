"""The ``opsflow`` command line: offline checks plus a thin HTTP client of the server's API."""
