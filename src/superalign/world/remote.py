"""Binary tasks whose labels stay on an evaluation server (:mod:`superalign.eval_server`).

:func:`remote_task` gives a :class:`~superalign.world.vault.TaskData` like any other, but its vault is a
:class:`RemoteVault`: every label read and every score is a request to the server, which answers only what the
protocol may know (the training pool's labels, scores of whole test sets) and logs the rest as exploit attempts.
A stage that reads tasks this way never has the test labels in its process.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from superalign.world.vault import Example, Scores, TaskData


class ServerRefused(PermissionError):
    """The evaluation server refused a request (a label it does not give out, a spent budget, a rate limit)."""


class ServerUnreachable(ConnectionError):
    """No evaluation server answers at the URL."""


class EvalClient:
    """A client of one evaluation server (httpx, loopback)."""

    def __init__(self, url: str, timeout: float = 120.0):
        import httpx

        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def __enter__(self) -> "EvalClient":
        return self

    def __exit__(self, *exc) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs) -> dict:
        import httpx

        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as err:
            raise ServerUnreachable(f"evaluation server {self.url}: not reachable ({type(err).__name__})") from None
        if response.status_code in (403, 429):
            raise ServerRefused(f"evaluation server refused {path}: {response.json().get('detail', response.text)}")
        response.raise_for_status()
        return response.json()

    def tasks(self) -> dict[str, str]:
        """``{task name: fingerprint of its texts}`` (what a cache key needs; no labels)."""
        return self.request("GET", "/tasks")["tasks"]

    def task(self, name: str) -> TaskData:
        data = self.request("GET", f"/tasks/{name}")

        def examples(rows: list[dict]) -> list[Example]:
            return [Example(r["id"], tuple(r["texts"]), r["group"]) for r in rows]

        return TaskData(data["name"], data["description"], examples(data["pool"]), examples(data["test"]),
                        RemoteVault(self, name), pairwise=data["pairwise"], notes=list(data["notes"]))

    def usage(self) -> dict:
        return self.request("GET", "/usage")


class RemoteVault:
    """The :class:`~superalign.world.vault.LabelVault` interface, answered by the server."""

    def __init__(self, client: EvalClient, task: str):
        self.client, self.task = client, task
        self.log: list[tuple[str, frozenset[str]]] = []

    def reveal(self, examples: Sequence[Example], purpose: str) -> np.ndarray:
        ids = [e.id for e in examples]
        self.log.append((purpose, frozenset(ids)))
        labels = self.client.request("POST", f"/tasks/{self.task}/reveal", json={"ids": ids, "purpose": purpose})
        return np.asarray(labels["labels"], dtype=np.int64)

    def score(self, examples: Sequence[Example], probs: np.ndarray, purpose: str = "score") -> Scores:
        probs = np.asarray(probs, dtype=float).reshape(-1)
        if probs.shape[0] != len(examples):
            raise ValueError(f"{len(examples)} examples but {probs.shape[0]} predictions")
        ids = [e.id for e in examples]
        self.log.append((purpose, frozenset(ids)))
        got = self.client.request("POST", f"/tasks/{self.task}/score",
                                  json={"ids": ids, "probs": probs.tolist(), "purpose": purpose})
        # No per-example correctness comes back: with it, the labels would follow from the predictions.
        return Scores(accuracy=got["accuracy"], auroc=float("nan") if got["auroc"] is None else got["auroc"],
                      n=got["n"], correct=np.zeros(0))

    def class_counts(self, examples: Sequence[Example]) -> tuple[int, int]:
        got = self.client.request("POST", f"/tasks/{self.task}/class_counts", json={"ids": [e.id for e in examples]})
        return got["negatives"], got["positives"]


def remote_task(url: str, name: str) -> TaskData:
    """World task ``name`` as served by the evaluation server at ``url``."""
    return EvalClient(url).task(name)


__all__ = ["EvalClient", "RemoteVault", "ServerRefused", "ServerUnreachable", "remote_task"]
