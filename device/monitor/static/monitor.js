// Spine's monitoring page: one WebRTC peer (no STUN), a data channel of records, two audio tracks on demand.
// Everything shown comes from the daemon's records; the page decides nothing.
"use strict";
const RATE_HZ = 16000;
const MAX_TIMELINE_ITEMS = 600;
const monitor = (window.spineMonitor = {
  state: null, steps: 0, levels: 0, latenciesMs: [], controlResults: [], errors: [], connectMs: null, pc: null,
});
const $ = (id) => document.getElementById(id);
const cutOnsets = new Map(); // epoch cut by a barge-in -> onset sample, to mark onset -> silence
let lastOnset = null;

async function showDiagram() {
  const answer = await fetch("/diagram.svg");
  $("diagram-holder").innerHTML = await answer.text();
  $("diagram-holder").id = "diagram";
  if (monitor.state) light(monitor.state, null);
}

function light(state, from) {
  document.querySelectorAll("#diagram .state.live").forEach((g) => g.classList.remove("live"));
  const box = document.getElementById("state-" + state);
  if (box) box.classList.add("live");
  if (from && from !== state) {
    document.querySelectorAll("#diagram .edge.recent").forEach((e) => e.classList.remove("recent"));
    const edge = document.getElementById(`edge-${from}-${state}`);
    if (edge) edge.classList.add("recent");
  }
  $("state").textContent = state;
}

function addLine(text, cls) {
  const list = $("timeline");
  const item = document.createElement("li");
  item.textContent = text;
  if (cls) item.className = cls;
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.appendChild(item);
  while (list.children.length > MAX_TIMELINE_ITEMS) list.removeChild(list.firstChild);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function brief(value) {
  const { type, ...fields } = value;
  const shown = Object.entries(fields).map(([k, v]) => `${k}=${typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v)}`);
  return `${type}(${shown.join(", ").slice(0, 160)})`;
}

function onStep(step, live) {
  monitor.steps += 1;
  const event = step.event;
  const commands = step.commands.filter((c) => c.type !== "NoteIgnored");
  const ignored = step.commands.find((c) => c.type === "NoteIgnored");
  let line = `${step.t_s.toFixed(2).padStart(7)}s  ${brief(event)}`;
  let cls = ignored ? "ignored" : "";
  if (step.from !== step.state) { line += `   ${step.from} → ${step.state}`; cls = "transition"; }
  if (commands.length) line += "   ⇒ " + commands.map((c) => c.type).join(", ");
  if (ignored) line += `   (ignored: ${ignored.reason})`;
  if (event.type === "VoiceHint" || event.type === "SpeechStarted") lastOnset = event.onset_sample;
  const cut = step.commands.find((c) => c.type === "CutPlayback");
  const speaking = ["Speaking", "Paused", "Announcing"].includes(step.from);
  if (cut && speaking && ["SpeechStarted", "WakeDetected"].includes(event.type)) {
    cutOnsets.set(cut.epoch, event.type === "WakeDetected" ? event.at_sample : lastOnset ?? step.t);
    line += "   BARGE-IN (onset marked)";
    cls = "bargein";
  }
  if (event.type === "PlaybackStopped" && cutOnsets.has(event.epoch)) {
    const onset = cutOnsets.get(event.epoch);
    cutOnsets.delete(event.epoch);
    line += `   silence: onset → silence ${Math.round(((step.t - onset) * 1000) / RATE_HZ)} ms`;
    cls = "bargein";
  }
  addLine(line, cls);
  if (event.type === "SpeechStarted" && step.state === "Hearing") { $("transcript").textContent = "…"; $("reply").textContent = ""; $("heard").textContent = ""; }
  if (event.type === "TranscriptReady") $("transcript").textContent = event.text || "(nothing)";
  if (event.type === "ReplyDelta") $("reply").textContent += event.text;
  const heard = step.commands.find((c) => c.type === "CommitHeard");
  if (heard) $("heard").textContent = heard.heard_text + (heard.interrupted ? "  (interrupted)" : "");
  const gate = event.type === "VoiceGateChanged" ? event.detector : null;
  if (gate) monitor.voiceGate = gate;
  const breaker = step.commands.find((c) => c.type === "VoiceBargeIn");
  if (breaker) monitor.voiceSuspended = !breaker.enabled;
  const armed = (monitor.voiceGate ?? "none") !== "none" && !monitor.voiceSuspended;
  $("armed").textContent = "voice barge-in " + (armed ? "armed" : "off");
  $("armed").className = "pill " + (armed ? "ok" : "bad");
  monitor.state = step.state;
  light(step.state, step.from);
  if (live) monitor.latenciesMs.push(performance.timeOrigin + performance.now() - step.observed_unix_ms);
}

function onLevels(levels) {
  monitor.levels += 1;
  for (const [name, value] of [["mic", levels.mic_dbfs], ["cleaned", levels.cleaned_dbfs], ["speaker", levels.speaker_dbfs]]) {
    $("m-" + name).value = value;
    $("v-" + name).textContent = value <= -99 ? "–" : value.toFixed(0) + " dB";
  }
  $("m-vad").value = levels.vad_probability; $("v-vad").textContent = levels.vad_probability.toFixed(2);
  $("m-wake").value = levels.wake_score; $("v-wake").textContent = levels.wake_score.toFixed(2);
  $("v-erle").textContent = levels.erle_db === null ? "–" : levels.erle_db.toFixed(1);
}

function onMessage(text) {
  const message = JSON.parse(text);
  switch (message.kind) {
    case "hello":
      $("access").textContent = message.access + (message.control ? " + control" : "");
      $("control").hidden = !message.control;
      for (const step of message.history) onStep(step, false);
      monitor.state = message.state;
      light(message.state, null);
      break;
    case "step": onStep(message, true); break;
    case "levels": onLevels(message); break;
    case "control_result":
      monitor.controlResults.push(message);
      $("control-result").textContent = message.ok ? `sent ${message.event}` : message.error;
      break;
    case "listen_result": $("listen").textContent = message.on ? "Stop listening" : "Listen (cleaned mic + speaker)"; break;
    case "error": monitor.errors.push(message.error); addLine("monitor: " + message.error, "error"); break;
  }
}

async function connect() {
  const began = performance.now();
  const pc = (monitor.pc = new RTCPeerConnection({ iceServers: [] }));
  const channel = (monitor.channel = pc.createDataChannel("monitor"));
  channel.onmessage = (e) => onMessage(e.data);
  channel.onopen = () => { monitor.connectMs = performance.now() - began; $("connection").textContent = "live"; $("connection").className = "pill ok"; };
  channel.onclose = () => { $("connection").textContent = "closed"; $("connection").className = "pill bad"; };
  const players = [$("audio-cleaned"), $("audio-speaker")];
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.ontrack = (e) => { const i = pc.getTransceivers().indexOf(e.transceiver); if (players[i]) players[i].srcObject = new MediaStream([e.track]); };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    if (pc.iceGatheringState === "complete") return done();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && done();
  });
  const answer = await fetch("/offer", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }) });
  if (!answer.ok) { const why = (await answer.json()).error; monitor.errors.push(why); addLine("monitor: " + why, "error"); return; }
  await pc.setRemoteDescription(await answer.json());
}

let listening = false;
$("listen").onclick = () => { listening = !listening; monitor.channel.send(JSON.stringify({ type: "listen", on: listening })); players().forEach((p) => p.play()); };
const players = () => [$("audio-cleaned"), $("audio-speaker")];
const control = (message) => monitor.channel.send(JSON.stringify(message));
monitor.control = control;
$("say").onclick = () => control({ type: "say", text: $("say-text").value });
$("mute").onclick = () => control({ type: "mute", muted: true });
$("unmute").onclick = () => control({ type: "mute", muted: false });
$("barge").onclick = () => control({ type: "barge_in" });
window.addEventListener("pagehide", () => monitor.pc && monitor.pc.close()); // frees the peer at once
showDiagram().then(connect);
