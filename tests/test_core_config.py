"""The core's parameters come only from the settings: `CoreConfig` has no defaults that could drift from the
TOML's, and the event log's header reads back into the same value."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools

from device.config import Config, core_config
from device.core.states import CoreConfig


def test_no_field_of_the_core_config_has_a_default() -> None:
    defaulted = [
        f.name
        for f in dataclasses.fields(CoreConfig)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    ]
    assert defaulted == []


def test_every_field_names_the_setting_it_comes_from_in_one_line() -> None:
    tree = ast.parse(inspect.getsource(CoreConfig))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {
        field.target.id: doc.value.value
        for field, doc in itertools.pairwise(body)
        if isinstance(field, ast.AnnAssign)
        and isinstance(field.target, ast.Name)
        and isinstance(doc, ast.Expr)
        and isinstance(doc.value, ast.Constant)
        and isinstance(doc.value.value, str)
    }
    assert set(docs) == {f.name for f in dataclasses.fields(CoreConfig)}
    for name, doc in docs.items():
        assert "\n" not in doc and doc.startswith("`"), f"{name}: one line that names its setting"


def test_the_default_settings_round_trip_through_the_log_header() -> None:
    config = core_config(Config())
    assert CoreConfig.from_json(dataclasses.asdict(config)) == config
    assert config.preroll_samples == round(Config().listen.preroll_s * config.rate_hz)
