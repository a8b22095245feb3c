"""The README, ``--help`` and ``Context`` agree with the code they describe (no model).

Each list a reader relies on is checked against its one source: the task
registry, the command-line parser, ``Context``'s fields, the Makefile. A new
task, flag or field without its line in the README fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from llm_as_rnn import Context, build_graph, tasks
from llm_as_rnn.errors import ConfigError
from llm_as_rnn.frontends.cli.parser import build_parser
from llm_as_rnn.runtime.spec import FAKE_SPEC, parse_spec
from llm_as_rnn.tasks import TASKS, task_names
from tests.conftest import ROOT

pytestmark = pytest.mark.registry  # the README lists tasks, --help too

README = (ROOT / "README.md").read_text(encoding="utf-8")
FLAG = re.compile(r"`(--[a-z][a-z-]*)")


def section(title: str) -> str:
    """Return the README section under heading ``title`` (to the next heading of its level)."""
    match = re.search(rf"^(#+) {re.escape(title)}\n(.*?)(?=^\1 |\Z)", README, re.M | re.S)
    assert match, f"README has no section {title!r}"
    return match.group(2)


def table_rows(text: str, header: str | None = None) -> dict[str, str]:
    """Return a text's table rows (not header or rule) by their first cell.

    With ``header``, only the rows of the table whose header row is that line.
    """
    if header is not None:
        start = text.index(header)
        text = text[start + len(header) :].split("\n\n")[0]
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and not set(cells[0]) <= set("-: "):
            rows[cells[0]] = line
    return rows


def options() -> dict[str, set[str]]:
    """Return every command's flags, as its ``--help`` shows them."""
    parser = build_parser()
    helps = {"llm-as-rnn": parser.format_help()}
    helps |= {name: sub.format_help() for name, sub in parser.commands.items()}
    return {
        name: set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", text)) for name, text in helps.items()
    }


def test_the_readme_and_the_registry_list_every_built_in_task() -> None:
    row = next(line for cell, line in table_rows(README).items() if cell == "`--task`")
    named = re.findall(r"`([a-z0-9-]+)`", row.split("|")[2])
    assert sorted(named) == sorted(TASKS)
    listed = re.search(r"Built-in tasks are (.*?)\.", " ".join((tasks.__doc__ or "").split()))
    assert listed
    assert sorted(re.findall(r"``([a-z0-9-]+)``", listed.group(1))) == sorted(TASKS)


def test_help_lists_every_task_and_the_default_model() -> None:
    for command, words in (("run", "--task"), ("eval", "--tasks")):
        out = subprocess.run(
            [sys.executable, "-m", "llm_as_rnn", command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        text = " ".join(re.sub(r"-\n\s+", "-", out.stdout).split())  # argparse wraps at hyphens
        assert all(name in text for name in task_names()), (words, text)
        assert f"{FAKE_SPEC} (embedded)" in text


def test_every_flag_is_in_a_readme_table_and_every_table_flag_exists() -> None:
    documented = {flag for line in table_rows(README).values() for flag in FLAG.findall(line)}
    existing = set().union(*options().values())
    missing = existing - documented - {"-h", "--help", "--version"}
    assert not missing, f"flags without a README table row: {sorted(missing)}"
    assert documented <= existing, f"README tables name no such flag: {documented - existing}"


def test_the_readme_context_table_has_every_field_and_its_flag() -> None:
    rows = table_rows(section("Use it as a library"), header="| field | flag |")
    fields = {name: line for cell, line in rows.items() for name in re.findall(r"`(\w+)`", cell)}
    assert sorted(fields) == sorted(Context.model_fields)
    for name, line in fields.items():
        for flag in FLAG.findall(line):
            assert flag in options()["run"], f"Context.{name}: run has no {flag}"


def test_every_context_field_is_described_where_studio_reads_it() -> None:
    schema = build_graph().get_context_jsonschema()
    assert schema is not None
    assert set(schema["properties"]) == set(Context.model_fields)
    undescribed = [
        name for name, field in schema["properties"].items() if not field.get("description")
    ]
    assert not undescribed
    assert schema["properties"]["budget"]["description"].startswith("Default memory budget")


def test_the_readme_names_the_extras_the_makefile_installs() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    installed = re.search(r"pip install --quiet -e '\.\[([a-z,]+)\]'", makefile)
    assert installed
    sentence = re.search(r"the package with its (.*?) extras", " ".join(README.split()))
    assert sentence, "README: no sentence naming the extras make setup installs"
    assert sorted(re.findall(r"`([a-z]+)`", sentence.group(1))) == sorted(
        installed.group(1).split(",")
    )


def test_label_matching_is_documented_where_task_authors_look() -> None:
    from llm_as_rnn import ClassificationTask

    for text in (section("Your own task"), ClassificationTask.__doc__ or ""):
        words = " ".join(text.split())
        assert "case-insensitive" in words, text[:300]
        assert "NFKC" in words, text[:300]


def help_text(command: str) -> str:
    """Return a command's --help as one line (argparse's wrapping undone)."""
    text = build_parser().commands[command].format_help()
    return " ".join(re.sub(r"-\n\s+", "-", text).split())


def test_the_fake_model_is_spelled_one_way_everywhere() -> None:
    readme = " ".join(README.split())
    spellings = set(re.findall(r"fake\[[^`\s]*\]", readme + help_text("run")))
    for bad in ("fake:x", "fake:1:2:3", "nonsense"):
        with pytest.raises(ConfigError) as refused:
            parse_spec(bad)
        spellings |= set(re.findall(r"fake\[[^'\s]*\]", str(refused.value)))
    assert spellings == {FAKE_SPEC}


def test_help_says_what_choice_mode_and_budget_do_now() -> None:
    run = help_text("run")
    assert "local models and fakes)" not in run  # choice works on openai: endpoints too
    assert "openai: endpoints with logprobs or structured outputs" in run
    assert "a resumed thread keeps its own)" not in run  # other settings: another thread
    assert "another budget goes on another default thread" in run


def test_the_readme_calls_the_async_graph_asynchronously() -> None:
    import asyncio

    from langgraph.checkpoint.memory import InMemorySaver

    assert not re.search(r"(?<![a])invoke\(|on `invoke`", README)
    assert "`context=` on `ainvoke`" in README
    graph = build_graph(InMemorySaver())
    payload = {"observations": [{"input": "a", "target": "dry"}]}
    config = {"configurable": {"thread_id": "t"}}
    with pytest.raises(TypeError, match="ainvoke"):  # as the README says: nodes are async
        graph.invoke(payload, config, context=Context(model="fake"))  # type: ignore[arg-type]
    done = asyncio.run(graph.ainvoke(payload, config, context=Context(model="fake")))  # type: ignore[arg-type]
    assert done["step"] == 1


def test_the_readme_says_eval_refuses_an_out_with_other_settings() -> None:
    row = next(line for cell, line in table_rows(README).items() if cell == "`--out DIR`")
    assert "other settings are refused" in row


def test_the_readme_map_names_every_module() -> None:
    block = section("Where things are").split("Beside the package")[0]
    package = ROOT / "src" / "llm_as_rnn"
    missing = [
        str(path.relative_to(package))
        for path in sorted(package.rglob("*.py"))
        if path.stem not in ("__init__", "__main__")
        and not re.search(rf"\b{re.escape(path.stem)}\b", block)
    ]
    assert not missing, f"modules missing from README 'Where things are': {missing}"


def page_numbers() -> list[float]:
    """Return every decimal number the benchmark pages show."""
    text = "".join((ROOT / page).read_text() for page in ("BENCHMARKS.md", "BENCHMARKS-quick.md"))
    return [float(n) for n in re.findall(r"(?<![\w.])\d+\.\d+", text)]


def test_figures_the_readme_cites_from_the_benchmark_pages_are_on_them() -> None:
    """A README paragraph naming a benchmark page quotes only figures the pages show.

    Figures drifted before: the README kept a run's 1.92x and 9.87 s after the
    page had moved on. A number followed by ``·`` is part of a formula, not a
    figure. Equal at the README's precision: 17.4 matches the page's 17.40.
    """
    shown = page_numbers()
    stale = []
    for paragraph in re.split(r"\n\s*\n", README):
        if "BENCHMARKS" not in paragraph:
            continue
        for number in re.findall(r"(?<![\w.])\d+\.\d+(?![\d·])", paragraph):
            places = len(number.split(".")[1])
            if not any(round(x, places) == float(number) for x in shown):
                stale.append(number)
    assert not stale, f"README figures not on BENCHMARKS.md or BENCHMARKS-quick.md: {stale}"
