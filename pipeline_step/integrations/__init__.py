"""Things outside the registry: CI logs, Jenkins, Slack, disk probes."""
