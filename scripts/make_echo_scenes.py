"""Writes the echo scene suite, scenes/echo/*.toml (run: `python scripts/make_echo_scenes.py`).

The files are committed; this script is how they were made and how to change them all at once. It is
deterministic: the same arguments write the same bytes. Two sets:

* talk-over: the user talks over an answer at a swept onset, 0.3, 0.7, 1.5, 3 and 6 s into it, in two scene
  classes: `cold` (the first answer after start: nothing has played before it, the echo canceller has learnt
  nothing) and `warm` (the user asks "what time is it?", hears the short answer, then asks for the story and
  talks over that). Every (class, onset) cell holds the same eight talk-overs: the four stop phrases, two
  wake word + question, two questions without the wake word (speech barge-in). Levels, delays, RT60, noise
  and voices rotate through their ranges so that every cell covers every echo level and each kind of
  talk-over meets different rooms in different cells.
* echo-only: the same two classes with nobody talking over the story. Every pause or cut in them is a false
  barge-in (the assistant interrupting itself).

Hard rooms (`--hard-rooms`, the default once `HARD_ROOMS` is set): a share of both sets also gets clock
drift between mic and speaker, an echo delay jump (one period dropped or repeated), a soft-clipping speaker or
a stall of the FSM thread, timed inside the answer. They need the scene keys `[room] drift_ppm`,
`[room] speaker_clip_dbfs`, `[[room.delay_jumps]]` and `[[stall]]`; without them the files use none of these.

Moved paths (scenes/echo-moved/, apart from the suite: a known gap, not yet a target): under load a sound server
moves the echo tens of milliseconds later with no xrun reported (measured: 5-130 ms per move), most often in the
quiet before an answer; the tracked delay is then stale when the answer starts. These scenes move the echo 40-100 ms
later in the quiet before the story, then play it with nobody talking (echo only) or talk over it early (0.3-1.5
s). `spine bench echo --scenes scenes/echo-moved --no-compare --report docs/echo-moved.md` measures them.

Levels: espeak-ng speech and the Piper voice both measure about -19 dBFS while voiced, and the room's impulse
response has unit energy, so the echo at the mic relative to the user is close to `echo_gain_db - gain_db`.
The suite's report measures it per talk-over from the card's separate user and echo tracks.

Sizing: the whole suite (AEC on) must run in 10 minutes on 2 cores, at about 0.45 s of CPU per second of scene
plus ~2 s per scene to load the models; so scenes end a few seconds after the talk-over has been decided.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "scenes" / "echo"
OUT_MOVED = OUT.with_name("echo-moved")
ASK_STORY = "Hey Jarvis. Tell me a story."
ASK_SHORT = "Hey Jarvis. What time is it?"
USER_GAIN_DB = -6.0
ONSETS_S = (0.3, 0.7, 1.5, 3.0, 6.0)
CLASSES = ("cold", "warm")

# The user's first request comes after the daemon's 1.2 s start-up sound (the canceller's first lesson about
# the room): a "Hey Jarvis" spoken over it at 1.0 s went unheard. Its wake word is a wake word, not a barge-in.
FIRST_ASK_S = 2.0
# When the story starts, roughly: asked at 2.0 s it plays from about 5.4 s (cold); after the short answer
# ("It's 9:41 AM.") and the request that follows it, from about 10.5 s (warm; up to 3 s later when the short
# question was misheard and answered at length). Only used to time the hard-room events inside the answer and
# to size the scenes.
STORY_STARTS_S = {"cold": 5.4, "warm": 10.5}
# A scene runs until this long after the scripted talk-over's latest possible end: endpointing (0.7 s), the
# transcript and the reply's first audio all fit, so an answer to a stop phrase is seen when there is one.
LONGEST_TALK_OVER_S = 2.5
AFTER_TALK_OVER_S = 4.0
WARM_SLACK_S = 3.0  # the story starts up to 3 s later than the estimate when the short answer was misheard
ECHO_ONLY_S = {"cold": 31.0, "warm": 37.0}

# What the user says over the answer: (kind, text). Stop phrases are the machine's own ("stop", "cancel",
# "never mind"), with and without the wake word.
TALK_OVERS = (
    ("stop", "Stop."),
    ("stop", "Cancel."),
    ("stop", "Never mind."),
    ("stop", "Hey Jarvis, stop."),
    ("wake", "Hey Jarvis. What time is it?"),
    ("wake", "Hey Jarvis. What is the date today?"),
    ("speech", "Sorry, what time is it?"),
    ("speech", "Wait, can you tell me the date?"),
)
# Echo relative to the user at the mic, dB: from 12 dB quieter to 6 dB louder (the range).
LEVELS_DB = (-12.0, -9.0, -6.0, -3.0, 0.0, 2.0, 4.0, 6.0)
DELAYS_MS = (20.0, 40.0, 60.0, 100.0, 150.0, 200.0, 250.0, 300.0)
RT60S_S = (0.2, 0.3, 0.4, 0.5, 0.6)
NOISES_DBFS = (-70.0, -60.0, -60.0, -50.0)
VOICES = ("en-us", "en-gb", "en-us+f3", "en-us+m3", "en-gb+m3", "en-us+f2")
HARD_KINDS = ("drift", "jump", "clip", "stall")
# Whether the committed scenes have hard rooms (the scene keys came after the suite): the default of the flags.
HARD_ROOMS = True


@dataclass(frozen=True)
class Room:
    echo_to_user_db: float
    delay_ms: float
    rt60_s: float
    noise_dbfs: float
    seed: int
    hard: tuple[str, ...] = ()
    hard_at_s: float = 0.0
    hard_sign: float = 1.0
    move_ms: float = 0.0  # an unreported move of the echo in the quiet before the story (at `move_at_s`)
    move_at_s: float = 0.0

    def toml(self) -> str:
        text = (
            "[room]\n"
            f"echo_delay_ms = {self.delay_ms}\n"
            f"echo_gain_db = {self.echo_to_user_db + USER_GAIN_DB}\n"
            f"rt60_s = {self.rt60_s}\n"
            f"noise_dbfs = {self.noise_dbfs}\n"
            f"seed = {self.seed}\n"
        )
        if "drift" in self.hard:
            text += f"drift_ppm = {100.0 * self.hard_sign}\n"  # the mic's clock against the speaker's
        if "clip" in self.hard:
            text += "speaker_clip_dbfs = -6.0\n"  # a small speaker driven into soft clipping
        if "jump" in self.hard:  # one 10 ms period dropped or repeated, as after an xrun
            text += f"\n[[room.delay_jumps]]\nat_s = {self.hard_at_s}\nms = {10.0 * self.hard_sign}\n"
        if "stall" in self.hard:  # the FSM thread held up (a GC pause, a busy core)
            text += f"\n[[stall]]\nat_s = {self.hard_at_s}\nms = {150.0 if self.hard_sign > 0 else 300.0}\n"
        if self.move_ms:
            text += f"\n[[room.delay_jumps]]\nat_s = {self.move_at_s}\nms = {self.move_ms}\n"
        return text

    def describe(self) -> str:
        hard = f", hard: {'+'.join(self.hard)} at {self.hard_at_s} s" if self.hard else ""
        if self.move_ms:
            hard += f", moved {self.move_ms:+g} ms at {self.move_at_s} s (unreported, in the quiet before the story)"
        return (
            f"echo {self.echo_to_user_db:+} dB relative to the user, delay {self.delay_ms} ms, RT60 {self.rt60_s} s,"
            f" noise {self.noise_dbfs} dBFS{hard}"
        )


def say(text: str, voice: str, *, at_s: float | None = None, after: str = "speaking", delay_s: float = 0.0) -> str:
    when = f"at_s = {at_s}\n" if at_s is not None else f'after = "{after}"\ndelay_s = {delay_s}\n'
    return f'\n[[say]]\ntext = "{text}"\nvoice = "{voice}"\ngain_db = {USER_GAIN_DB}\n{when}'


def asks(scene_class: str, voice: str) -> str:
    """The user's requests up to the story: the story alone (cold), or a short question first (warm)."""
    if scene_class == "cold":
        return say(ASK_STORY, voice, at_s=FIRST_ASK_S)
    return say(ASK_SHORT, voice, at_s=FIRST_ASK_S) + say(ASK_STORY, voice, after="silent", delay_s=0.5)


def talk_over_scenes(hard_rooms: bool) -> dict[str, str]:
    files: dict[str, str] = {}
    cell = 0
    for scene_class in CLASSES:
        for onset_s in ONSETS_S:
            hard_in_cell = 0
            for k, (kind, words) in enumerate(TALK_OVERS):
                # Rotations coprime with the list lengths: each cell gets every level and delay once, and the
                # same talk-over meets a different level, delay, room and voice in each cell.
                level = LEVELS_DB[(3 * k + cell) % len(LEVELS_DB)]
                delay = DELAYS_MS[(5 * k + 3 * cell) % len(DELAYS_MS)]
                hard: tuple[str, ...] = ()
                if hard_rooms and (k + cell) % 4 == 0:  # two scenes of eight per cell
                    hard = (HARD_KINDS[(2 * cell + hard_in_cell) % len(HARD_KINDS)],)
                    hard_in_cell += 1
                # Hard events land inside the answer, before the talk-over (or at it, for the earliest onsets).
                room = Room(
                    level,
                    delay,
                    RT60S_S[(k + 2 * cell) % len(RT60S_S)],
                    NOISES_DBFS[(k + cell) % len(NOISES_DBFS)],
                    seed=1000 + 10 * cell + k,
                    hard=hard,
                    hard_at_s=round(STORY_STARTS_S[scene_class] + onset_s / 2, 2),
                    hard_sign=1.0 if (k + cell) % 8 < 4 else -1.0,
                )
                voice = VOICES[(k + cell) % len(VOICES)]
                slack = WARM_SLACK_S if scene_class == "warm" else 0.0
                duration = STORY_STARTS_S[scene_class] + slack + onset_s + LONGEST_TALK_OVER_S + AFTER_TALK_OVER_S
                name = f"{scene_class}_{onset_s:03.1f}s_{k + 1}_{kind}" + (f"_{hard[0]}" if hard else "")
                files[name] = (
                    f"# Talk-over ({scene_class}): {words!r} ({voice}) {onset_s} s into the story"
                    f"{' that follows a short answer' if scene_class == 'warm' else ', the first answer'}.\n"
                    f"# {room.describe()}. Generated by scripts/make_echo_scenes.py.\n\n"
                    + f"duration_s = {round(duration, 1)}\n\n"
                    + room.toml()
                    + asks(scene_class, voice)
                    + say(words, voice, delay_s=onset_s)
                )
            cell += 1
    return files


# (class, echo relative to the user dB, delay ms, RT60 s, noise dBFS, hard-room events)
ECHO_ONLY = (
    ("cold", -12.0, 40.0, 0.3, -60.0, ()),
    ("cold", 0.0, 100.0, 0.4, -60.0, ()),
    ("cold", 6.0, 300.0, 0.6, -50.0, ()),
    ("cold", 3.0, 20.0, 0.2, -70.0, ("drift",)),
    ("cold", 6.0, 150.0, 0.5, -60.0, ("jump",)),
    ("cold", 0.0, 250.0, 0.3, -60.0, ("clip",)),
    ("warm", -6.0, 60.0, 0.5, -60.0, ()),
    ("warm", 4.0, 200.0, 0.3, -70.0, ()),
    ("warm", 6.0, 80.0, 0.4, -60.0, ()),
    ("warm", 6.0, 40.0, 0.6, -60.0, ("stall",)),
    ("warm", 2.0, 120.0, 0.4, -50.0, ("jump", "drift")),
    ("warm", 6.0, 300.0, 0.2, -60.0, ("drift", "jump", "clip", "stall")),
)


def echo_only_scenes(hard_rooms: bool) -> dict[str, str]:
    files: dict[str, str] = {}
    for i, (scene_class, level, delay, rt60, noise, hard) in enumerate(ECHO_ONLY, start=1):
        hard = hard if hard_rooms else ()
        # The events land a few seconds into the story, after the canceller has had time to converge on it.
        room = Room(level, delay, rt60, noise, seed=i, hard=hard, hard_at_s=STORY_STARTS_S[scene_class] + 8.0)
        voice = VOICES[i % len(VOICES)]
        name = f"only_{scene_class}_{i:02d}_e{level:+.0f}_d{delay:.0f}" + (f"_{'+'.join(hard)}" if hard else "")
        files[name] = (
            f"# Echo only ({scene_class}): the story plays, nobody talks over it. {room.describe()}.\n"
            "# Generated by scripts/make_echo_scenes.py.\n\n"
            + f"duration_s = {ECHO_ONLY_S[scene_class]}\n\n"
            + room.toml()
            + asks(scene_class, voice)
        )
    return files


# When the echo moves: in the quiet after the first request (cold) or after the short answer (warm).
MOVE_AT_S = {"cold": 4.0, "warm": 9.5}
# (class, echo relative to the user dB, delay ms before the move, move ms, RT60 s, noise dBFS)
MOVED_ECHO_ONLY = (
    ("cold", 0.0, 30.0, 50.0, 0.3, -60.0),
    ("cold", 6.0, 100.0, 90.0, 0.5, -60.0),
    ("warm", 3.0, 60.0, 70.0, 0.4, -70.0),
    ("warm", 6.0, 150.0, 40.0, 0.3, -50.0),
)
# (class, onset s, talk-over index in TALK_OVERS, echo relative to the user dB, delay ms, move ms)
MOVED_TALK_OVERS = (
    ("cold", 0.3, 0, 0.0, 30.0, 60.0),
    ("cold", 0.7, 2, 4.0, 40.0, 90.0),
    ("cold", 1.5, 6, -3.0, 100.0, 50.0),
    ("warm", 0.3, 3, -3.0, 60.0, 40.0),
    ("warm", 0.7, 4, 2.0, 20.0, 100.0),
    ("warm", 1.5, 1, 6.0, 150.0, 70.0),
)


def moved_scenes() -> dict[str, str]:
    """The echo-only and talk-over scenes on a path that moved in the quiet before the story (see the module)."""
    files: dict[str, str] = {}
    for i, (scene_class, level, delay, move, rt60, noise) in enumerate(MOVED_ECHO_ONLY, start=len(ECHO_ONLY) + 1):
        room = Room(level, delay, rt60, noise, seed=i, move_ms=move, move_at_s=MOVE_AT_S[scene_class])
        voice = VOICES[i % len(VOICES)]
        files[f"only_{scene_class}_{i:02d}_e{level:+.0f}_d{delay:.0f}_moved"] = (
            f"# Echo only ({scene_class}): the story plays, nobody talks over it. {room.describe()}.\n"
            "# Generated by scripts/make_echo_scenes.py.\n\n"
            + f"duration_s = {ECHO_ONLY_S[scene_class]}\n\n"
            + room.toml()
            + asks(scene_class, voice)
        )
    for n, (scene_class, onset_s, k, level, delay, move) in enumerate(MOVED_TALK_OVERS, start=1):
        kind, words = TALK_OVERS[k]
        room = Room(level, delay, RT60S_S[n % len(RT60S_S)], NOISES_DBFS[n % len(NOISES_DBFS)], seed=2000 + n,
                    move_ms=move, move_at_s=MOVE_AT_S[scene_class])  # fmt: skip
        voice = VOICES[(n + 2) % len(VOICES)]
        slack = WARM_SLACK_S if scene_class == "warm" else 0.0
        duration = STORY_STARTS_S[scene_class] + slack + onset_s + LONGEST_TALK_OVER_S + AFTER_TALK_OVER_S
        files[f"moved_{scene_class}_{onset_s:03.1f}s_{n}_{kind}"] = (
            f"# Talk-over ({scene_class}) on a moved path: {words!r} ({voice}) {onset_s} s into the story.\n"
            f"# {room.describe()}. Generated by scripts/make_echo_scenes.py.\n\n"
            + f"duration_s = {round(duration, 1)}\n\n"
            + room.toml()
            + asks(scene_class, voice)
            + say(words, voice, delay_s=onset_s)
        )
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--hard-rooms",
        action=argparse.BooleanOptionalAction,
        default=HARD_ROOMS,
        help=f"add drift, delay jumps, clipping and stalls to a share of the scenes (default: {HARD_ROOMS})",
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"where the scenes go (default {OUT})")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.toml"):
        old.unlink()
    files = echo_only_scenes(args.hard_rooms) | talk_over_scenes(args.hard_rooms)
    for name, text in files.items():
        (out / f"{name}.toml").write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} scenes to {out}")
    if args.hard_rooms and args.out == OUT:
        OUT_MOVED.mkdir(exist_ok=True)
        for old in OUT_MOVED.glob("*.toml"):
            old.unlink()
        for name, text in moved_scenes().items():
            (OUT_MOVED / f"{name}.toml").write_text(text, encoding="utf-8")
        print(f"wrote {len(moved_scenes())} scenes to {OUT_MOVED}")


if __name__ == "__main__":
    main()
