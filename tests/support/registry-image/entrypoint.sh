#!/bin/sh
# registry:2's entrypoint: a config file means "serve it"; a subcommand runs the registry with it.
set -e
case "$1" in
  *.yaml|*.yml) set -- registry serve "$@" ;;
  serve|garbage-collect|help|-*) set -- registry "$@" ;;
esac
exec "$@"
