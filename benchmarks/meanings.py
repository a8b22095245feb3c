"""What each benchmark's numbers mean: one paragraph (or table) per script, from its JSON.

``MEANINGS[name](result)`` renders one benchmark's section of BENCHMARKS.md
(``page.py``); every figure in it is read from that benchmark's own result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Result = dict[str, Any]


def count(n: int, noun: str) -> str:
    """Return ``n`` and ``noun``, plural unless ``n`` is 1 (``1 step``, ``2 steps``)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def overhead(o: Result) -> str:
    return f"""**overhead** (`overhead.py`): a {o["steps"]}-step weather sequence through the real
graph, SQLite checkpointer and store, call journal and trace, with a fake chat model that
takes exactly {o["latency_ms"]:.0f} ms per call. ideal = {o["calls"]} calls x
{o["latency_ms"]:.0f} ms = {o["ideal_s"]:.1f} s; wall = {o["wall_s"]:.2f} s; ratio =
{o["ratio"]:.3f} (its {o["repetitions"]} repetitions: {o["ratio_min"]:.3f} to
{o["ratio_max"]:.3f}). The floor, measured alternately in the same run: the same LangGraph
run per timestep on the same SQLite checkpointer, three nodes that each make one LangChain
call of the same fake model and nothing else: floor_ratio = {o["floor_ratio"]:.3f}, so ours
is over_floor = {o["over_floor"]:.3f} times the frameworks alone. Per step the machinery
costs {o["ms_per_step"]:.1f} ms, of which the floor {o["floor_ms_per_step"]:.1f} ms; with a
model that answers at once {o["ms_per_step_no_latency"]:.1f} ms (floor
{o["floor_ms_per_step_no_latency"]:.1f} ms). With real model calls of a second or more the
ratio tends to 1; the {o["latency_ms"]:.0f} ms of this benchmark is the hard case."""


def concurrency(c: Result) -> str:
    scale = (
        f" At {c['scale_sequences']} sequences at once (ideal still {c['scale_ideal_s']:.1f} s)"
        f" one process reaches {c['scale_efficiency_1_worker']:.2f} (wall"
        f" {c['scale_wall_s_1_worker']:.2f} s), and `eval --workers 2` (two processes sharing"
        f" the state database) {c['scale_efficiency_2_workers']:.2f} (wall"
        f" {c['scale_wall_s_2_workers']:.2f} s)."
        if "scale_sequences" in c
        else ""
    )
    return f"""**concurrency** (`concurrency.py`): {count(c["sequences"], "sequence")} x
{count(c["steps"], "step")} (method rnn, all at once, one process) through the eval runner
against the loopback fake OpenAI-compatible server answering every call after
{c["latency_ms"]:.0f} ms. ideal = the longest sequence's calls x {c["latency_ms"]:.0f} ms =
{c["ideal_s"]:.2f} s; wall (the run phase) = {c["wall_s"]:.2f} s; efficiency =
{c["efficiency"]:.3f}. The floor, alternated with it in the same run: the same server and
call pattern through a LangGraph skeleton with ChatOpenAI and nothing of ours,
floor_efficiency = {c["floor_efficiency"]:.3f}; efficiency_over_floor =
{c["efficiency_over_floor"]:.3f}. What both lose is client CPU: every call costs
milliseconds in the OpenAI SDK, its HTTP client, LangChain and LangGraph, on one core, so
calls queue on the event loop.{scale} Beyond one machine, workers share a
Postgres `--db` (README, "Scaling out")."""


def tokens(t: Result) -> str:
    return f"""**tokens** (`tokens.py`): weather, {t["steps"]} steps, budget {t["budget"]}, a
fake model whose every rewrite fills the budget. Predictor prompt tokens per step at t = 10
/ 100 / 200: rnn {t["rnn"]["10"]} / {t["rnn"]["100"]} / {t["rnn"]["200"]}, FHC
{t["fhc"]["10"]} / {t["fhc"]["100"]} / {t["fhc"]["200"]} (every past step kept). rnn_growth =
{t["rnn_growth"]:.3f}: LLM-as-RNN is O(1) in t, bounded by the budget; FHC is O(t)
(fhc_over_rnn = {t["fhc_over_rnn"]:.1f} at t = 200). Counting all three calls of an rnn
step ({t["rnn_total"]["200"]} tokens at t = 200), FHC's single prompt is
{t["fhc_over_rnn_total"]:.1f}x larger at t = 200."""


def checkpoint(k: Result) -> str:
    return f"""**checkpoint** (`checkpoint.py`): bytes the SQLite database grows per step, over
t = 10..30 ({k["bytes_per_step_early"]:.0f} B) and t = 190..210
({k["bytes_per_step_late"]:.0f} B); growth = {k["growth"]:.3f}. The state holds the current
observation and the last step record, never the history: growth per step is constant."""


def hf_throughput(h: Result) -> str:
    return f"""**hf_throughput** (`hf_throughput.py`): the bundled SmolLM2-135M, greedy,
{h["new_tokens"]} new tokens per rewrite prompt, prompt by prompt in rotating order, on the
torch thread: our backend {h["ours_tokens_per_s"]:.1f} tokens/s vs raw `model.generate`
{h["raw_tokens_per_s"]:.1f} tokens/s; ratio = {h["ratio"]:.3f}. Raw generation on a second
thread runs at {h["second_thread_ratio"]:.2f} of that speed (each thread running PyTorch
brings its own OpenMP pool): why all PyTorch work runs on one thread."""


def step_modes(s: Result) -> str:
    return f"""**step modes** (`step_modes.py`): calls per step of the paper's three-call step
and of `fused` (critique and rewrite in one call) and `lazy` (no rewrite after a right
prediction), with the deterministic fake model ({s["sequences"]} x {s["steps"]} steps):
{s["calls_per_step"]}."""


def step_modes_embedded(s: Result) -> str:
    rows = "\n".join(
        f"| {m} | {v['calls_per_step']:.2f} | {v['prompt_tokens_per_step']:.0f} | "
        f"{v['accuracy']:.3f} | {v['model_seconds_per_step']:.2f} |"
        for m, v in s["modes"].items()
    )
    return f"""**step modes on the bundled model** (`STEP_MODES_MODEL=embedded step_modes.py`):
SmolLM2-135M-Instruct (Q4_1 GGUF), weather, {count(s["sequences"], "sequence")} x
{count(s["steps"], "step")}, budget 256, {s["new_tokens"]} new tokens per call:

| mode | calls/step | prompt tokens/step | accuracy | model s/step |
|---|---|---|---|---|
{rows}

Calls per step exceed the fake model's because this model often answers off format or over
budget: every re-ask and compress call is a call. These rows show the modes' cost; a 135M
model's accuracy means nothing."""


def delta_tokens(d: Result) -> str:
    full = d["full"]["rewriter_completion_tokens_per_step"]
    delta = d["delta"]["rewriter_completion_tokens_per_step"]
    return f"""**delta updates** (`delta_tokens.py`): weather, {count(d["sequences"], "sequence")} x
{count(d["steps"], "step")}, lambda = {d["budget"]}, the fake model that never forgets a note
(`fake-long`). Rewriter output tokens per step: {full:.0f} rewriting the whole memory
(`--rewrite-mode full`) against {delta:.0f} writing operations (`--rewrite-mode delta`):
delta_over_full = {d["delta_over_full"]:.4f}; the invariant held at every step of both:
{d["invariant_held"]}."""


def kinds(counts: dict[str, int]) -> str:
    """Return rejection counts by kind as ``" (cut off 9, empty 1)"``, or nothing."""
    return f" ({', '.join(f'{k} {n}' for k, n in counts.items())})" if counts else ""


def delta_embedded(d: Result) -> str:
    rows = "\n".join(
        f"| {mode} | {m['changed_after_wrong']:.0%} ({count(m['wrong_steps'], 'wrong step')}) | "
        f"{m['changed_share']:.0%} | {m['rejected_share']:.0%}{kinds(m['rejected_by_kind'])} | "
        f"{m['rewriter_completion_tokens_per_step']:.1f} |"
        for mode, m in (
            ("full, free text (before)", (d["free_text"] or {}).get("full")),
            ("full, structured", d["full"]),
            ("delta, free text (before)", (d["free_text"] or {}).get("delta")),
            ("delta, structured", d["delta"]),
        )
        if m is not None  # a quick run has no free-text rows
    )
    free_text = (
        " and, in the same run, as free text (`--structured off`: every update before issue 24)"
        if d["free_text"]
        else " (a quick run: no free-text rows)"
    )
    return f"""**structured memory updates on the bundled model** (`delta_embedded.py`): weather,
1 sequence x {d["steps"]} steps, budget 256, 96 new tokens per call (as `make demo`), once
per rewrite mode, rewrites constrained to their structure (the default){free_text}:

| mode | changed after wrong | changed, all | rejected (kinds) | rewriter tokens/step |
|---|---|---|---|---|
{rows}

What a step learns from is a wrong prediction: after one, the memory should change. A 135M
model: this shows the loop completes and the updates land; nothing is claimed about
accuracy."""


def local_batching(b: Result) -> str:
    ratio = b["unequal_lengths_ratio"]
    unequal = (
        f" At unequal lengths (free answers run to the cap) the ratio would be {ratio:.3f}:"
        " it measures how much shorter structured answers are, not the grammar."
        if ratio is not None
        else ""  # a quick run leaves it out
    )
    rows = "\n".join(
        f"| {n} | {v['serial_tokens_per_s']:.1f} | {v['batched_tokens_per_s']:.1f} | "
        f"{v['batched_over_serial']:.2f} | {v['same_answers']} |"
        for n, v in b["by_sequences"].items()
    )
    return f"""**batched local generation** (`local_batching.py`): the bundled model, greedy,
{b["new_tokens"]} new tokens on one rewrite prompt from each of n weather sequences, their
calls one at a time vs together (continuous batching; `LLM_AS_RNN_LOCAL_BATCH`, default 8),
{b["repetitions"]} repetitions. Aggregate generated tokens per second:

| sequences | one at a time | batched | batched_over_serial | same answers |
|---|---|---|---|---|
{rows}

The floor, in the same run: the model alone (`transformers` `generate`, nothing of ours) on
the same 8 prompts, one at a time vs one padded batch: floor_batched_over_serial =
{b["floor_batched_over_serial"]:.2f} (repetitions {b["floor"]["repetitions"]}). It is what
batching gains with the frameworks alone (every row padded to the longest prompt and kept
to the end); the engine's joining, leaving and per-row caps are what ours adds to it.

Constrained decoding's cost (issue 24): the 8 calls batched, constrained to the weather
full-mode section skeleton, against free answers capped at the constrained ones' lengths
({b["constrained_lengths"]} tokens), alternating: {b["constrained_tokens_per_s"]:.2f} vs
{b["free_tokens_per_s"]:.2f} tokens/s, constrained_over_free =
{b["constrained_over_free"]:.3f}.{unequal}"""


def smoke_batching(s: Result) -> str:
    t = s["settings"]
    return f"""**smoke evaluation** (`smoke_batching.py`): `eval --tasks {",".join(t["tasks"])}
--methods {",".join(t["methods"])} --sequences {t["sequences"]} --steps {t["steps"]} --budget
{t["budget"]} --max-new-tokens {t["max_new_tokens"]} --concurrency {t["concurrency"]}` on the
bundled model: one call at a time {s["serial_s"]:.0f} s, batched {s["batched_s"]:.0f} s,
wall_ratio = {s["wall_ratio"]:.3f}; rows per decoding pass in the batched run
{s["rows_per_pass"]} (mean {s["mean_rows_per_pass"]:.2f}); same predictions in both runs:
{s["same_predictions"]}. With at most {t["concurrency"]} calls in flight, the batched
throughput at that many rows (batched local generation, above) bounds the gain; prompts
(prefill) and label scoring come on top."""


def memory_first(m: Result) -> str:
    p, c = m["shared_prefix"], m["cost"]
    return f"""**memory first** (`memory_first.py`): with `--prompt-order memory-first` every
role's prompt opens with the same memory block. One weather step with a
{p["memory_tokens"]}-token memory, chat-templated for the bundled model: the critique and
rewrite prompts share {p["role-first"]["shared_with_predict"]} tokens with the predict prompt
role-first and {p["memory-first"]["shared_with_predict"]} memory-first, i.e.
{p["role-first"]["reusable_share"]:.0%} vs {p["memory-first"]["reusable_share"]:.0%} of the
step's prompt tokens a prefix cache computes once. What it costs the bundled 135M model
(weather, choice answers, {m["sequences"]} x {m["steps"]} steps, budget 256): role-first
{c["role-first"]}; memory-first {c["memory-first"]} (log-loss change
{m["log_loss_change"]:+.3f} nats). A 135M model on a few steps: this shows whether the
order breaks its calls, not which predicts better."""


def grammar_mask(g: Result) -> str:
    d, f = g["delta"], g["full"]
    return f"""**grammar mask per token** (`grammar_mask.py`): constrained decoding's cost per
decoding step, llguidance's mask for one row on a {g["vocab"]:,}-token byte-level BPE
vocabulary (trained by the script; no model run), unpacked and applied to the logits,
median over {g["answers"]} answers per grammar, one thread: delta operations grammar
{d["mask_ms"]:.2f} ms per token (p90 {d["mask_ms_p90"]:.2f} ms, first token
{d["first_mask_ms"]:.2f} ms), full section skeleton {f["mask_ms"]:.2f} ms (p90
{f["mask_ms_p90"]:.2f} ms, first {f["first_mask_ms"]:.2f} ms); building the tokenizer's
view once per model {g["tokenizer_setup_s"]:.2f} s."""


def prefix_cache(p: Result) -> str:
    off = p["cache_off"]["h0_over_predictor_prefill"] if "cache_off" in p else None
    without = f" ({off:.3f} with the cache off, same run)" if off is not None else ""
    return f"""**prefix cache** (`prefix_cache.py`): the bundled model, choice mode on weather,
calls sharing cached key/value states of their common prompt prefixes: the h_0 scoring adds
h0_over_predictor_prefill = {p["h0_over_predictor_prefill"]:.3f} of the predictor's prefill
time{without}. Its floor: the h_0 prompt's tokens that follow its longest prefix among the run's
earlier prompts are h0_token_share = {p["h0_token_share"]:.3f} of the predictor's (the
observation, new at every step, follows the memory, which sits in the system prompt: with a
causal model its key/value states differ under each memory, so no cache can reuse them); a
pass's time grows with its new tokens plus a fixed cost, so while the h_0 prompt runs in a
pass of its own the ratio cannot fall below that share. The cache peaked at
{p["peak_cache_bytes"]:,} bytes of {p["configured_bytes"]:,} configured; same answers cached
and uncached: {p["same_answers"]}."""


def threads(t: Result) -> str:
    loads = list(t["default_over_best"])
    rows = "\n".join(
        f"| {n} | "
        + " | ".join(
            f"{by_load[b]:.2f} ({t['score_seconds'][n][b]:.2f} + {t['generate_seconds'][n][b]:.2f})"
            for b in loads
        )
        + " |"
        for n, by_load in t["seconds"].items()
    )
    return f"""**torch threads under contention** (`threads.py`): the bundled model, one scored
predictor pass and a greedy generation of {t["new_tokens"]} tokens, seconds (the pass + the
generation) by PyTorch thread count (rows) and busy-loop processes beside it (columns;
{t["cores"]} cores),
{t["repetitions"]} alternated repetitions:

| threads | {" | ".join(f"{b} busy" for b in loads)} |
|---|{"---|" * len(loads)}
{rows}

The default (`{t["default_threads"]}`: before each task on the torch thread, the cores the
machine's other runnable threads leave, at least one; `runtime/threads.py`) took
{t["default_over_best"]} times the best fixed count's seconds (by busy loops).
`LLM_AS_RNN_TORCH_THREADS` fixes the count."""


MEANINGS: dict[str, Callable[[Result], str]] = {
    f.__name__: f
    for f in (
        overhead,
        concurrency,
        tokens,
        checkpoint,
        hf_throughput,
        step_modes,
        step_modes_embedded,
        delta_tokens,
        delta_embedded,
        local_batching,
        smoke_batching,
        memory_first,
        grammar_mask,
        prefix_cache,
        threads,
    )
}
"""Each benchmark's section, by its name in ``run_all.RUNS``."""
