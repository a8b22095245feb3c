"""Secrets are a type from parsing on and redacted by value; flags have one spelling.

The end-to-end check (every file and output of real runs searched for
planted values) is ``tests/reliability/test_secrets.py``.
"""

from __future__ import annotations

import html
import io
import json
import re
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from llm_as_rnn.evals.config import EvalConfig
from llm_as_rnn.frontends.cli import main
from llm_as_rnn.frontends.cli.parser import build_parser, parse_args
from llm_as_rnn.runtime.secrets import (
    MASK,
    Secret,
    public_url,
    redact,
    redact_output,
    register,
    register_url,
    scrub,
)
from llm_as_rnn.runtime.spec import Endpoint

PLANTED = "sk-planted-UNIT-5Rq8Zt2Wm"


def abbreviations() -> list[tuple[list[str], str]]:
    """Return ``(command words, flag minus its last letter)`` for every long flag of every
    command and verb (``memory log``, ...), the words holding each required flag."""
    out = []
    parsers = [
        ([name, *([verb] if verb else [])], parser)
        for name, command in build_parser().commands.items()
        for verb, parser in (command.verbs.items() or [("", command)])
    ]
    for words, parser in parsers:
        required = [a.option_strings[0] for a in parser._actions if a.required and a.option_strings]
        words = words + [w for flag in required for w in (flag, "1")]
        flags = set(re.findall(r"--[a-z][a-z-]*[a-z]", parser.format_help()))
        out += [(words, f[:-1]) for f in sorted(flags) if f[:-1] not in flags]
    return out


@pytest.mark.parametrize(("command", "prefix"), abbreviations())
def test_every_abbreviated_flag_is_refused(
    command: list[str], prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit:
        parse_args([*command, prefix, PLANTED])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: unrecognized arguments: {prefix} ")
    assert PLANTED not in err  # the word after an unknown flag may be a key


def test_api_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "x.db"
    with pytest.raises(SystemExit) as exit:
        main(["run", "--model", "fake", "--api", PLANTED, "--db", str(db)])
    assert exit.value.code == 2
    assert PLANTED not in capsys.readouterr().err
    assert not db.exists()


def test_a_secret_prints_masked_and_is_redacted_everywhere() -> None:
    key = Secret(PLANTED)
    assert PLANTED not in f"{key} {key!r} {[key]}"
    assert key.get_secret_value() == PLANTED
    text = json.dumps({"k": PLANTED}) + html.escape(PLANTED) + quote(PLANTED, safe="")
    assert PLANTED not in redact(text)
    assert redact(f"--api-key={PLANTED}") == f"--api-key={MASK}"


def test_escaped_forms_are_redacted() -> None:
    odd = 'pw-planted-"odd"&<value>/+'
    register(odd)
    for written in (json.dumps(odd), html.escape(odd), quote(odd, safe="")):
        assert redact(written).strip('"') == MASK


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("http://bob:pw-planted-1@127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("https://tok-planted-2@api.example.com/v1", "https://api.example.com/v1"),
        ("postgresql://bob:p%40ss-planted-3@db:5432/x", "postgresql://db:5432/x"),
        ("http://bob:p@ss-planted-4@host/v1?q=a@b", "http://host/v1?q=a@b"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
    ],
)
def test_url_credentials_are_redacted_in_any_text(url: str, public: str) -> None:
    assert public_url(url) == public
    said = redact(f"cannot reach {url!r} (ConnectError); see {url}")
    assert "planted" not in said
    assert said.count(public.split("//")[1].split("/")[0]) == 2  # the host stays readable


def test_a_url_s_basic_auth_header_is_redacted() -> None:
    import base64

    register_url("http://bob:pw-planted-BASIC-5@127.0.0.1:9/v1")
    header = base64.b64encode(b"bob:pw-planted-BASIC-5").decode()
    assert header not in redact(f"401: bad credentials in 'Authorization: Basic {header}'")


def test_the_environment_s_credentials_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-planted-ENV-1")
    monkeypatch.setenv("HTTPS_PROXY", "http://bob:pw-planted-PROXY-2@proxy:3128")
    said = redact("token tok-planted-ENV-1, password pw-planted-PROXY-2")
    assert "planted" not in said


def test_short_and_ordinary_values_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "unused")  # a local server's dummy key
    Secret("EMPTY")
    register("%73%75%6E%6E%79")  # long when encoded, "sunny" when decoded
    text = "the unused EMPTY memory: sunny after rain"
    assert redact(text) == text


def test_an_endpoint_registers_its_url_s_password() -> None:
    Endpoint("http://bob:pw-planted-ENDPOINT-3@127.0.0.1:9/v1")
    assert redact("server said: bad password pw-planted-ENDPOINT-3") == (
        f"server said: bad password {MASK}"
    )


def test_an_eval_s_identity_holds_no_credentials() -> None:
    cfg = EvalConfig(out="o", base_url="http://bob:pw-planted-ID@127.0.0.1:9/v1")
    assert cfg.identity()["base_url"] == "http://127.0.0.1:9/v1"


def test_scrub_redacts_an_error_and_its_causes() -> None:
    register(PLANTED)
    cause = ConnectionError(f"Bearer {PLANTED}")
    error = RuntimeError(f"server said {PLANTED}")
    error.message = f"again {PLANTED}"
    error.__cause__ = cause
    assert scrub(error) is error
    assert PLANTED not in f"{error!r} {error.message} {cause!r}"


def test_printed_output_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    register(PLANTED)
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    redact_output()
    redact_output()  # once is enough: not wrapped twice
    print(f"key {PLANTED}")
    sys.stderr.writelines([f"error: {PLANTED}\n"])
    assert (out.getvalue(), err.getvalue()) == (f"key {MASK}\n", f"error: {MASK}\n")
    assert sys.stdout.stream is out


def test_a_key_from_a_config_file_is_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config = tmp_path / "c.toml"
    config.write_text(f'api-key = "{PLANTED}"\n')
    args = parse_args(["run", "--config", str(config)])
    assert isinstance(args.api_key, Secret)
    assert args.api_key.get_secret_value() == PLANTED


QUERY_SECRETS = [  # a credential in a query string, by the names services give it
    ("api_key", "qs-planted-APIKEY-1"),
    ("Api-Key", "qs-planted-APIKEY-2"),
    ("access_token", "qs-planted-TOKEN-3"),
    ("sig", "qs%2Fplanted%3D-SAS-4"),  # Azure SAS, %-encoded as it is sent
    ("X-Amz-Signature", "qs-planted-AMZ-5"),
    ("code", "qs-planted-OAUTH-6"),
    ("password", "short7"),  # too short to hide by value: hidden by its place
]


@pytest.mark.parametrize(("name", "value"), QUERY_SECRETS)
def test_a_credential_in_a_query_string_is_hidden_by_name_and_value(
    name: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llm_as_rnn.core.context import Context
    from llm_as_rnn.core.identity import digest, settings_of
    from llm_as_rnn.frontends.html import settings_section

    url = f"http://127.0.0.1:9/v1?api-version=2024-06&{name}={value}"
    assert public_url(url) == f"http://127.0.0.1:9/v1?api-version=2024-06&{name}={MASK}"
    # the error line of a run against it
    run = ["run", "--model", "openai:gpt-x", "--base-url", url, "--retries", "1"]
    assert main([*run, "--timeout", "2", "--steps", "1", "--db", str(tmp_path / "t.db")]) == 2
    said = capsys.readouterr().err
    assert "cannot reach" in said
    assert "planted" not in said
    assert "short7" not in said
    assert f"{name}={MASK}" in said  # the parameter stays readable
    # the recorded settings, their hash and the page (none of them redact by value)
    settings = settings_of(Context(model="openai:gpt-x", base_url=url))
    other = settings_of(Context(model="openai:gpt-x", base_url=url.replace(value, "another-1")))
    assert digest(settings) == digest(other)  # the identity does not depend on the secret
    page = settings_section(settings)
    assert "planted" not in json.dumps(settings) + page
    assert "short7" not in page
    # a longer value is registered, so it is hidden wherever it is written, URL or not
    if len(value) >= 8:
        assert value not in redact(f"server said: bad key {value}")


def test_text_that_only_looks_like_a_query_is_left_alone() -> None:
    import base64

    image = base64.b64encode(b"\x89PNG" + bytes(range(256)) * 8).decode()
    page = f"<img src='data:image/png;base64,{image}'> a;key=value x=1&y=2 -- ok?sign=up"
    assert redact(page) == page
