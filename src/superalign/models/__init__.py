"""Models: sources and loading (embedded, hub, local, tiny), generation and log-probs, internals, chat roles."""

from superalign.models.chat import (
    ChatError,
    ChatModel,
    LocalChatModel,
    OpenAIChatModel,
    ScriptedChatModel,
)
from superalign.models.generation import (
    CompletionBatch,
    GenerationConfig,
    completion_batch,
    completion_logprobs,
    generate,
    generate_ids,
    greedy,
    sequence_logprobs,
)
from superalign.models.internals import CacheResult, hook_names, run_with_cache, run_with_hooks
from superalign.models.sources import (
    DEFAULT_MODEL,
    LoadedModel,
    ModelCorrupt,
    ModelInfo,
    ModelNotPulled,
    PullError,
    encode,
    home,
    info,
    list_models,
    load,
    pull,
)
from superalign.models.tokenizer import byte_tokenizer

__all__ = [
    "DEFAULT_MODEL",
    "CacheResult",
    "ChatError",
    "ChatModel",
    "CompletionBatch",
    "GenerationConfig",
    "LoadedModel",
    "LocalChatModel",
    "ModelCorrupt",
    "ModelInfo",
    "ModelNotPulled",
    "OpenAIChatModel",
    "PullError",
    "ScriptedChatModel",
    "byte_tokenizer",
    "completion_batch",
    "completion_logprobs",
    "encode",
    "generate",
    "generate_ids",
    "greedy",
    "hook_names",
    "home",
    "info",
    "list_models",
    "load",
    "pull",
    "run_with_cache",
    "run_with_hooks",
    "sequence_logprobs",
]
