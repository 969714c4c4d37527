"""The reply backend named by `[reply] backend`, made once at start-up.

| backend | responder                                                                              |
|---------|----------------------------------------------------------------------------------------|
| local   | `device.reply.local.respond`: built-in skills, words paced like a model's on the wall clock |
| openai  | `OpenAIResponder`: streams from an OpenAI-compatible server; a cancel closes its socket     |
| realtime| none: the reply job speaks with the model's voice (device/runtime/realtime_work.py); the    |
|         | local responder is its fallback (`realtime_fallback = "local"`); `realtime_config` here     |

Everything that can be checked without the network is checked here, so a bad setup stops the daemon at
start-up with one actionable line (a `UserError`): the key's file or environment variable, the URL. Whether
the server answers is a fact of each turn (`EngineFailed` with the client's message), not of start-up: the
server may well come up after the daemon. The API key itself is never printed or logged.
"""

from __future__ import annotations

from device.config import ReplyConfig
from device.errors import UserError
from device.reply import Responder
from device.reply.local import respond
from device.reply.openai import DEFAULT_SYSTEM_PROMPT, OpenAIConfig, OpenAIResponder, ReplyBackendError, load_api_key
from device.reply.realtime_config import RealtimeConfig


def make_responder(config: ReplyConfig) -> Responder:
    """The responder for `config.backend`; a setup the backend cannot work with is a `UserError`."""
    if config.backend in ("local", "realtime"):
        return respond
    try:
        api_key = load_api_key(config.api_key_env, config.api_key_file)
        return OpenAIResponder(openai_config(config, api_key))
    except ReplyBackendError as error:
        raise UserError(f'[reply] backend = "openai": {error}') from None


def openai_config(config: ReplyConfig, api_key: str | None) -> OpenAIConfig:
    """The client's settings from the `[reply]` table and the key loaded for it."""
    return OpenAIConfig(
        base_url=config.base_url,
        model=config.model,
        api_key=api_key,
        api_key_env=config.api_key_env,
        system_prompt=DEFAULT_SYSTEM_PROMPT if config.system_prompt is None else config.system_prompt,
        connect_timeout_s=config.connect_timeout_s,
        first_token_timeout_s=config.first_token_timeout_s,
        first_sentence_timeout_s=config.first_sentence_timeout_s,
        idle_timeout_s=config.idle_timeout_s,
        reply_timeout_s=config.reply_timeout_s,
        max_tokens=config.max_tokens,
        temperature=config.temperature,
    )


REALTIME_INSTRUCTIONS = (
    "You are a voice assistant on a small device. Answer briefly, in one or two spoken sentences, with no lists "
    "or markdown. The user may interrupt you; if they do, do not repeat what they already heard."
)


def realtime_config(config: ReplyConfig) -> RealtimeConfig:
    """The realtime client's settings from `[reply]`, with the key loaded (a `UserError` if it cannot be)."""
    try:
        api_key = load_api_key(config.api_key_env, config.api_key_file)
    except ReplyBackendError as error:
        raise UserError(f'[reply] backend = "realtime": {error}') from None
    out = RealtimeConfig(
        base_url=config.base_url,
        model=config.model,
        api_key=api_key,
        api_key_env=config.api_key_env,
        instructions=REALTIME_INSTRUCTIONS if config.system_prompt is None else config.system_prompt or None,
        voice=config.voice,
        connect_timeout_s=config.connect_timeout_s,
        stall_timeout_s=config.stall_timeout_s,
    )
    problem = out.validate()
    if problem is not None:
        raise UserError(f'[reply] backend = "realtime": {problem}')
    return out
