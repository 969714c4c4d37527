"""The device's realtime client against the test peer over real WebRTC (aiortc) on loopback: a full turn, a
barge-in mid-answer (cancel, clear and truncate on the wire; what the item keeps), a truncation past the audio
(a harmless race), a peer that drops mid-answer or stalls (a notice, then a reconnect that works), calls that
cannot be made (401, 500, 404, nobody listening, no session.updated), and the key never in any log line,
message or repr."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator

import pytest

from device.reply.realtime_client import RealtimeClient, truncate_point_ms
from device.reply.realtime_config import (
    CallEnded,
    ExpectedRace,
    RealtimeClosed,
    RealtimeConfig,
    RealtimeConnectError,
)
from device.reply.realtime_events import (
    ConversationItemTruncate,
    ConversationItemTruncated,
    ErrorEvent,
    OutputAudioBufferCleared,
    OutputAudioBufferStarted,
    OutputAudioBufferStopped,
    ResponseCancel,
    ResponseCreated,
    ResponseDone,
    ResponseOutputItemAdded,
    TranscriptDelta,
    TranscriptDone,
)
from device.testing.realtime_peer import RealtimePeer
from device.testing.realtime_peer_records import DEFAULT_REPLY, PeerConfig
from tests.realtime_helpers import KEY, WAIT_S, Heard, dominant_hz, read_until, say, sound_bursts, tone, wait_until

SHORT_REPLY = "One two three four five."
FAST = PeerConfig(api_key=KEY, reply=SHORT_REPLY, first_audio_delay_s=0.05)


@pytest.fixture
def peer() -> Iterator[RealtimePeer]:
    with RealtimePeer(FAST) as running:
        yield running


def client_for(peer: RealtimePeer, **changes: object) -> RealtimeClient:
    settings: dict[str, object] = {"base_url": peer.base_url, "model": "gpt-realtime", "api_key": KEY}
    settings.update(changes)
    return RealtimeClient(RealtimeConfig(**settings))  # type: ignore[arg-type]  # the test's own settings


@pytest.fixture
def client(peer: RealtimePeer) -> Iterator[RealtimeClient]:
    with client_for(peer) as made:
        yield made


def stopped(response_id: str) -> Callable[[Heard], bool]:
    def done(heard: Heard) -> bool:
        return any(isinstance(e, OutputAudioBufferStopped) and e.response_id == response_id for e in heard.events)

    return done


def answer_of(heard: Heard) -> tuple[str, str]:
    """The (response id, assistant item id) the heard events announced last."""
    created = [e for e in heard.events if isinstance(e, ResponseCreated)][-1]
    added = [e for e in heard.events if isinstance(e, ResponseOutputItemAdded)][-1]
    return created.response.id, added.item.id


def announced(heard: Heard) -> bool:
    return any(isinstance(e, ResponseCreated) for e in heard.events) and any(
        isinstance(e, ResponseOutputItemAdded) for e in heard.events
    )


@pytest.mark.slow
def test_a_full_turn(peer: RealtimePeer, client: RealtimeClient) -> None:
    times = client.connect()
    call = peer.last_call()
    assert peer.wait(lambda: "session.update" in call.received_types(), WAIT_S)
    assert call.model == "gpt-realtime"
    assert call.turn_detection == "off"  # the device decides when a turn ends
    assert peer.authorizations == [f"Bearer {KEY}"]
    assert times.total_ms > 0 and times.session_ms >= 0

    client.push_mic(tone(300, 0.5))  # no turn open: never sent anywhere
    assert client.mic_dropped_samples == 8000

    committed_s = say(client, tone(440, 1.0))
    heard = read_until(client, announced)
    response_id, item_id = answer_of(heard)
    read_until(client, stopped(response_id), heard)
    item = call.assistant_items[-1]
    spoken = item.spoken
    assert spoken is not None
    wait_until(lambda: client.received_ms(item_id) >= spoken.duration_ms)  # the tail too
    read_until(client, lambda h: sum(len(c.samples) for c in h.audio) >= 16 * client.received_ms(item_id) - 200, heard)

    # The peer heard the turn, and nothing before the session was set up.
    assert peer.wait(lambda: len(call.user_items) == 1, WAIT_S)
    said = call.user_items[0].audio
    assert said is not None
    assert 0.85 <= len(said) / 48_000 <= 1.15
    assert dominant_hz(said, 48_000) == pytest.approx(440, abs=5)
    assert call.audio_before_session_ms == 0
    assert call.received_types() == [
        "session.update", "input_audio_buffer.clear", "input_audio_buffer.commit", "response.create"
    ]  # fmt: skip

    # The answer: the events in the real order, its text, its audio (16 kHz, one burst per word).
    kinds = [type(e) for e in heard.events]
    order = [ResponseCreated, ResponseOutputItemAdded, OutputAudioBufferStarted, ResponseDone, OutputAudioBufferStopped]
    assert [kinds.index(kind) for kind in order] == sorted(kinds.index(kind) for kind in order)
    deltas = [e.delta for e in heard.events if isinstance(e, TranscriptDelta)]
    assert "".join(deltas) == SHORT_REPLY
    assert [e.transcript for e in heard.events if isinstance(e, TranscriptDone)] == [SHORT_REPLY]
    assert [e.response.status for e in heard.events if isinstance(e, ResponseDone)] == ["completed"]
    assert {(chunk.response_id, chunk.item_id) for chunk in heard.audio} == {(response_id, item_id)}
    audio = heard.samples(response_id)
    assert abs(len(audio) / 16 - spoken.duration_ms) <= 150
    assert sound_bursts(audio, 16_000) == len(SHORT_REPLY.split())
    assert heard.first_audio_s is not None
    assert 0 < heard.first_audio_s - committed_s < 5.0
    assert not heard.of_type(ErrorEvent)


@pytest.mark.slow
def test_a_barge_in_mid_answer_cancels_clears_and_truncates_at_the_played_cursor(peer: RealtimePeer) -> None:
    peer.config = PeerConfig(api_key=KEY, reply=DEFAULT_REPLY, generation_speed=1.5, first_audio_delay_s=0.05)
    with client_for(peer) as client:
        client.connect()
        say(client, tone(440, 0.3))
        heard = read_until(client, announced)
        response_id, item_id = answer_of(heard)
        read_until(client, lambda h: client.received_ms(item_id) >= 1500, heard)

        received_ms = client.received_ms(item_id)
        played_ms = received_ms - 240  # what the speaker has played: the rest waits in the playback buffer
        point = truncate_point_ms(played_ms, received_ms)
        assert point is not None
        client.cancel(point, item_id)
        read_until(client, lambda h: all(h.of_type(kind) for kind in (ResponseDone, OutputAudioBufferCleared,
                                                                        ConversationItemTruncated)), heard)  # fmt: skip

        call = peer.last_call()
        sent = call.received_types()
        barge_in = ["response.cancel", "output_audio_buffer.clear", "conversation.item.truncate"]
        assert sent[sent.index("response.create") + 1 :] == barge_in
        truncate = call.received[-1]
        assert isinstance(truncate, ConversationItemTruncate)
        assert (truncate.item_id, truncate.audio_end_ms, truncate.content_index) == (item_id, point, 0)

        done = heard.of_type(ResponseDone)
        assert [(e.response.status, e.response.reason) for e in done] == [("cancelled", "client_cancelled")]
        truncated = heard.of_type(ConversationItemTruncated)
        assert [(e.item_id, e.audio_end_ms) for e in truncated] == [(item_id, point)]
        item = call.assistant_items[-1]
        assert item.spoken is not None
        assert item.truncated_at_ms == point and item.transcript == ""  # the real server deletes it
        assert item.kept_words == item.spoken.words_within(point)
        assert 0 < len(item.kept_words) < len(item.spoken.words)
        assert not heard.of_type(ErrorEvent) and not heard.of_type(ExpectedRace)

        # Nothing more of the cancelled answer reaches the device; the next turn is answered.
        frozen_ms = client.received_ms(item_id)
        peer.config = FAST
        say(client, tone(440, 0.3))
        after = read_until(client, lambda h: any(isinstance(e, ResponseDone) for e in h.events))
        next_response, _ = answer_of(after)
        read_until(client, lambda h: any(c.response_id == next_response for c in h.audio), after)
        assert next_response != response_id
        assert client.received_ms(item_id) == frozen_ms
        assert {chunk.response_id for chunk in after.audio} == {next_response}


@pytest.mark.slow
def test_a_truncate_past_the_audio_is_an_expected_race(peer: RealtimePeer, client: RealtimeClient) -> None:
    client.connect()
    say(client, tone(440, 0.3))
    heard = read_until(client, announced)
    response_id, item_id = answer_of(heard)
    read_until(client, stopped(response_id), heard)
    beyond_ms = client.received_ms(item_id) + 5000  # a cursor past the audio: the server refuses

    client.cancel(beyond_ms, item_id)
    races = read_until(client, lambda h: len(h.of_type(ExpectedRace)) == 2)
    kinds = {(race.sent, race.error.code) for race in races.of_type(ExpectedRace)}
    assert kinds == {
        (ResponseCancel.type, "response_cancel_not_active"),
        (ConversationItemTruncate.type, "invalid_value"),
    }
    refusal = next(r for r in races.of_type(ExpectedRace) if r.sent == ConversationItemTruncate.type)
    assert "is already shorter than" in refusal.error.message and refusal.error.param == "audio_end_ms"
    assert not races.of_type(ErrorEvent)
    assert client.connected
    assert peer.last_call().assistant_items[-1].truncated_at_ms is None


@pytest.mark.slow
def test_a_peer_that_drops_mid_answer_ends_the_call_and_a_reconnect_works(peer: RealtimePeer) -> None:
    peer.config = PeerConfig(api_key=KEY, reply=DEFAULT_REPLY, fault="drop_mid_answer", fault_after_ms=400)
    with client_for(peer) as client:
        client.connect()
        say(client, tone(440, 0.3))
        heard = read_until(client, lambda h: bool(h.of_type(CallEnded)))
        (ended,) = heard.of_type(CallEnded)
        assert ended.reason == "dropped"
        assert heard.audio, "some of the answer arrived before the drop"
        assert not client.connected
        with pytest.raises(RealtimeClosed, match=r"has ended.*connect\(\) again"):
            client.begin_turn()
        client.cancel(100, "item_x")  # a barge-in on a dead call does nothing, and does not raise

        peer.config = FAST
        client.connect()
        say(client, tone(440, 0.3))
        again = read_until(client, lambda h: any(isinstance(e, ResponseDone) for e in h.events))
        assert [e.response.status for e in again.of_type(ResponseDone)] == ["completed"]
        assert not again.of_type(CallEnded)  # the old call's notices were forgotten with it
        assert len(peer.calls) == 2


@pytest.mark.slow
def test_a_stalled_events_channel_ends_the_call(peer: RealtimePeer) -> None:
    peer.config = PeerConfig(api_key=KEY, reply=DEFAULT_REPLY, fault="stall_mid_answer", fault_after_ms=300)
    with client_for(peer, stall_timeout_s=1.0) as client:
        client.connect()
        say(client, tone(440, 0.3))
        heard = read_until(client, lambda h: bool(h.of_type(CallEnded)))
        (ended,) = heard.of_type(CallEnded)
        assert ended.reason == "stalled"
        assert "sent no event for" in ended.message
        assert not client.connected


@pytest.mark.slow
def test_a_discarded_turn_never_reaches_the_next_one(peer: RealtimePeer, client: RealtimeClient) -> None:
    client.connect()
    client.begin_turn()
    client.push_mic(tone(300, 0.6))
    client.discard_turn()  # a stop phrase: no answer, and its audio is not the next turn's
    say(client, tone(440, 0.4))
    read_until(client, lambda h: bool(h.of_type(ResponseDone)))
    call = peer.last_call()
    assert call.received_types() == [
        "session.update", "input_audio_buffer.clear", "input_audio_buffer.clear", "input_audio_buffer.clear",
        "input_audio_buffer.commit", "response.create",
    ]  # fmt: skip
    (user,) = call.user_items
    assert user.audio is not None
    assert len(user.audio) / 48_000 <= 0.5
    assert dominant_hz(user.audio, 48_000) == pytest.approx(440, abs=5)


def test_a_session_that_is_never_confirmed_is_a_connect_error(peer: RealtimePeer) -> None:
    peer.config = PeerConfig(api_key=KEY, fault="stall_session")
    with client_for(peer, session_timeout_s=0.5) as client, pytest.raises(RealtimeConnectError) as raised:
        client.connect()
    assert raised.value.failure == "session"
    assert "no session.updated within 0.5 s" in str(raised.value)


def test_a_wrong_key_is_refused_with_a_message_that_does_not_show_it(peer: RealtimePeer) -> None:
    wrong = "sk-wrong-key-77778888"
    with client_for(peer, api_key=wrong) as client, pytest.raises(RealtimeConnectError) as raised:
        client.connect()
    message = str(raised.value)
    assert raised.value.failure == "auth"
    assert "rejected the API key (HTTP 401: invalid_api_key)" in message
    assert "OPENAI_API_KEY" in message
    assert wrong not in message and "8888" not in message  # not even the masked form the server quoted


def test_no_key_is_refused_with_where_to_put_one(peer: RealtimePeer) -> None:
    with client_for(peer, api_key=None) as client, pytest.raises(RealtimeConnectError) as raised:
        client.connect()
    assert raised.value.failure == "auth"
    assert "wants an API key (HTTP 401)" in str(raised.value)
    assert "set the environment variable OPENAI_API_KEY" in str(raised.value)


def test_a_server_error_says_what_the_server_said(peer: RealtimePeer) -> None:
    peer.config = PeerConfig(api_key=KEY, fault="http_500")
    with client_for(peer) as client, pytest.raises(RealtimeConnectError) as raised:
        client.connect()
    assert raised.value.failure == "server"
    assert "refused the call (HTTP 500: The server had an error while processing your request.)" in str(raised.value)


def test_a_wrong_base_url_says_to_check_it_and_the_model(peer: RealtimePeer) -> None:
    with client_for(peer, base_url=peer.base_url + "/nope") as client, pytest.raises(RealtimeConnectError) as raised:
        client.connect()
    assert raised.value.failure == "rejected"
    assert "HTTP 404" in str(raised.value) and "[reply] model" in str(raised.value)


def test_nobody_listening_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nobody listens there
    config = RealtimeConfig(base_url=f"http://127.0.0.1:{port}/v1", model="gpt-realtime", api_key=KEY)
    with RealtimeClient(config) as client, pytest.raises(RealtimeConnectError) as raised:
        client.connect()
    assert raised.value.failure == "unreachable"
    assert f"127.0.0.1:{port}" in str(raised.value) and "check the server is running" in str(raised.value)


def test_a_bad_setup_is_refused_before_any_call() -> None:
    with pytest.raises(RealtimeConnectError, match="must be an http:// or https:// URL"):
        RealtimeClient(RealtimeConfig(base_url="ftp://x", model="m"))
    with pytest.raises(RealtimeConnectError, match="spaces or control characters") as raised:
        RealtimeClient(RealtimeConfig(base_url="http://x/v1", model="m", api_key="sk-with space"))
    assert "with space" not in str(raised.value)
    with pytest.raises(RealtimeConnectError, match="stall_timeout_s must be > 0"):
        RealtimeClient(RealtimeConfig(base_url="http://x/v1", model="m", stall_timeout_s=0))
    with pytest.raises(RealtimeClosed, match=r"connect\(\) first"):
        RealtimeClient(RealtimeConfig(base_url="http://x/v1", model="m")).begin_turn()


@pytest.mark.slow
def test_the_key_never_reaches_a_log_line_a_message_or_a_repr(
    peer: RealtimePeer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, aiortc's and aiohttp's included
    peer.config = PeerConfig(api_key=KEY, reply=DEFAULT_REPLY, first_audio_delay_s=0.05)
    texts: list[str] = []
    with client_for(peer) as client:
        texts += [repr(client), repr(client.config)]
        client.connect()
        say(client, tone(440, 0.3))
        heard = read_until(client, announced)
        _, item_id = answer_of(heard)
        read_until(client, lambda h: client.received_ms(item_id) >= 300, heard)
        client.cancel(client.received_ms(item_id) + 10_000, item_id)  # refused: its message is read too
        heard = read_until(client, lambda h: bool(h.of_type(ExpectedRace)), heard)
        texts += [repr(event) for event in heard.events]
    peer.config = PeerConfig(api_key="sk-another-one")  # now the key itself is the wrong one
    with client_for(peer) as refused, pytest.raises(RealtimeConnectError) as raised:
        refused.connect()
    texts += [str(raised.value), repr(raised.value)]
    records = caplog.records
    assert len(records) > 10, "the run logged (aiortc's debug lines at least)"
    texts += [record.getMessage() for record in records]
    texts += [caplog.text]
    assert not [text for text in texts if KEY in text or KEY[-8:] in text]
