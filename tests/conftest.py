"""Shared fixtures: deterministic models and graphs with in-memory persistence.

The suite sees only the built-in tasks: task plugins installed in the
environment are switched off here (``LLM_AS_RNN_PLUGINS=off``, inherited by
every process a test starts), so installing one cannot change a result. A
test that wants a plugin names it (``plugin_env``).
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from llm_as_rnn import Context, build_graph
from llm_as_rnn.runtime.local import LocalHFBackend
from llm_as_rnn.runtime.usage import Generation
from llm_as_rnn.tasks import PLUGINS_VARIABLE
from llm_as_rnn.testing import FunctionChatModel, byte_level_tokenizer, rule_based

ROOT = Path(__file__).resolve().parents[1]
HELPDESK_PLUGIN = ROOT / "tests" / "fixtures" / "helpdesk_plugin"
"""A folder holding a task plugin package and its dist-info: on ``PYTHONPATH``, it is installed."""

os.environ[PLUGINS_VARIABLE] = "off"  # before any test module asks for a task
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", module="vega_datasets")


def make_model(
    respond: Callable[[list[BaseMessage]], str] | None = None,
) -> FunctionChatModel:
    """A deterministic chat model (rule-based unless ``respond`` is given)."""
    return FunctionChatModel(respond=respond or rule_based(0))


def make_context(model: Any = None, **fields: Any) -> Context:
    """A context on a deterministic model; ``fields`` override defaults."""
    return Context(model=model if model is not None else make_model(), **fields)


@pytest.fixture
def persisted_graph() -> tuple[Any, InMemorySaver, InMemoryStore]:
    """A graph with its own in-memory checkpointer and store."""
    saver, store = InMemorySaver(), InMemoryStore()
    return build_graph(saver, store), saver, store


def plugin_env(*names: str, site: Path = HELPDESK_PLUGIN) -> dict[str, str]:
    """Return an environment where the plugins ``names`` of ``site`` are installed and used."""
    path = os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, PLUGINS_VARIABLE: ",".join(names)}


def task_class(class_name: str, base: type | None = None, **attrs: Any) -> type:
    """Return a task class (``ClassificationTask`` by default) with ``attrs`` and a question."""
    from llm_as_rnn import ClassificationTask

    question = property(lambda self: "?")
    return type(class_name, (base or ClassificationTask,), {"question": question, **attrs})


def accepted_titles(sections: list[str]) -> bool:
    """Return whether the task check accepts ``sections`` as a task's section titles."""
    from llm_as_rnn.errors import ConfigError

    try:
        task_class("Titled", name="t", description="d", labels=("a",), sections=tuple(sections))()
    except ConfigError:
        return False
    return True


def tiny_llama(vocab_size: int = 97) -> Any:
    """A tiny randomly initialised Llama (built here, nothing downloaded; skips without torch)."""
    pytest.importorskip("torch", reason="local models need torch (the hf extra)")
    pytest.importorskip("transformers", reason="local models need transformers (the hf extra)")
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )
    return LlamaForCausalLM(config).eval()


def bpe_tokenizer(words: str = "", size: int = 400) -> Any:
    """A GPT-2 style byte-level BPE tokenizer trained here on ``words`` (nothing downloaded)."""
    pytest.importorskip("transformers", reason="local models need transformers (the hf extra)")
    corpus = "ADD EDIT REMOVE NONE Feedback: ## PATTERNS RECENT ERRORS - rain dry fronts n1 n2 "
    fast = byte_level_tokenizer([corpus + words] * 20, size)
    fast.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<assistant>"
    )
    return fast


@functools.cache
def grammar_kit() -> tuple[Any, Any]:
    """A byte-level tokenizer and llguidance's view of it (skips without llguidance)."""
    pytest.importorskip("llguidance", reason="constrained decoding needs llguidance (the hf extra)")
    from llm_as_rnn.runtime.grammar import llg_tokenizer

    tokenizer = bpe_tokenizer()
    return tokenizer, llg_tokenizer(tokenizer, {tokenizer.eos_token_id})


def grammar_accepts(structure: Any, text: str) -> bool:
    """Return whether ``text`` is a whole answer under ``structure``'s grammar (llguidance).

    "Accepted" means a constrained local model may write it, token by token.
    """
    import llguidance

    from llm_as_rnn.runtime.grammar import compiled

    tokenizer, llg = grammar_kit()
    matcher = llguidance.LLMatcher(llg, compiled(structure), log_level=0)
    assert not matcher.is_error(), matcher.get_error()
    ids = tokenizer.encode(text)
    if matcher.try_consume_tokens(ids) != len(ids):
        return False
    return bool(matcher.is_accepting() or matcher.is_stopped())


def rewriter_answers(rewrite: str) -> Any:
    """Rule-based for every role except the rewriter, which answers ``rewrite``."""
    base = rule_based(0)

    def respond(messages: list[BaseMessage]) -> str:
        last = str(messages[-1].content)
        if any(m in last for m in ("Current notes:", "could not be used", "over its budget")):
            return rewrite
        return base(messages)

    return respond


def kill_when(args: list[str], ready: Callable[[], bool], timeout: float = 90) -> None:
    """Start ``args`` and SIGKILL it once ``ready()`` holds (or ``timeout`` seconds passed).

    The process must still be running when it is killed: one that ended first
    fails the test (nothing was interrupted).
    """
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not ready() and time.monotonic() < deadline:
        assert proc.poll() is None, "the command ended before it could be killed"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


class RecordingBackend(LocalHFBackend):
    """A local backend (so it can constrain) recording the structure of each call (no model)."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def generate(
        self, messages: Any, sampling: Any, policy: Any, structure: Any = None
    ) -> Generation:
        self.seen.append(structure)
        return Generation(text="", prompt_tokens=1, completion_tokens=1, latency_s=0.0, retries=0)
