"""LLM-as-RNN: a frozen LLM as a recurrent predictor with a rewritable memory.

The public surface:

- the graph: ``build_graph`` (the LangGraph state machine), ``Context`` and
  ``Sampling`` (run parameters), the state records;
- running it: ``run_sequence`` (the resumable sequence driver),
  ``read_trace``, ``open_storage`` (checkpointer and store for a path or URL),
  ``OnlineLearner`` (predict now, learn when the truth arrives);
- the learned memory: ``llm_as_rnn.memory`` (``log``, ``show``, ``diff``,
  ``export``, ``rewind``, ``edit``: the ``llm-as-rnn memory`` verbs);
  ``read_memory_file`` and ``MemoryFile`` (a memory file, for a warm start);
- tasks: ``Task``, ``ClassificationTask``, ``RegressionTask``, ``Score`` to
  define your own, ``get_task`` to look one up by name (plugins included);
- errors: ``LlmAsRnnError`` and under it ``ConfigError`` (``DataError``),
  ``StateError`` (``LearnerStateError``), ``LeaseError``, ``EndpointError``
  (see ``llm_as_rnn.errors``); warnings: ``LlmAsRnnWarning``
  (``MemoryFitWarning``).
"""

from llm_as_rnn.core.context import Context
from llm_as_rnn.core.graph import build_graph
from llm_as_rnn.core.memfile import MemoryFile
from llm_as_rnn.core.sequence import SequenceResult, read_trace, run_sequence
from llm_as_rnn.core.state import Feedback, Observation, Prediction, State, StepRecord
from llm_as_rnn.core.warm import read_memory_file
from llm_as_rnn.errors import (
    ConfigError,
    DataError,
    EndpointError,
    LearnerStateError,
    LeaseError,
    LlmAsRnnError,
    LlmAsRnnWarning,
    MemoryFitWarning,
    StateError,
)
from llm_as_rnn.frontends.online import OnlineLearner
from llm_as_rnn.runtime.spec import Sampling
from llm_as_rnn.runtime.storage import open_storage
from llm_as_rnn.tasks import ClassificationTask, RegressionTask, Score, Task, get_task

__all__ = [
    "ClassificationTask",
    "ConfigError",
    "Context",
    "DataError",
    "EndpointError",
    "Feedback",
    "LearnerStateError",
    "LeaseError",
    "LlmAsRnnError",
    "LlmAsRnnWarning",
    "MemoryFile",
    "MemoryFitWarning",
    "Observation",
    "OnlineLearner",
    "Prediction",
    "RegressionTask",
    "Sampling",
    "Score",
    "SequenceResult",
    "State",
    "StateError",
    "StepRecord",
    "Task",
    "build_graph",
    "get_task",
    "open_storage",
    "read_memory_file",
    "read_trace",
    "run_sequence",
]
