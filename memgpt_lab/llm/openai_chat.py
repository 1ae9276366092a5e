"""Real models: any OpenAI-compatible server, through the official ``openai`` SDK.

:class:`OpenAIChatModel` is a :class:`~memgpt_lab.llm.ChatModel`: it turns the
agent's history into a chat-completions request (:meth:`OpenAIChatModel.request`,
a pure function of the messages and the provider's profile), sends it, and reads
the answer back into the agent's shape. Everything the SDK or the server can do
wrong is translated here, once, into :class:`~memgpt_lab.errors.LLMError` or
:class:`~memgpt_lab.llm.ContextWindowExceededError`, with a message that says
what to check; the agent leaves its state as it was before the step.

The SDK is imported, and its client built, on the first call: constructing a
model needs no key and no network (a :class:`~memgpt_lab.llm.cassette.Cassette`
replaying around one never touches it).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from memgpt_lab import _json
from memgpt_lab.errors import LLMError
from memgpt_lab.llm.base import ContextTruncationWarning, ContextWindowExceededError, TokenEstimator
from memgpt_lab.llm.providers import PROVIDERS, Provider, context_overflow_message
from memgpt_lab.llm.wire import (
    StreamAssembler,
    add_inner_thoughts,
    from_wire_completion,
    to_wire_messages,
)

__all__ = ["OpenAIChatModel"]

log = logging.getLogger(__name__)

Message = dict[str, Any]

#: Statuses worth another try: rate limits and the server's own failures.
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
#: A server asking to wait longer than this is not retried (the SDK's own bound).
MAX_RETRY_AFTER = 120.0
#: Reported prompt tokens under this share of the estimate mean the server cut the prompt.
TRUNCATION_RATIO = 0.5
_INNER_THOUGHTS_MODES = ("auto", "kwarg", "content")


class OpenAIChatModel:
    """A model behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    Args:
        model: the model's name on the server (``"gpt-4o-mini"``, ``"llama3.1"``).
        base_url: the server's ``/v1`` URL; the provider's default when None.
        api_key: the key; when None, read from ``api_key_env`` or the provider's
            variable (``OPENAI_API_KEY``...). Local providers need none.
        provider: a profile from :data:`~memgpt_lab.llm.providers.PROVIDERS`.
        inner_thoughts: ``"kwarg"`` adds a required ``inner_thoughts`` parameter to
            every function and reads the monologue from it; ``"content"`` reads it
            from the message's content, as MemGPT did; ``"auto"`` takes the profile's.
        timeout: seconds for one request.
        max_retries: further tries after a 429, a 5xx, a refused connection or a
            dropped stream, waiting as ``Retry-After`` says or backing off.
        stream: ask for server-sent events and assemble them.
        function_format: ``"tools"`` (``tools`` / ``tool_calls``) or ``"functions"``
            (the legacy ``functions`` / ``function_call``, for older servers); the
            profile's when None.
        api_key_env: the environment variable to read the key from.
        sleep: how to wait between tries (tests pass a recorder).
        request_options: more fields for every request (``temperature=0``...).
    """

    offline = False

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        provider: str = "openai",
        inner_thoughts: str = "auto",
        timeout: float = 60.0,
        max_retries: int = 2,
        stream: bool = False,
        function_format: str | None = None,
        api_key_env: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **request_options: Any,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ValueError("model must be the model's name on the server, e.g. 'gpt-4o-mini'")
        if provider not in PROVIDERS:
            from memgpt_lab.errors import UnknownNameError

            raise UnknownNameError("provider", provider, PROVIDERS)
        if inner_thoughts not in _INNER_THOUGHTS_MODES:
            raise ValueError(
                f"inner_thoughts must be one of {', '.join(_INNER_THOUGHTS_MODES)}, not {inner_thoughts!r}"
            )
        if function_format not in (None, "tools", "functions"):
            raise ValueError(
                f"function_format must be 'tools' or 'functions', not {function_format!r}"
            )
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, not {max_retries}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self.model = model
        self.profile: Provider = PROVIDERS[provider]
        self.provider = provider
        self.base_url = (base_url or self.profile.base_url or "https://api.openai.com/v1").rstrip(
            "/"
        )
        self.inner_thoughts = (
            self.profile.inner_thoughts if inner_thoughts == "auto" else inner_thoughts
        )
        self.timeout = timeout
        self.max_retries = max_retries
        self.stream = stream
        self.function_format = function_format or self.profile.function_format
        self.request_options = dict(request_options)
        self.api_key_env = api_key_env or self.profile.api_key_env
        self._api_key = api_key
        self._sleep = sleep
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._estimate = TokenEstimator()
        self._schema_cache: tuple[tuple[int, ...], list[Any], list[dict[str, Any]]] | None = None
        self.name = f"{provider}:{model}"
        self.calls = 0
        self.retries = 0

    def __repr__(self) -> str:  # never the key
        return (
            f"OpenAIChatModel({self.model!r}, provider={self.provider!r}, base_url={self.base_url!r}, "
            f"inner_thoughts={self.inner_thoughts!r}, stream={self.stream})"
        )

    def __getstate__(self) -> dict[str, Any]:
        # A copy (pickled for another process) keeps its settings and rebuilds its client.
        state = dict(self.__dict__)
        state["_client"] = None
        state.pop("_finalizer", None)
        state["_client_lock"] = None
        state["_estimate"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._client_lock = threading.Lock()
        self._estimate = TokenEstimator()

    # --- the key ------------------------------------------------------------------

    @property
    def key_source(self) -> str:
        """Where the key comes from, for messages: never the key itself."""
        if self._api_key is not None:
            return "the api_key argument"
        if self.api_key_env:
            return f"${self.api_key_env}"
        return "no key"

    def _key(self) -> str:
        if self._api_key is not None:
            return self._api_key
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            return key
        if self.profile.key_required:
            raise LLMError(
                f"no API key for {self.profile.label}: set {self.api_key_env} in the environment "
                "(or pass api_key=...)"
            )
        return "not-needed"  # the SDK wants a string; local servers ignore it

    def _scrub(self, text: str) -> str:
        """``text`` with the key taken out, should a server echo it."""
        try:
            key = self._key()
        except LLMError:
            return text
        return text.replace(key, "***") if len(key) >= 4 else text

    # --- requests -----------------------------------------------------------------

    def request(
        self, messages: Sequence[Message], functions: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """The JSON body sent for ``messages`` and ``functions``: no I/O, no SDK."""
        profile = self.profile
        schemas = self._schemas(functions)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": to_wire_messages(messages, self.function_format, self.inner_thoughts),  # type: ignore[arg-type]
        }
        if schemas:
            if self.function_format == "tools":
                body["tools"] = [{"type": "function", "function": s} for s in schemas]
                if profile.tool_choice is not None:
                    body["tool_choice"] = profile.tool_choice
                if profile.parallel_tool_calls:
                    body["parallel_tool_calls"] = False
            else:
                body["functions"] = schemas
                body["function_call"] = "auto"
        if self.stream:
            body["stream"] = True
            if profile.stream_usage:
                body["stream_options"] = {"include_usage": True}
        body.update(self.request_options)
        return body

    def _schemas(self, functions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The schemas as sent; remade only when the agent's schema objects change."""
        key = tuple(map(id, functions))
        cached = self._schema_cache
        if cached is None or cached[0] != key:
            schemas = [dict(f) for f in functions]
            if self.inner_thoughts == "kwarg":
                schemas = [add_inner_thoughts(f) for f in schemas]
            cached = self._schema_cache = (key, list(functions), schemas)
        return cached[2]

    def chat(
        self, messages: Sequence[Message], functions: Sequence[dict[str, Any]]
    ) -> dict[str, Any]:
        """One chat completion in the agent's shape (see :mod:`memgpt_lab.llm`).

        Raises:
            ContextWindowExceededError: the server said the prompt is too long.
            LLMError: anything else went wrong; the message says what to check.
        """
        self.calls += 1
        body = self.request(messages, functions)
        answer = self.send(body)
        completion = from_wire_completion(answer, self.inner_thoughts)  # type: ignore[arg-type]
        self._check_truncation(self._estimate(messages) + self._estimate(functions), completion)
        return completion

    def send(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``body`` (as :meth:`request` builds it), retrying; returns the server's answer."""
        attempt = 0
        while True:
            try:
                return self._send_once(body)
            except _Retryable as retry:
                if attempt >= self.max_retries:
                    raise LLMError(
                        f"{retry.message} (gave up after {attempt + 1} "
                        f"attempt{'s' if attempt else ''})"
                    ) from retry.__cause__
                wait = retry.wait if retry.wait is not None else _backoff(attempt)
                log.warning("%s; retrying in %.2f s", retry.message, wait)
                attempt += 1
                self.retries += 1
                self._sleep(wait)

    def list_models(self) -> list[str]:
        """The model ids the server lists at ``GET /v1/models`` (a connection check).

        Raises:
            LLMError: the server cannot be reached or refuses, in plain words.
        """
        client = self._sdk_client()
        import openai

        try:
            page = client.models.list()
            return sorted(str(m.id) for m in page.data)
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except openai.APIConnectionError as exc:
            raise LLMError(self._connection_message(exc)) from None

    # --- I/O ------------------------------------------------------------------------

    def _sdk_client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                import openai

                self._client = openai.OpenAI(
                    api_key=self._key(),
                    base_url=self.base_url,
                    timeout=self.timeout,
                    max_retries=0,  # retries are ours: counted, logged, Retry-After honoured
                )
                # a model dropped without close() still releases its connections
                self._finalizer = weakref.finalize(self, self._client.close)
            return self._client

    def close(self) -> None:
        """Close the HTTP connections (a later call opens new ones). Idempotent."""
        with self._client_lock:
            if self._client is not None:
                self._finalizer()
                self._client = None

    def __enter__(self) -> OpenAIChatModel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send_once(self, body: Mapping[str, Any]) -> dict[str, Any]:
        client = self._sdk_client()
        import openai

        # The body is already the wire JSON: post it as it is. ``create()`` would walk every
        # message through the SDK's type transforms first (~0.2 ms per message per call).
        from openai.types.chat import ChatCompletionChunk

        stream = bool(body.get("stream"))
        try:
            if not stream:
                response = client.post(
                    "/chat/completions", body=dict(body), cast_to=_raw_response()
                )
                answer = _json.loads(response.text, max_depth=_json.MAX_DEPTH)
                if not isinstance(answer, dict):
                    raise ValueError(f"the body is {type(answer).__name__}, not an object")
                return answer
            assembler = StreamAssembler()
            chunks = client.post(
                "/chat/completions",
                body=dict(body),
                cast_to=ChatCompletionChunk,
                stream=True,
                stream_cls=openai.Stream[ChatCompletionChunk],
            )
            with chunks:
                for chunk in chunks:
                    assembler.feed(_as_dict(chunk))
            return assembler.completion()
        except openai.APITimeoutError as exc:
            raise LLMError(
                f"{self.base_url} did not answer within {self.timeout:g} s; "
                f"{self.profile.hint} (raise timeout= for slow models)"
            ) from exc
        except openai.APIConnectionError as exc:
            raise _Retryable(self._connection_message(exc)) from exc
        except openai.APIStatusError as exc:
            if exc.status_code in RETRY_STATUSES:
                wait = _retry_after(exc.response.headers)
                message = f"{self.base_url} answered {exc.status_code}: {self._error_text(exc)}"
                if wait is not None and wait > MAX_RETRY_AFTER:
                    raise LLMError(
                        f"{message}; it asks to wait {wait:g} s, too long to retry"
                    ) from None
                raise _Retryable(message, wait) from exc
            raise self._status_error(exc) from None
        except LLMError as exc:  # a stream that ended early
            raise _Retryable(f"{self.base_url}: {exc}") from exc
        except (ValueError, RecursionError, openai.APIResponseValidationError) as exc:
            # (RecursionError: the SDK parses each streamed chunk with json.loads itself)
            raise LLMError(
                f"{self.base_url} answered with a body that is not a chat completion: {exc}"
            ) from None
        except Exception as exc:  # the transport broke mid-stream (httpx2 errors)
            if type(exc).__module__.startswith(("httpx", "httpcore")):
                raise _Retryable(f"{self.base_url}: the connection broke: {exc}") from exc
            raise

    def _connection_message(self, exc: Exception) -> str:
        cause = exc.__cause__ or exc
        return f"cannot connect to {self.base_url} ({type(cause).__name__}: {cause}); {self.profile.hint}"

    def _error_text(self, exc: Any) -> str:
        body = exc.body
        error = body.get("error", body) if isinstance(body, Mapping) else body
        if isinstance(error, Mapping):
            text = str(error.get("message") or error.get("code") or error)
        else:
            text = str(error or exc.message)
        return self._scrub(text)[:500]

    def _status_error(self, exc: Any) -> LLMError:
        status = exc.status_code
        overflow = context_overflow_message(status, exc.body)
        if overflow is not None:
            return ContextWindowExceededError(
                f"{self.model} at {self.base_url}: the prompt does not fit: {self._scrub(overflow)}"
            )
        if status in (401, 403):
            what = "refused the API key" if status == 401 else "does not allow this key"
            return LLMError(
                f"{self.base_url} {what} from {self.key_source} ({status}); "
                f"check that {self.api_key_env or 'the key'} holds a valid key for {self.profile.label}"
            )
        if status == 404:
            return LLMError(
                f"{self.base_url} has no model {self.model!r} (404: {self._error_text(exc)}); "
                "GET /v1/models lists the ones it serves"
            )
        return LLMError(f"{self.base_url} answered {status}: {self._error_text(exc)}")

    def _check_truncation(self, estimate: int, completion: Mapping[str, Any]) -> None:
        reported = (completion.get("usage") or {}).get("prompt_tokens")
        if not isinstance(reported, int) or reported <= 0:
            return
        if reported < TRUNCATION_RATIO * estimate:
            warnings.warn(
                f"{self.base_url} reports {reported} prompt tokens for a prompt estimated at "
                f"~{estimate}: it probably cut the prompt to fit its context (Ollama's num_ctx, "
                "llama-server's -c); raise the server's context size or lower context_window",
                ContextTruncationWarning,
                stacklevel=3,
            )


class _Retryable(Exception):
    """A failure worth another try; ``wait`` is what the server asked for (seconds)."""

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.wait = wait


def _raw_response() -> Any:
    import httpx2

    return httpx2.Response


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    return dict(value.model_dump(exclude_unset=True))


def _backoff(attempt: int) -> float:
    """0.5 s, 1 s, 2 s... up to 8 s, less up to a quarter at random (as the SDK does)."""
    return min(0.5 * 2.0**attempt, 8.0) * (1 - 0.25 * random.random())


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or a date)."""
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / divisor)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        import email.utils

        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, moment.timestamp() - time.time())
    return None
