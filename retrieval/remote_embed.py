"""Query embeddings from an OpenAI-compatible /embeddings endpoint instead of a local model.

    embedder = RemoteEmbedder("http://backend:8088/v1", model="all-minilm-l6-v2", api_key=...)
    SceneSearcher(index_dir, embedder)

Why: the slim bot image has no torch, yet /similar needs query vectors. The backend
serves them (backend.embeddings, with backend.serve_embeddings) from the same model
that built the index. This offers what SceneSearcher uses of retrieval.embed.Embedder:
``encode``, ``dim`` and ``model_id``. ``model_id`` is the `model` field of the server's
answer, which our backend fills with the embedder's fingerprint, so the index accepts
these vectors exactly when it would accept a local Embedder's of the same model.

Only httpx and numpy here: nothing this module imports may pull in torch. Sync httpx,
because the searcher runs in a worker thread (bot.core.services.CoreServices.search).
"""

from __future__ import annotations

import base64
import binascii
import threading
from typing import Callable, Sequence

import httpx
import numpy as np

from retrieval.types import SearchUnavailableError

DEFAULT_TIMEOUT_S = 30.0  # a query embeds in well under a second; longer means trouble
PROBE_TEXT = "probe"


class EmbedderUnavailableError(SearchUnavailableError):
    """The embedding service could not embed the text; the message is fit to show a writer."""


class RemoteEmbedder:
    def __init__(self, base_url: str, *, model: str, api_key: str | None = None, batch_size: int = 32,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 request_headers: Callable[[], dict[str, str]] = dict) -> None:
        """base_url ends in /v1; model: the name to ask for (the model.embedder setting);
        request_headers: extra headers per request (the bot passes its request id this way,
        which keeps retrieval free of the bot's imports)."""
        self.base_url = base_url.rstrip("/")
        self._request_headers = request_headers
        self.model = model
        self.batch_size = max(1, batch_size)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # One client for the process: its connection pool is thread-safe, and keeping
        # the connection open saves a handshake per /similar.
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=5.0), headers=headers)
        self._identity: tuple[str, int] | None = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self._served()[0]

    @property
    def dim(self) -> int:
        return self._served()[1]

    def _served(self) -> tuple[str, int]:
        """(model_id, dim), asked of the server once, on first use: constructing never fails,
        and a server that was down at start is found once it is up."""
        with self._lock:
            if self._identity is None:
                model_id, vectors = self._request([PROBE_TEXT])
                self._identity = (model_id, int(vectors.shape[1]))
            return self._identity

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """L2-normalised float32 rows, as the server sent them (``progress`` is ignored)."""
        model_id, dim = self._served()
        if len(texts) == 0:
            return np.zeros((0, dim), dtype=np.float32)
        parts = []
        for start in range(0, len(texts), self.batch_size):
            served, vectors = self._request(list(texts[start : start + self.batch_size]))
            if served != model_id or vectors.shape[1] != dim:
                # Vectors of another model would rank the index at random: refuse them.
                raise EmbedderUnavailableError(
                    f"The embedding service at {self.base_url} now serves {served!r} ({vectors.shape[1]} dimensions), "
                    f"not {model_id!r} ({dim}) as when the bot started. Restart the bot."
                )
            parts.append(vectors)
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def close(self) -> None:
        self._http.close()

    def _request(self, texts: list[str]) -> tuple[str, np.ndarray]:
        payload = {"model": self.model, "input": texts, "encoding_format": "base64"}
        try:
            response = self._http.post(f"{self.base_url}/embeddings", json=payload, headers=self._request_headers())
        except httpx.TimeoutException:
            raise EmbedderUnavailableError(
                f"The embedding service at {self.base_url} took too long to answer. Try again shortly."
            ) from None
        except httpx.TransportError:
            raise EmbedderUnavailableError(
                f"The embedding service at {self.base_url} is not reachable, so the library cannot be searched. "
                "Is the backend running with serve_embeddings on?"
            ) from None
        if response.status_code >= 400:
            raise EmbedderUnavailableError(
                f"The embedding service refused the request ({response.status_code}): {_error_message(response)}"
            )
        return _parse(response, count=len(texts), base_url=self.base_url)


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


def _parse(response: httpx.Response, *, count: int, base_url: str) -> tuple[str, np.ndarray]:
    """(model, vectors in input order) of an OpenAI embeddings answer."""
    try:
        body = response.json()
        rows = sorted(body["data"], key=lambda row: row["index"])
        vectors = np.stack([_vector(row["embedding"]) for row in rows]) if rows else None
        model = str(body["model"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        vectors, model = None, ""
    if vectors is None or vectors.ndim != 2 or len(vectors) != count:
        raise EmbedderUnavailableError(f"The embedding service at {base_url} sent an answer that is not embeddings.")
    return model, vectors


def _vector(embedding: str | list[float]) -> np.ndarray:
    # base64 is float32 little-endian (the OpenAI format); a server that ignores
    # encoding_format sends a list of floats instead.
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding, validate=True), dtype="<f4").astype(np.float32)
    return np.asarray(embedding, dtype=np.float32)
