#!/usr/bin/env bash
# A private PulseAudio daemon with one null sink, for real-stream tests and development on machines with no
# sound card (containers, CI), also as root and without D-Bus.
#
#   scripts/pulse-null-sink.sh start [--room]|stop|status
#
# The sink `spine_null` (16 kHz mono) is the default sink, and its monitor is the default source, so what a
# client plays is what it records. PortAudio reaches it through the ALSA `pulse` device (libasound2-plugins).
#
# `start --room` also builds a room whose user and assistant can be told apart (the real-stream suite,
# device/bench/realstream.py), and makes it the default instead of spine_null:
#   spine_room     a stereo 48 kHz float null sink: left is what the assistant plays, right is the user's voice
#                  (float, so a loud sum never clips before the mic; record its monitor to see both apart)
#   spine_speaker  the default sink: mono, into the room's left channel only
#   spine_user     mono, into the room's right channel only (play the user's voice here)
#   spine_mic      the default source: the room's monitor at +6.02 dB, so the mono mix a client records,
#                  (left + right) / 2 by PulseAudio's downmix, is left + right - speaker and user at 0 dB
#
# Everything lives in $SPINE_PULSE_DIR (default /tmp/spine-pulse-$UID): the socket, the pid file, the state
# and the daemon's log (pulse.log), so it never touches a desktop session's PulseAudio or the home directory.
# `start` prints on stdout the environment a client needs, so this works:
#     eval "$(scripts/pulse-null-sink.sh start)"
# Everything else it says goes to stderr. `start` and `stop` are idempotent; `status` exits 3 when stopped.
set -euo pipefail

usage() { echo "usage: $0 start [--room]|stop|status" >&2; exit 2; }
[[ $# -eq 1 || ( $# -eq 2 && $1 == start && $2 == --room ) ]] || usage
room=${2:-}

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

has_sink() { pactl list short sinks | awk '{print $2}' | grep -qx "$1"; }

ensure_room() {
  has_sink spine_room || pactl load-module module-null-sink sink_name=spine_room rate=48000 channels=2 \
    format=float32le norewinds=1 sink_properties=device.description=Spine_room >/dev/null
  has_sink spine_speaker || pactl load-module module-remap-sink sink_name=spine_speaker master=spine_room \
    channels=1 channel_map=mono master_channel_map=front-left remix=no >/dev/null
  has_sink spine_user || pactl load-module module-remap-sink sink_name=spine_user master=spine_room \
    channels=1 channel_map=mono master_channel_map=front-right remix=no >/dev/null
  pactl list short sources | awk '{print $2}' | grep -qx spine_mic \
    || pactl load-module module-remap-source source_name=spine_mic master=spine_room.monitor >/dev/null
  # PulseAudio volumes are cubic: 65536 * 2^(1/3) = 82570 is a linear gain of 2 (+6.02 dB), which undoes the
  # halving of the stereo-to-mono downmix.
  pactl set-source-volume spine_mic 82570
  pactl set-default-sink spine_speaker
  pactl set-default-source spine_mic
  say "room: default sink spine_speaker (left of spine_room), user sink spine_user (right), default source spine_mic"
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
  if [[ $room == --room ]]; then
    ensure_room
  else
    say "default sink $SINK (16 kHz mono), default source $SINK.monitor (records what is played)"
  fi
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
