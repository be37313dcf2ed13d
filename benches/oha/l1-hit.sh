#!/usr/bin/env bash
# oha load test, scenario l1-hit (see benches/oha/run.py). Options: --duration 15s --connections 8
exec python3 "$(dirname "$0")/run.py" l1-hit "$@"
