"""Deterministic chat models for tests, demos without an LLM, and benchmarks.

``FunctionChatModel`` answers with a Python function of the messages.
``rule_based`` is a function that plays every role of the graph plausibly and
deterministically (same prompt, same answer), so sequences can be replayed and
compared exactly. It is selected by the model spec ``fake[:seed]``, e.g. from
a Studio context, where no Python object can be passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

Responder = Callable[[list[BaseMessage]], str]
Scorer = Callable[[list[BaseMessage], str, list[str]], list[float]]
"""Log-probabilities of continuations after a prompt and an answer prefix."""


def _reply(text: str, max_tokens: int | None) -> ChatResult:
    """Return a reply cut at ``max_tokens`` (three characters a token), as a server cuts."""
    finish = "stop"
    if max_tokens is not None and len(text) > 3 * max_tokens:
        text, finish = text[: 3 * max_tokens], "length"
    message = AIMessage(text, response_metadata={"finish_reason": finish})
    return ChatResult(generations=[ChatGeneration(message=message)])


class FunctionChatModel(BaseChatModel):
    """A chat model whose reply is ``respond(messages)``, ``latency_s`` after the call.

    The latency includes computing the reply, as a server's does. A
    ``max_tokens`` keyword cuts the reply (finish reason ``length``).
    """

    respond: Responder
    latency_s: float = 0.0
    scorer: Scorer | None = None
    """Scores labels for choice mode; None: the model cannot (free mode)."""

    def label_logprobs(
        self, messages: list[BaseMessage], prefix: str, continuations: list[str]
    ) -> list[float] | None:
        """Return the scorer's log-probabilities of ``continuations`` (None without one)."""
        return None if self.scorer is None else self.scorer(messages, prefix, continuations)

    @property
    def _llm_type(self) -> str:
        return "function-chat-model"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        deadline = time.perf_counter() + self.latency_s
        text = self.respond(messages)
        time.sleep(max(0.0, deadline - time.perf_counter()))
        return _reply(text, kwargs.get("max_tokens"))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        deadline = time.perf_counter() + self.latency_s
        text = self.respond(messages)
        if self.latency_s:
            await _sleep_until(deadline)
        return _reply(text, kwargs.get("max_tokens"))


async def _sleep_until(deadline: float) -> None:
    """Sleep until ``time.perf_counter()`` reaches ``deadline``, precisely.

    The event loop's timers overshoot by up to a millisecond, so sleep a bit
    less and yield until the deadline.
    """
    await asyncio.sleep(max(0.0, deadline - time.perf_counter() - 0.0015))
    while time.perf_counter() < deadline:
        await asyncio.sleep(0)


def _digest(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\x00".join(parts).encode()).digest()[:8], "big")


def _between(text: str, tag: str) -> str:
    match = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", text, re.S)
    return match.group(1) if match else ""


def _notes(messages: list[BaseMessage]) -> str:
    """Return the notes a rewriter's prompt gives: at its end, or at the top (memory-first)."""
    last = str(messages[-1].content)
    if "Current notes: the memory at the top." in last:
        return _between(str(messages[0].content), "memory")
    return last.partition("Current notes:\n\n")[2]


def _line(text: str, pattern: str) -> str:
    match = re.search(pattern, text, re.M)
    return match.group(1).strip() if match else ""


def _terms(prompt: str, seed: int) -> dict[str, str]:
    """Return the task's own words in a prompt: prediction, truth, an input field, a section.

    The field is one of the observation's ``name: value`` lines (``seen``: the
    line itself); the section is the one the fake rewriter writes lessons
    under (the second).
    """
    observation = _between(prompt, "observation")
    fields = re.findall(r"^([^:\n]{1,60}): *(.*)$", observation, re.M)
    name, value = fields[_digest(str(seed), prompt) % len(fields)] if fields else ("", "")
    sections = re.findall(r"^## (.+)$", _between(prompt, "memory") or _notes_in(prompt), re.M)
    notes = re.findall(r"^- (.+)$", _between(prompt, "memory"), re.M)
    truth = _line(prompt, r"^Truth: (.*)$") or _line(prompt, r"the truth was (.*?): ")
    return {
        "prediction": _between(prompt, "prediction") or "?",
        "truth": truth,
        "field": name or "the input",
        "seen": f"{name} is {value[:40]}" if name else f"the input reads {observation[:40]!r}",
        "section": sections[1 if len(sections) > 1 else 0] if sections else "the notes",
        "note": f"'- {notes[0]}'" if notes else "none",
    }


def _notes_in(prompt: str) -> str:
    return prompt.partition("Current notes:\n\n")[2]


def _lesson(terms: dict[str, str]) -> str:
    """A critic's lesson in the task's terms (its input fields, labels or numbers, sections)."""
    seen, truth, section = terms["seen"], terms["truth"], terms["section"]
    if truth == terms["prediction"]:
        return f"When {seen}, {truth} held: keep it under {section}."
    return f"When {seen}, expect {truth}: write it under {section}."


def _judged(terms: dict[str, str], verdict: str) -> str:
    """A judge's four lines in the task's terms."""
    field, prediction = terms["field"], terms["prediction"]
    return (
        f"Verdict: {verdict}\nWrong if: {field} points away from {prediction}\n"
        f"Relied on: {terms['note']}\n"
        f"Lesson: check {field} before answering {prediction}; note under {terms['section']} "
        "what it showed."
    )


def rule_based(seed: int = 0, long_memories: bool = False) -> Responder:
    """Return a deterministic responder that plays predictor, critic and rewriter.

    Every reply is built from the prompt's own words (the task's labels or
    numbers, input fields and memory sections), so it speaks any task's terms.

    - predictor: picks one of the offered labels (a number) by a hash of the prompt;
    - critic / judge: a one-sentence lesson / a verdict with the judge's lines;
    - rewriter: the old memory with the newest lesson as a bullet under the
      second section (oldest bullets dropped past five per section); with
      ``long_memories``, three long bullets a step and nothing ever dropped;
    - compress: every section cut to its first two bullets.
    """

    def respond(messages: list[BaseMessage]) -> str:
        prompt = "\n".join(str(m.content) for m in messages)
        last = str(messages[-1].content)
        headers = re.findall(r"^## ([A-Z][A-Z0-9 /&-]*)$", last, re.M)
        if "Output only the memory" in last and "over its budget" in last:
            return _compress(_between(prompt, "memory"), headers)
        if "operations that put the lesson" in last:
            return _operations(last, _notes(messages), _fused_lesson(prompt, seed))
        if "First write one line 'Feedback:" in last:
            lesson = _fused_lesson(prompt, seed)
            notes = _notes(messages)
            headers = re.findall(r"^## ([A-Z][A-Z0-9 /&-]*)$", notes, re.M)
            return f"Feedback: {lesson}\n" + _rewrite(notes, headers, lesson, long_memories)
        if "Rewrite the notes below" in last:
            notes = _notes(messages)
            headers = re.findall(r"^## ([A-Z][A-Z0-9 /&-]*)$", notes, re.M)
            return _rewrite(notes, headers, _line(last, r"^Feedback: (.*)$"), long_memories)
        if "Verdict: plausible" in last:
            verdict = "plausible" if _digest(str(seed), prompt) % 3 else "implausible"
            return _judged(_terms(prompt, seed), verdict)
        if "Write only the lesson" in last:
            return _lesson(_terms(prompt, seed))
        options = re.search(r"Answer: <one of ([^>]*)>", last)
        if options:
            labels = [x.strip() for x in options.group(1).split(",")]
            return f"Answer: {labels[_digest(str(seed), prompt) % len(labels)]}"
        number = re.search(r"Answer: <number", last)
        if number:
            return f"Answer: {(_digest(str(seed), prompt) % 2001 - 1000) / 1000:.3f}"
        return "I am not sure."

    return respond


def _fused_lesson(prompt: str, seed: int) -> str:
    """A fused call's feedback: the lesson against its outcome, or a plausible verdict alone."""
    terms = _terms(prompt, seed)
    if "Outcome: " in prompt:
        return _lesson(terms)
    return f"Verdict: plausible: {terms['prediction']} fits what {terms['field']} shows."


def rule_scorer(seed: int = 0) -> Scorer:
    """Return deterministic label scores for choice mode.

    A label's score is a hash of the prompt, raised each time the memory names
    the label (so a memory can lift or lower a label's probability).
    """

    def score(messages: list[BaseMessage], prefix: str, continuations: list[str]) -> list[float]:
        prompt = "\n".join(str(m.content) for m in messages)
        memory = _between(prompt, "memory").lower()
        return [
            -(_digest(str(seed), prompt, c) % 1000) / 500 + 0.5 * memory.count(c.strip().lower())
            for c in continuations
        ]

    return score


def _sections(memory: str, headers: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {h: [] for h in headers}
    current: str | None = None
    for line in memory.splitlines():
        name = line[3:].strip() if line.startswith("## ") else None
        if name in out:
            current = name
        elif current is not None and line.strip():
            out[current].append(line.strip())
    return out


def _render(sections: dict[str, list[str]]) -> str:
    return "\n\n".join(f"## {h}\n" + "\n".join(lines) for h, lines in sections.items())


def _rewrite(memory: str, headers: list[str], feedback: str, long_memories: bool) -> str:
    sections = _sections(memory, headers)
    lesson = feedback.partition("Lesson: ")[2] or feedback  # the lesson, without the verdict
    if long_memories:
        long = (feedback[:160] + " ") * 2
        for n, header in enumerate(headers[:3]):
            sections[header].append(f"- note {len(sections[header]) + 1}.{n}: {long.strip()}")
    elif len(headers) > 1:
        target = headers[1]
        sections[target] = [*sections[target], f"- {lesson[:160]}"][-5:]
    return _render(sections)


def _operations(last: str, notes: str, lesson: str) -> str:
    """Delta mode: add the lesson as a note of the second section, drop its oldest past five."""
    given = _line(last, r"^Feedback: (.*)$")
    fused = "First write one line 'Feedback:" in last
    if not fused and given:
        lesson = given.partition("Lesson: ")[2] or given
    lesson = lesson[:160]
    names = _line(last, r"^Sections: (.*?)\. Keep").split(", ")
    target = names[1] if len(names) > 1 else names[0] or "NOTES"
    body = notes.partition(f"## {target}\n")[2].split("\n## ")[0]
    ids = re.findall(r"^- \[n(\d+)\]", body, re.M)
    ops = [f"ADD {target}: {lesson}"]
    if len(ids) >= 5:
        ops.append(f"REMOVE n{ids[0]}")
    return (f"Feedback: {lesson}\n" if fused else "") + "\n".join(ops)


def _compress(memory: str, headers: list[str]) -> str:
    return _render({h: lines[:2] for h, lines in _sections(memory, headers).items()})


def fake_model(
    seed: int = 0, latency_s: float = 0.0, *, long_memories: bool = False
) -> FunctionChatModel:
    """Return the deterministic rule-based chat model (spec ``fake[:seed]``, ``fake-long``)."""
    return FunctionChatModel(
        respond=rule_based(seed, long_memories), latency_s=latency_s, scorer=rule_scorer(seed)
    )


def byte_level_tokenizer(corpus: Iterable[str], size: int) -> Any:
    """Return a GPT-2 style byte-level BPE tokenizer of ``size`` tokens trained on ``corpus``.

    The bundled SmolLM2's kind of tokenizer, built here (nothing downloaded) for
    tests and benchmarks of local decoding; ``<|endoftext|>`` is its end and pad
    token. Needs the ``hf`` extra (``tokenizers``, ``transformers``).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]  # transformers' own
        tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )


@contextlib.contextmanager
def busy_loops(count: int) -> Iterator[None]:
    """Keep ``count`` other processes spinning on the CPU while the block runs (contention)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(1.0 if count else 0.0)  # let them start and be scheduled
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
