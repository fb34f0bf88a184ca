#!/usr/bin/env bash
# AIMS Monitor quickstart: builds the binaries, then runs a collector (embedded SQLite), an agent
# for the example credit-scoring model and the simulator, whose traffic turns biased and drifted
# after a minute. Ctrl-C stops all three in order (simulator, agent, collector) and exits 0.
#
# Everything lives in a data folder this script owns (wiped at each start) and on loopback ports.
# Environment overrides (defaults in brackets):
#   AIMS_QUICKSTART_COLLECTOR_PORT [9470]   AIMS_QUICKSTART_AGENT_PORT [9464]
#   AIMS_QUICKSTART_DATA [data/quickstart]  AIMS_QUICKSTART_SWITCH_AFTER [60s]
#   AIMS_QUICKSTART_RATE [200] events/s     AIMS_QUICKSTART_WINDOW [10s] agent window length
#   AIMS_QUICKSTART_EVALUATION_INTERVAL [5s]
#   AIMS_QUICKSTART_BIN_DIR: use the aims-agent and aims-collector binaries found there instead
#                            of running `cargo build --release` (the tests use their own build).
#
# The whole script is one function called on the last line, so bash has read all of it before
# anything runs: editing or pulling a new version while it runs cannot derail it.
set -euo pipefail

say() { printf 'quickstart: %s\n' "$*"; }
die() { printf 'quickstart: error: %s\n' "$*" >&2; exit 1; }

# True when something accepts connections on 127.0.0.1:$1 (bash's /dev/tcp: no curl needed).
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

stopping=0
collector_pid=
agent_pid=
simulator_pid=

# Waits until port $2 listens, or fails when process $1 exits, Ctrl-C arrives or 60 s pass.
# `sleep & wait` keeps the script responsive to signals while it waits.
wait_listening() {
  local pid=$1 port=$2 name=$3 tries=0
  until listening "$port"; do
    kill -0 "$pid" 2>/dev/null || return 1
    [ "$stopping" = 0 ] || return 1
    tries=$((tries + 1))
    if [ "$tries" -gt 600 ]; then
      say "$name did not listen on port $port within 60 s"
      return 1
    fi
    sleep 0.1 & wait $! || true
  done
}

# Stops process $2 (named $1) with SIGTERM, waiting up to 20 s before SIGKILL. Fails when it
# does not exit with status 0.
stop() {
  local name=$1 pid=$2 tries=0 status=0
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -gt 200 ]; then
      say "$name ignored SIGTERM for 20 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    sleep 0.1
  done
  wait "$pid" || status=$?
  if [ "$status" -ne 0 ]; then
    say "$name exited with status $status (log: $logs/$name.log)"
    return 1
  fi
  say "$name stopped"
}

# Stops all three in order and exits: 0 when each stopped cleanly, else 1 (or $1 when given).
shutdown() {
  local ok=${1:-0}
  trap '' INT TERM
  say "stopping"
  stop simulator "$simulator_pid" || ok=1
  simulator_pid=
  stop agent "$agent_pid" || ok=1
  agent_pid=
  stop collector "$collector_pid" || ok=1
  collector_pid=
  exit "$ok"
}

# On any other way out (an unexpected error under `set -e`), leave no process behind.
# shellcheck disable=SC2317  # called by the EXIT trap
leftovers() {
  local pid
  for pid in "$simulator_pid" "$agent_pid" "$collector_pid"; do
    if [ -n "$pid" ]; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
}

main() {
  cd "$(dirname "$0")"
  local collector_port=${AIMS_QUICKSTART_COLLECTOR_PORT:-9470}
  local agent_port=${AIMS_QUICKSTART_AGENT_PORT:-9464}
  local data=${AIMS_QUICKSTART_DATA:-data/quickstart}
  # Paths in the binaries' configuration resolve against the configuration file's folder, so
  # the ones passed through the environment are made absolute.
  case $data in /*) ;; *) data=$PWD/$data ;; esac
  local switch_after=${AIMS_QUICKSTART_SWITCH_AFTER:-60s}
  local rate=${AIMS_QUICKSTART_RATE:-200}
  local window=${AIMS_QUICKSTART_WINDOW:-10s}
  local interval=${AIMS_QUICKSTART_EVALUATION_INTERVAL:-5s}
  local bin port name pid_var

  if [ -n "${AIMS_QUICKSTART_BIN_DIR:-}" ]; then
    bin=$AIMS_QUICKSTART_BIN_DIR
  else
    say "building (cargo build --release; the first build takes a few minutes)"
    cargo build --release --locked -p aims-agent -p aims-collector
    bin=${CARGO_TARGET_DIR:-target}/release
  fi
  for name in aims-collector aims-agent; do
    [ -x "$bin/$name" ] || die "$bin/$name is missing"
  done
  for port in "$collector_port" "$agent_port"; do
    if listening "$port"; then
      die "port $port is in use; choose others with AIMS_QUICKSTART_COLLECTOR_PORT / AIMS_QUICKSTART_AGENT_PORT"
    fi
  done

  rm -rf "$data"
  mkdir -p "$data/logs"
  logs=$data/logs
  local collector_url=http://127.0.0.1:$collector_port
  local agent_url=http://127.0.0.1:$agent_port

  # Each child gets its own process group (job control), so a Ctrl-C at the terminal reaches
  # only this script, which then stops the children in order: the agent ships its last windows
  # to a collector that is still up.
  set -m
  trap 'stopping=1' INT TERM
  trap leftovers EXIT

  AIMS_COLLECTOR__SERVER__LISTEN=127.0.0.1:$collector_port \
  AIMS_COLLECTOR__STORAGE__DATA_DIR=$data/collector \
  AIMS_COLLECTOR__EVALUATION__INTERVAL=$interval \
    "$bin/aims-collector" run --config config/quickstart/collector.toml >"$logs/collector.log" 2>&1 &
  collector_pid=$!
  if ! wait_listening "$collector_pid" "$collector_port" collector; then
    [ "$stopping" = 1 ] && shutdown
    say "the collector did not start; its log:"
    cat "$logs/collector.log" >&2
    shutdown 1
  fi

  AIMS_AGENT__SERVER__LISTEN=127.0.0.1:$agent_port \
  AIMS_AGENT__SHIP__COLLECTOR_URL=$collector_url \
  AIMS_AGENT__REFERENCE__PATH="$PWD/config/examples/profile.json" \
  AIMS_AGENT__WINDOW__LENGTH=$window \
  AIMS_AGENT__WINDOW__GRACE=1s \
  AIMS_AGENT__SPOOL__DIR=$data/agent/spool \
    "$bin/aims-agent" run --config config/agent.toml >"$logs/agent.log" 2>&1 &
  agent_pid=$!
  if ! wait_listening "$agent_pid" "$agent_port" agent; then
    [ "$stopping" = 1 ] && shutdown
    say "the agent did not start; its log:"
    cat "$logs/agent.log" >&2
    shutdown 1
  fi

  "$bin/aims-agent" simulate --target "$agent_url" --rate "$rate" --scenario bias,drift \
    --switch-after "$switch_after" >"$logs/simulator.log" 2>&1 &
  simulator_pid=$!

  cat <<EOF

AIMS Monitor is running: a collector, an agent for the credit-scoring model, and a simulator
sending $rate predictions/s that turn biased against one gender and drifted after $switch_after.

  status page   $collector_url/
  objectives    $collector_url/v1/objectives
  alerts        $collector_url/v1/alerts
  evidence      $collector_url/v1/evidence
  metrics       $collector_url/metrics  (agent: $agent_url/metrics)
  logs          $logs/{collector,agent,simulator}.log
  pids          collector=$collector_pid agent=$agent_pid simulator=$simulator_pid

Objectives are in config/quickstart/objectives.yaml; expect them to fire a minute or two
after the switch. Ctrl-C stops everything.

EOF

  while [ "$stopping" = 0 ]; do
    for name in collector agent simulator; do
      pid_var=${name}_pid
      if ! kill -0 "${!pid_var}" 2>/dev/null; then
        say "$name exited unexpectedly; last lines of $logs/$name.log:"
        tail -n 20 "$logs/$name.log" >&2 || true
        shutdown 1
      fi
    done
    sleep 1 & wait $! || true
  done
  shutdown
}

main "$@"
