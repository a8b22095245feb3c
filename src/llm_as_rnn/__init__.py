"""LLM-as-RNN: a frozen LLM as a recurrent predictor with a rewritable memory.

The public surface: ``build_graph`` (the LangGraph state machine), ``Context``
(run parameters), ``run_sequence`` (the resumable sequence driver), the state
records, and ``get_task``.
"""

from llm_as_rnn.context import Context, Sampling
from llm_as_rnn.graph import build_graph
from llm_as_rnn.sequence import SequenceResult, read_trace, run_sequence
from llm_as_rnn.state import Feedback, Observation, Prediction, State, StepRecord
from llm_as_rnn.tasks import get_task

__all__ = [
    "Context",
    "Feedback",
    "Observation",
    "Prediction",
    "Sampling",
    "SequenceResult",
    "State",
    "StepRecord",
    "build_graph",
    "get_task",
    "read_trace",
    "run_sequence",
]
