#!/usr/bin/env bash
# oha load test, scenario zipf (see benches/oha/run.py). Options: --duration 15s --connections 8
exec python3 "$(dirname "$0")/run.py" zipf "$@"
