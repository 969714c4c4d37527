#!/usr/bin/env bash
# A private PulseAudio daemon with one null sink, for real-stream tests and development on machines with no
# sound card (containers, CI), also as root and without D-Bus.
#
#   scripts/pulse-null-sink.sh start|stop|status
#
# The sink `spine_null` (16 kHz mono) is the default sink, and its monitor is the default source, so what a
# client plays is what it records. PortAudio reaches it through the ALSA `pulse` device (libasound2-plugins).
#
# Everything lives in $SPINE_PULSE_DIR (default /tmp/spine-pulse-$UID): the socket, the pid file, the state
# and the daemon's log (pulse.log), so it never touches a desktop session's PulseAudio or the home directory.
# `start` prints on stdout the environment a client needs, so this works:
#     eval "$(scripts/pulse-null-sink.sh start)"
# Everything else it says goes to stderr. `start` and `stop` are idempotent; `status` exits 3 when stopped.
set -euo pipefail

usage() { echo "usage: $0 start|stop|status" >&2; exit 2; }
[[ $# -eq 1 ]] || usage

dir=${SPINE_PULSE_DIR:-/tmp/spine-pulse-$(id -u)}
SINK=spine_null

# The daemon and its clients find each other through these. XDG_CONFIG_HOME/PULSE_STATE_PATH keep the
# daemon's cookie and state out of $HOME. The socket path must stay under 108 bytes (a Unix socket limit).
export XDG_RUNTIME_DIR=$dir
export PULSE_RUNTIME_PATH=$dir/pulse
export PULSE_STATE_PATH=$dir/state
export PULSE_SERVER=unix:$dir/pulse/native

say() { echo "pulse-null-sink: $*" >&2; }

running() { pulseaudio --check 2>/dev/null; }

pid() { cat "$PULSE_RUNTIME_PATH/pid" 2>/dev/null || true; }

print_env() {
  echo "export PULSE_SERVER=$PULSE_SERVER PULSE_RUNTIME_PATH=$PULSE_RUNTIME_PATH XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR"
}

ensure_sink() {
  if ! pactl list short sinks | awk '{print $2}' | grep -qx "$SINK"; then
    pactl load-module module-null-sink sink_name=$SINK rate=16000 channels=1 norewinds=1 \
      sink_properties=device.description=Spine_null_sink >/dev/null
    say "loaded the null sink $SINK"
  fi
  pactl set-default-sink $SINK
  pactl set-default-source $SINK.monitor
}

start() {
  command -v pulseaudio >/dev/null || { say "pulseaudio is not installed: run scripts/setup.sh"; exit 1; }
  mkdir -p -m 700 "$dir" "$PULSE_RUNTIME_PATH" "$PULSE_STATE_PATH"
  if running; then
    say "already running (pid $(pid)) in $dir"
  else
    # As root PulseAudio warns "not intended to be run as root" but runs in user mode with --system=no.
    # -n: no default.pa (it would probe sound cards and D-Bus); load only the null sink and the native
    # socket (anonymous auth: the socket sits in a 0700 directory, and clients then need no cookie).
    # --exit-idle-time=-1: stay up with no clients; --disallow-exit: clients cannot stop it, only `stop`.
    XDG_CONFIG_HOME=$dir/config pulseaudio --daemonize=yes --system=no --exit-idle-time=-1 --disallow-exit \
      -n --use-pid-file=yes --log-target="newfile:$dir/pulse.log" \
      --load="module-null-sink sink_name=$SINK rate=16000 channels=1 norewinds=1 sink_properties=device.description=Spine_null_sink" \
      --load="module-native-protocol-unix auth-anonymous=1" \
      || { say "pulseaudio failed to start; its log ($dir/pulse.log):"; cat "$dir/pulse.log" >&2 || true; exit 1; }
    for _ in $(seq 50); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done
    pactl info >/dev/null 2>&1 || { say "pulseaudio started but does not answer; log:"; cat "$dir/pulse.log" >&2; exit 1; }
    say "started PulseAudio (pid $(pid)) in $dir, log in $dir/pulse.log"
  fi
  ensure_sink
  say "default sink $SINK (16 kHz mono), default source $SINK.monitor (records what is played)"
  print_env
}

stop() {
  if ! running; then
    say "not running (in $dir)"
    return 0
  fi
  local p; p=$(pid)
  pulseaudio --kill
  for _ in $(seq 50); do running || break; sleep 0.1; done
  if running; then
    kill -9 "$p" 2>/dev/null || true
    say "PulseAudio (pid $p) did not stop on SIGTERM: killed it"
  else
    say "stopped PulseAudio (pid $p) in $dir"
  fi
}

status() {
  if running; then
    say "running (pid $(pid)) in $dir"
    pactl info | grep -E '^(Server String|Server Version|Default Sink|Default Source):' >&2
    print_env
  else
    say "not running (in $dir)"
    exit 3
  fi
}

case $1 in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac
