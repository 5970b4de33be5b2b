"""Triggers turn outside events into executions: schedules (``schedule``, ``cron``), webhooks,
git pushes and polls, incidents. Each type reads its events its own way and ends in the one
start path, `opsflow.triggers.fire.fire`; ``sync`` keeps the ``triggers`` table in line with
each published version."""
