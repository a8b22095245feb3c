"""Shared fixtures: deterministic models and graphs with in-memory persistence."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from llm_as_rnn import Context, build_graph
from llm_as_rnn.testing import FunctionChatModel, rule_based

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


def task_class(class_name: str, base: type | None = None, **attrs: Any) -> type:
    """Return a task class (``ClassificationTask`` by default) with ``attrs`` and a question."""
    from llm_as_rnn import ClassificationTask

    question = property(lambda self: "?")
    return type(class_name, (base or ClassificationTask,), {"question": question, **attrs})


def tiny_llama() -> Any:
    """A tiny randomly initialised Llama (built here, nothing downloaded; skips without torch)."""
    pytest.importorskip("torch", reason="local models need torch (the hf extra)")
    pytest.importorskip("transformers", reason="local models need transformers (the hf extra)")
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=97,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )
    return LlamaForCausalLM(config).eval()
