"""The evaluation server's HTTP app (FastAPI) over an :class:`~superalign.eval_server.EvalState`."""

from __future__ import annotations

from fastapi import Body, FastAPI, HTTPException, Request

from superalign.eval_server import LABEL_WORDS, EvalState, ServerConfig


def create_app(state: EvalState):
    """The FastAPI app over ``state`` (loopback only: see :func:`serve`)."""
    app = FastAPI(title="superalign evaluation server", docs_url=None, redoc_url=None, openapi_url=None)

    def answer(fn, *args):
        try:
            return fn(*args)
        except PermissionError as err:
            raise HTTPException(403, str(err)) from None
        except OverflowError as err:
            raise HTTPException(429, str(err)) from None
        except (LookupError, ValueError) as err:
            raise HTTPException(404 if isinstance(err, LookupError) else 422, str(err)) from None

    @app.get("/health")
    def health():
        return {"ok": True, "tasks": list(state.tasks)}

    @app.get("/tasks")
    def tasks():
        state.log("tasks")
        return {"tasks": {name: t.fingerprint() for name, t in state.tasks.items()}}

    @app.get("/tasks/{name}")
    def task(name: str):
        t = answer(state.task, name)
        state.log("task", task=name)
        rows = lambda examples: [{"id": e.id, "texts": list(e.texts), "group": e.group} for e in examples]  # noqa: E731
        return {"name": t.name, "description": t.description, "pairwise": t.pairwise, "notes": t.notes,
                "pool": rows(t.pool), "test": rows(t.test)}

    @app.post("/tasks/{name}/reveal")
    def reveal(name: str, ids: list[str] = Body(...), purpose: str = Body("")):
        return {"labels": answer(state.reveal, name, ids, purpose)}

    @app.post("/tasks/{name}/score")
    def score(name: str, ids: list[str] = Body(...), probs: list[float] = Body(...), purpose: str = Body("")):
        if len(ids) != len(probs):
            raise HTTPException(422, f"{len(ids)} ids but {len(probs)} probabilities")
        return answer(state.score, name, ids, probs, purpose)

    @app.post("/tasks/{name}/class_counts")
    def class_counts(name: str, ids: list[str] = Body(..., embed=True)):
        return answer(state.class_counts, name, ids)

    @app.get("/usage")
    def usage():
        return state.usage()

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def anything_else(path: str, request: Request):
        # Whatever the routes above do not answer is logged: a request for labels by another way is an attempt.
        words = [w for w in LABEL_WORDS if w in path.lower()]
        state.log("unknown", path=path, method=request.method)
        state.exploit("label_read" if words else "unknown_route", f"{request.method} /{path}")
        raise HTTPException(403 if words else 404, "labels are not served" if words else "no such route")

    return app


def serve(config: ServerConfig, port: int) -> None:
    """Serve on 127.0.0.1:``port`` until killed (``python -m superalign.eval_server``)."""
    import uvicorn

    uvicorn.run(create_app(EvalState(config)), host="127.0.0.1", port=port, log_level="warning")


__all__ = ["create_app", "serve"]
