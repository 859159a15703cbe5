"""One small chat interface for every role that needs a language model (judge, critic, debater, attacker,
explainer), with three implementations: a local HF model, an OpenAI-compatible HTTP endpoint, a script."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import httpx

from superalign.models.generation import GenerationConfig, generate
from superalign.models.sources import LoadedModel


class ChatError(RuntimeError):
    """A chat backend failed (HTTP error, timeout, malformed reply, script exhausted)."""


@runtime_checkable
class ChatModel(Protocol):
    """Anything that answers a list of chat messages ({"role", "content"} dicts) with one string."""

    name: str

    def chat(self, messages: list[dict], max_new_tokens: int = 256, temperature: float = 0.0) -> str: ...


class LocalChatModel:
    """A loaded local decoder. temperature 0 -> greedy; otherwise sampled, reproducibly: call k uses seed + k."""

    def __init__(self, lm: LoadedModel, name: str | None = None, seed: int = 0, top_p: float = 1.0):
        if lm.kind != "decoder":
            raise ValueError(f"{lm.name} is an encoder; a chat model needs a decoder")
        self.lm = lm
        self.name = name or lm.name
        self.seed = seed
        self.top_p = top_p
        self._calls = 0

    def chat(self, messages: list[dict], max_new_tokens: int = 256, temperature: float = 0.0) -> str:
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=self.top_p,
            do_sample=temperature > 0,
            seed=self.seed + self._calls,
            batch_size=1,
        )
        self._calls += 1
        return generate(self.lm, [messages], config)[0]


class OpenAIChatModel:
    """Any OpenAI-compatible endpoint (vLLM, llama.cpp server, hosted APIs) via POST {base_url}/chat/completions.

    `base_url` may end with or without `/v1`; it is added when missing.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 60.0,
                 name: str | None = None, client: httpx.Client | None = None):
        base = base_url.rstrip("/")
        self.url = (base if base.endswith("/v1") else base + "/v1") + "/chat/completions"
        self.model = model
        self.name = name or model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.Client(timeout=timeout, headers=headers)

    def chat(self, messages: list[dict], max_new_tokens: int = 256, temperature: float = 0.0) -> str:
        payload = {"model": self.model, "messages": messages, "max_tokens": max_new_tokens,
                   "temperature": temperature}
        try:
            response = self._client.post(self.url, json=payload)
        except httpx.TimeoutException as err:
            raise ChatError(f"{self.url} timed out ({err.__class__.__name__})") from err
        except httpx.HTTPError as err:
            raise ChatError(f"could not reach {self.url}: {err}") from err
        if response.status_code >= 400:
            raise ChatError(f"{self.url} answered HTTP {response.status_code}: {response.text[:300]}")
        try:
            return response.json()["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise ChatError(f"{self.url} sent a malformed reply ({err!r}): {response.text[:300]}") from err

    def close(self) -> None:
        self._client.close()


class ScriptedChatModel:
    """A fake for tests: replies from a list (in order) or a function of the messages. Records every call."""

    def __init__(self, replies: list[str] | Callable[[list[dict]], str], name: str = "scripted"):
        self.replies = replies
        self.name = name
        self.calls: list[list[dict]] = []

    def chat(self, messages: list[dict], max_new_tokens: int = 256, temperature: float = 0.0) -> str:
        self.calls.append(copy.deepcopy(messages))
        if callable(self.replies):
            return self.replies(messages)
        index = len(self.calls) - 1
        if index >= len(self.replies):
            raise ChatError(f"ScriptedChatModel {self.name!r} has only {len(self.replies)} replies; call {index + 1}")
        return self.replies[index]


class Reply:
    """What :func:`ask` got: the parsed value, or the error after the last try (``value`` None, ``error`` set)."""

    def __init__(self, value=None, raw: str = "", error: str = "", tries: int = 0):
        self.value, self.raw, self.error, self.tries = value, raw, error, tries

    @property
    def ok(self) -> bool:
        return not self.error


def ask(role: ChatModel, messages: list[dict], parse: Callable[[str], object] = str, tries: int = 3,
        max_new_tokens: int = 256, temperature: float = 0.0) -> Reply:
    """Ask ``role`` and parse its reply, retrying when the backend fails (:class:`ChatError`: a timeout, an
    HTTP error, a malformed body) or the reply does not parse (``parse`` raises ValueError). After ``tries``
    failures the reply is a failure with the last error: the caller records it and never counts it as an answer.
    """
    error, raw = "", ""
    for attempt in range(1, tries + 1):
        try:
            raw = role.chat(messages, max_new_tokens=max_new_tokens, temperature=temperature)
            return Reply(parse(raw), raw, "", attempt)
        except ChatError as err:
            error = f"{role.name}: {err}"
        except ValueError as err:
            error = f"{role.name}: reply did not parse ({err}): {raw[:200]!r}"
    return Reply(None, raw, error, tries)
