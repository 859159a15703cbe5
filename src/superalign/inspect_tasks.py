"""The world's evaluations as inspect_ai tasks, and superalign's models as an inspect_ai model provider.

    inspect eval superalign/world -T kind=fact -T n=50 --model openai/gpt-4o-mini     # any model inspect supports
    inspect eval superalign/world -T kind=instruction --model superalign/smollm2-135m-instruct

The task's samples are the world's prompts (``World(seed).tasks(kind, n, split)``) and nothing else: the ground
truth stays in the scorer, which is the world's gold evaluator (the same numbers as the baseline stage's). The
``superalign/<model>`` provider loads a model the way superalign does (an embedded model, a tiny one, a local
directory) and answers greedily. Both are registered through the ``inspect_ai`` entry point of this package.
"""

from __future__ import annotations

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import (ChatMessage, ChatMessageSystem, ChatMessageUser, GenerateConfig, ModelAPI, ModelOutput,
                              modelapi)
from inspect_ai.scorer import Score, Target, accuracy, mean, scorer, stderr
from inspect_ai.solver import TaskState, generate

from superalign.world import World
from superalign.world.core import GoldEvaluator


def _samples(tasks) -> list[Sample]:
    def message(m: dict) -> ChatMessage:
        return ChatMessageSystem(content=m["content"]) if m["role"] == "system" else ChatMessageUser(content=m["content"])

    return [Sample(id=t.id, input=[message(m) for m in t.messages], metadata={"kind": t.kind, "category": t.category})
            for t in tasks]


@scorer(metrics={"passed": [accuracy(), stderr()], "gold": [mean(), stderr()]})
def world_gold(seed: int = 0, kind: str = "fact", split: str = "test"):
    """The world's gold evaluator of ``kind`` tasks of ``split``: ``passed`` (instruction: every constraint
    strictly; fact: the right answer; policy: no violation) and the gold reward in [0, 1]."""
    world = World(seed)
    evaluator = GoldEvaluator(world)
    tasks = {t.id: t for t in world.tasks(kind, None, split)}

    async def score(state: TaskState, target: Target) -> Score:
        result = evaluator.score(tasks[str(state.sample_id)], state.output.completion)
        return Score(value={"passed": float(result.passed), "gold": result.gold}, answer=state.output.completion,
                     metadata={"details": result.details})

    return score


@task
def world(kind: str = "fact", n: int = 50, seed: int = 0, split: str = "test", max_tokens: int = 128) -> Task:
    """``n`` tasks of ``kind`` (fact, instruction, policy) from ``World(seed)``'s ``split``, answered greedily and
    scored by the world's gold evaluator."""
    tasks = World(seed).tasks(kind, n, split)
    return Task(dataset=MemoryDataset(_samples(tasks), name=f"superalign-world-{kind}-s{seed}-{split}"),
                solver=generate(), scorer=world_gold(seed, kind, split), config=GenerateConfig(max_tokens=max_tokens, temperature=0.0),
                name=f"superalign_world_{kind}")


class SuperalignModel(ModelAPI):
    """A superalign model (``superalign models list``), answering greedily on this machine."""

    def __init__(self, model_name: str, base_url: str | None = None, api_key: str | None = None,
                 config: GenerateConfig = GenerateConfig(), device: str = "auto"):
        super().__init__(model_name=model_name, base_url=base_url, api_key=api_key, config=config)
        from superalign.context import load_local

        self.lm = load_local(model_name, device)

    def max_connections(self) -> int:
        return 1  # one model in this process: requests are answered one at a time

    async def generate(self, input: list[ChatMessage], tools, tool_choice, config: GenerateConfig) -> ModelOutput:
        from superalign.models.generation import greedy

        messages = [{"role": m.role, "content": m.text} for m in input]
        (reply,) = greedy(self.lm, [messages], max_new_tokens=config.max_tokens or 128, batch_size=1)
        return ModelOutput.from_content(model=self.model_name, content=reply)


@modelapi(name="superalign")
def superalign_provider():
    return SuperalignModel


__all__ = ["SuperalignModel", "world", "world_gold"]
