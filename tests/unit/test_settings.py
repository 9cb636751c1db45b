"""Settings from the environment and from command-line flags."""

from __future__ import annotations

import argparse

import pytest
from pydantic import ValidationError

from service.cli import ENV_ONLY_SETTINGS, add_settings_flags, settings_from_args
from service.settings import Settings

pytestmark = pytest.mark.unit


def _parse(argv: list[str]) -> Settings:
    parser = argparse.ArgumentParser()
    add_settings_flags(parser)
    return settings_from_args(parser.parse_args(argv))


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTSERVE_PORT", "9001")
    monkeypatch.setenv("BERTSERVE_MODELS", '[{"name": "a", "source": "/m", "task": "embed"}]')
    settings = Settings()
    assert settings.port == 9001
    assert [(m.name, m.source, m.task) for m in settings.models] == [("a", "/m", "embed")]


def test_defaults_are_the_embedded_models() -> None:
    assert [m.source for m in Settings().models] == [
        "builtin:all-minilm-l6-v2",
        "builtin:minilm-sentiment",
        "builtin:minilm-reranker",
    ]


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTSERVE_PORT", "9001")
    settings = _parse(
        [
            "--port",
            "9002",
            "--model",
            "e=/models/e,device=cpu,dtype=bfloat16",
            "--model",
            '{"name": "c", "source": "/models/c", "task": "classify"}',
            "--no-warmup",
            "--max-batch-tokens",
            "4096",
        ]
    )
    assert settings.port == 9002
    assert settings.warmup is False
    assert settings.max_batch_tokens == 4096
    assert [(m.name, m.dtype, m.task) for m in settings.models] == [
        ("e", "bfloat16", "auto"),
        ("c", "auto", "classify"),
    ]


def test_every_setting_has_a_flag_and_a_description() -> None:
    parser = argparse.ArgumentParser()
    add_settings_flags(parser)
    flags = {action.dest for action in parser._actions}
    for name, field in Settings.model_fields.items():
        assert field.description
        assert (name in flags) is (name not in ENV_ONLY_SETTINGS)
    assert {"api_keys"} == ENV_ONLY_SETTINGS  # secrets only: never on a command line


@pytest.mark.parametrize(
    "models",
    [
        [],
        [{"name": "a", "source": "x"}, {"name": "a", "source": "y"}],
        [{"name": "a", "source": "x", "device": "tpu"}],
    ],
)
def test_invalid_model_lists(models: list[dict[str, str]]) -> None:
    with pytest.raises(ValidationError):
        Settings(models=models)


def test_list_settings_take_repeated_flags() -> None:
    settings = _parse(["--auth-open-paths", "/health", "--auth-open-paths", "/ready"])
    assert settings.auth_open_paths == ["/health", "/ready"]


def test_api_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTSERVE_API_KEYS", '["k1", "k2"]')
    settings = Settings()
    assert settings.load_api_keys() == [b"k1", b"k2"]
    assert "k1" not in repr(settings)


def test_serve_help_lists_every_flag() -> None:
    """``bertserve serve --help`` renders (argparse formats help with %: a literal one must not break
    it) and documents each setting that has a flag."""
    parser = argparse.ArgumentParser(prog="bertserve serve")
    add_settings_flags(parser)
    text = parser.format_help()
    for name in Settings.model_fields:
        if name not in ENV_ONLY_SETTINGS:
            flag = "--model" if name == "models" else f"--{name.replace('_', '-')}"
            assert f"{flag} " in text


def test_rerank_with_must_name_another_served_model() -> None:
    reranker = {"name": "r", "source": "builtin:minilm-reranker", "rerank_with": "nowhere"}
    with pytest.raises(ValidationError, match="rerank_with 'nowhere' names no other served model"):
        Settings(models=[{"name": "e", "source": "builtin:all-minilm-l6-v2"}, reranker])
    with pytest.raises(ValidationError, match="names no other served model"):
        Settings(models=[{**reranker, "rerank_with": "r"}])
    blended = Settings()
    assert [m.rerank_with for m in blended.models] == [None, None, "all-MiniLM-L6-v2"]
