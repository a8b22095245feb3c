"""A tiny agent that forecasts tomorrow's weather and learns when tomorrow comes.

Each day the agent asks the learner for a forecast and acts on it before the
truth is known; the next day the truth arrives and the learner rewrites its
memory. Run: ``python examples/online_agent.py --model fake --days 4``
(``--model embedded`` uses the bundled local model).
"""

from __future__ import annotations

import argparse

from llm_as_rnn import Context, OnlineLearner
from llm_as_rnn.data import weather


def act(forecast: str | None) -> str:
    """The agent's decision, made before the truth is known."""
    return "take an umbrella" if forecast in ("light rain", "heavy rain") else "leave the umbrella"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fake")
    parser.add_argument("--days", type=int, default=4)
    args = parser.parse_args()
    # Short answers and critiques; the rewriter's limit follows the budget.
    sampling = {role: {"max_new_tokens": 48} for role in ("predictor", "critic")}
    learner = OnlineLearner(Context(model=args.model, budget=300, seed=0, sampling=sampling))
    for day in weather.window(200, args.days):
        forecast = learner.predict("seattle", day["input"], id=day["id"])
        answer = forecast["answer"]
        print(f"{day['id']}: forecast for tomorrow = {answer} -> {act(answer)}")
        record = learner.learn("seattle", day["target"])  # a day later: the truth
        verdict = "right" if record["correct"] else "wrong"
        changed = record["memory_after"] != record["memory_before"]
        print(f"{day['id']}: truth = {record['target']} ({verdict}); memory changed: {changed}")
    print("\nmemory now:\n" + learner.memory("seattle"))
    print(f"\n{len(learner.history('seattle'))} steps learned")
    learner.close()


if __name__ == "__main__":
    main()
