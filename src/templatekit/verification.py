"""Check a relaxed template against its original on generated conversations.

Properties, for ORIGINAL ``T`` and RELAXED ``R``, rendered exactly as servers render:

``fidelity``
    wherever ``T`` renders a conversation, ``R`` renders byte-identical output.
``tolerance``
    on any conversation of user, assistant, system and developer messages, ``R`` raises no
    role-structure error (a ``raise_exception`` whose message is the message of one of ``T``'s
    checks of class ``alternation``, ``system-role`` or ``role-unsupported``; checks of other
    classes may still raise).
``normalize`` (``normalize="merge"`` or ``"skip"``)
    wherever ``T`` rejects ``C`` by a role-structure check and renders ``N(C)``
    (:mod:`templatekit.normalization`), ``R(C) == T(N(C))``.
``drops`` (with ``normalize``)
    wherever ``T`` rejects ``C`` and ``R`` renders it, every message text of ``C`` that
    ``T(N(C))`` contains is in ``R(C)``: nothing the normalised conversation keeps is lost.

With ``server=``, "rendered" means through that server's pipeline: its profile prepares each
conversation and its engine renders (:mod:`templatekit.servers`), for both templates alike; and
since the relaxed template normalises the messages the server hands it, ``normalize`` and
``drops`` are checked on those: ``R(C) == T(N(prepare(C)))``.

Conversations come from the generators behind :mod:`templatekit.strategies`, driven by a
seeded :class:`random.Random` per example (example ``i`` of seed ``s`` is the same on every
run and in every process): walks of the shape ``T`` accepts, the same histories bent the way
retrying clients bend them, and random user/assistant/system sequences.  Examples are checked
in fixed chunks; with ``jobs > 1`` chunks run in worker processes and the lowest failing
example wins, so the verdict and the counterexample do not depend on ``jobs``.  A failure is
shrunk (fewer messages, simpler roles, fewer parts and keys, shorter plain texts) while it
still fails a property.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from .analysis import ROLE_STRUCTURE, analyze_text
from .cases import Case
from .environment import DEFAULT_PROFILE, Profile, TemplateRaise
from .errors import RenderBudgetExceeded
from .generation import Plan, seeded_case
from .normalization import NORMALIZED_ROLES, RolePolicy, apply_policy
from .probes.harness import TemplateInputs, fixed_now, template_inputs
from .probes.merge_policy import role_policy, role_rejection
from .probes.shape import learn_shape

if TYPE_CHECKING:
    from .sources import ChatTemplate
    from .tokens import TokenDiff, Tokenizer

__all__ = ["Property", "Counterexample", "VerifyResult", "verify", "cases_for", "describe_error", "CHUNK_SIZE"]

Property = Literal["fidelity", "tolerance", "normalize", "drops"]
PROPERTIES: tuple[Property, ...] = ("fidelity", "tolerance", "normalize", "drops")
NormalizeMode = Literal["merge", "skip"]
CHUNK_SIZE = 25
_SHRINK_BUDGET = 4000
_ROLE_RANK = {"user": 1, "assistant": 2, "system": 3, "developer": 4, "tool": 5}  # simplest first


@dataclass(frozen=True)
class Counterexample:
    """A minimal case on which a property fails.

    ``case`` is the replayable input (its :meth:`~templatekit.cases.Case.to_json` is what
    ``templatekit render --messages`` reads).  ``expected`` is ORIGINAL's output
    (``fidelity``) or ORIGINAL's output on ``normalized`` (``normalize``); ``actual`` is
    RELAXED's output, ``None`` when it raised ``error``.  ``token_diff`` is set when a
    tokenizer was given and both sides rendered.
    """

    property: Property
    case: Case
    expected: str | None
    actual: str | None
    error: str | None = None
    normalized: tuple[Mapping[str, Any], ...] | None = None
    token_diff: TokenDiff | None = None

    @property
    def summary(self) -> str:
        """One line saying what failed."""
        if self.property == "tolerance":
            return f"tolerance: RELAXED raised a role-structure error: {self.error}"
        if self.property == "drops":
            return "drops: RELAXED leaves out a message text that ORIGINAL on the normalized conversation renders"
        target = "ORIGINAL" if self.property == "fidelity" else "ORIGINAL on the normalized conversation"
        if self.actual is None:
            return f"{self.property}: {target} renders but RELAXED raised {self.error}"
        return f"{self.property}: RELAXED renders differently from {target}"

    def to_json(self) -> str:
        """The replayable case as JSON, one message per line."""
        return self.case.to_json()


@dataclass(frozen=True)
class VerifyResult:
    """The verdict of :func:`verify`.

    ``checked`` conversations were generated (up to and including a failing one);
    ``accepted_by_original`` of them rendered with ORIGINAL.  ``checks`` counts how many
    conversations each property was checked on.  ``compared`` is ``"tokens"`` when a
    tokenizer was given (identical text always gives identical ids; the tokenizer adds the
    token-by-token diff to a counterexample), else ``"text"``.
    """

    ok: bool
    checked: int
    accepted_by_original: int
    compared: Literal["text", "tokens"]
    seed: int
    counterexample: Counterexample | None
    examples: int
    normalize: NormalizeMode | None
    checks: Mapping[str, int] = field(default_factory=dict)


# --- one case ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """Everything needed to generate and check example ``i`` (sent once to each worker)."""

    original: TemplateInputs
    relaxed: TemplateInputs
    plan: Plan
    seed: int
    normalize: NormalizeMode | None
    role_messages: frozenset[str]
    policy: RolePolicy


@dataclass(frozen=True)
class _Verdict:
    accepted: bool
    checked: tuple[Property, ...]
    failure: Property | None = None
    expected: str | None = None
    actual: str | None = None
    error: str | None = None
    normalized: list[dict[str, Any]] | None = None


def _raised(error: BaseException | None) -> str | None:
    """The message a template passed to ``raise_exception`` (under any engine), else ``None``."""
    if isinstance(error, TemplateRaise):
        return str(error.template_message)
    from .engines import EngineError

    if isinstance(error, EngineError) and error.kind == "raise":
        return error.message
    return None


def describe_error(error: BaseException) -> str:
    """How a render failed, in one line: ``raise_exception('...')`` when the template raised (under
    any engine), else the error's class and message."""
    raised = _raised(error)
    if raised is not None:
        return f"raise_exception({raised!r})"
    return f"{type(error).__name__}: {error}"


def _evaluate(job: _Job, case: dict[str, Any]) -> _Verdict:
    """Check every property that applies to ``case``; the first failing one is reported."""
    expected, original_error = job.original.attempt(case)
    actual, relaxed_error = job.relaxed.attempt(case)
    error = describe_error(relaxed_error) if relaxed_error is not None else None
    accepted = original_error is None
    checked: list[Property] = []
    if accepted:
        checked.append("fidelity")
        if actual != expected:
            return _Verdict(True, tuple(checked), "fidelity", expected, actual, error)
    if all(message.get("role") in NORMALIZED_ROLES for message in case["messages"]):
        checked.append("tolerance")
        if _raised(relaxed_error) in job.role_messages:
            return _Verdict(accepted, tuple(checked), "tolerance", None, None, error)
    if job.normalize is not None and _raised(original_error) is not None:
        seen = _server_messages(job.original, case)
        if _rejected_by_role(job, case, seen):
            normalized = apply_policy(seen, job.normalize, job.policy)
            expected, original_error = job.original.attempt(case, normalized)
            if original_error is None:
                checked.append("normalize")
                if actual != expected:
                    return _Verdict(accepted, tuple(checked), "normalize", expected, actual, error, normalized)
                checked.append("drops")
                assert expected is not None and actual is not None
                if any(text in expected and text not in actual for text in _texts(seen)):
                    return _Verdict(accepted, tuple(checked), "drops", expected, actual, error, normalized)
    return _Verdict(accepted, tuple(checked))


def _rejected_by_role(job: _Job, case: Mapping[str, Any], messages: list[dict[str, Any]]) -> bool:
    return (
        role_rejection(
            job.original.text,
            messages,
            tools=case.get("tools"),
            add_generation_prompt=bool(case.get("add_generation_prompt")),
            variables=case.get("kwargs", {}),
            special_tokens=dict(job.original.special_tokens),
            profile=job.original.profile,
            now=fixed_now(),
        )
        is not None
    )


def _texts(messages: Sequence[Mapping[str, Any]]) -> Iterator[str]:
    """The message texts of a conversation: string contents and text parts."""
    for message in messages:
        content = message.get("content")
        if isinstance(content, str) and content:
            yield content
        elif isinstance(content, list):
            yield from (
                part["text"]
                for part in content
                if isinstance(part, Mapping) and isinstance(part.get("text"), str) and part["text"]
            )


def _server_messages(inputs: TemplateInputs, case: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The messages the template sees: the case's, or what ``inputs.server`` makes of them (the
    relaxed template normalises *those*, so ``normalize`` is checked on them)."""
    if inputs.server is None:
        return case["messages"]
    from .servers import profile

    return (
        profile(inputs.server)
        .prepare(
            inputs.text,
            case["messages"],
            tools=case.get("tools"),
            add_generation_prompt=bool(case.get("add_generation_prompt")),
            variables={**dict(inputs.special_tokens), **case.get("kwargs", {})},
        )
        .messages
    )


@lru_cache(maxsize=16)
def _chat_template(inputs: TemplateInputs) -> ChatTemplate:
    from .sources import ChatTemplate

    return ChatTemplate(text=inputs.text, special_tokens=dict(inputs.special_tokens))


def _case(job: _Job, index: int) -> dict[str, Any]:
    return seeded_case(job.plan, job.seed, index)


# --- chunks and workers -----------------------------------------------------------------------


@dataclass(frozen=True)
class _ChunkResult:
    """Examples ``[start, stop)`` checked; ``failure`` is the first failing index, if any."""

    start: int
    stop: int
    failure: int | None
    accepted: int
    checks: Mapping[str, int]


def _run_chunk(job: _Job, start: int, stop: int) -> _ChunkResult:
    accepted = 0
    checks = dict.fromkeys(PROPERTIES, 0)
    for index in range(start, stop):
        try:
            verdict = _evaluate(job, _case(job, index))
        except RenderBudgetExceeded as error:
            error.conversation = index  # type: ignore[attr-defined] - which example ran out of budget
            raise
        accepted += verdict.accepted
        for name in verdict.checked:
            checks[name] += 1
        if verdict.failure is not None:
            return _ChunkResult(start, index + 1, index, accepted, checks)
    return _ChunkResult(start, stop, None, accepted, checks)


_worker_job: _Job | None = None


def _init_worker(job: _Job) -> None:
    global _worker_job
    _worker_job = job


def _run_chunk_in_worker(bounds: tuple[int, int]) -> _ChunkResult:
    assert _worker_job is not None
    return _run_chunk(_worker_job, *bounds)


def _chunks(examples: int) -> Iterator[tuple[int, int]]:
    return ((start, min(start + CHUNK_SIZE, examples)) for start in range(0, examples, CHUNK_SIZE))


def _results(job: _Job, examples: int, jobs: int) -> Iterator[_ChunkResult]:
    """Chunk results in chunk order (computed in ``jobs`` processes when ``jobs > 1``).

    Chunks are generated as they are needed (at most ``4 * jobs`` in flight), so memory does
    not grow with ``examples``.
    """
    chunk_count = -(-examples // CHUNK_SIZE)
    if jobs <= 1 or chunk_count <= 1:
        for start, stop in _chunks(examples):
            yield _run_chunk(job, start, stop)
        return
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=min(jobs, chunk_count), initializer=_init_worker, initargs=(job,)) as pool:
        pending = _chunks(examples)
        in_flight: deque = deque(
            pool.submit(_run_chunk_in_worker, chunk) for chunk in itertools.islice(pending, 4 * jobs)
        )
        try:
            while in_flight:
                result = in_flight.popleft().result()
                for chunk in itertools.islice(pending, 1):
                    in_flight.append(pool.submit(_run_chunk_in_worker, chunk))
                yield result
        finally:
            for future in in_flight:
                future.cancel()


# --- shrinking --------------------------------------------------------------------------------


def _size(case: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """Messages, then structure (lists, dicts, keys), then characters (an empty string counts
    as one, so texts shrink to one readable letter), then ``add_generation_prompt``."""
    rest = {key: value for key, value in case.items() if key != "add_generation_prompt"}
    structure, characters = _weigh(rest)
    return (len(case["messages"]), structure, characters, int(bool(case.get("add_generation_prompt"))))


def _weigh(value: Any) -> tuple[int, int]:
    if isinstance(value, str):
        return 0, max(1, len(value))
    if isinstance(value, Mapping):
        items = [
            (0, _ROLE_RANK[item]) if key == "role" and item in _ROLE_RANK else _weigh(item)
            for key, item in value.items()
        ]
        return 1 + len(items) + sum(s for s, _ in items), sum(c for _, c in items)
    if isinstance(value, (list, tuple)):
        items = [_weigh(item) for item in value]
        return 1 + sum(s for s, _ in items), sum(c for _, c in items)
    return 0, 1


def _copy(case: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(case))


def _shrink(case: dict[str, Any], fails: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Greedily take smaller variants of ``case`` that still fail, until none is found.

    Each accepted step makes the case strictly smaller (fewer messages, then fewer JSON
    characters, then ``add_generation_prompt`` off), so shrinking ends.
    """
    budget = [_SHRINK_BUDGET]

    def improves(candidate: dict[str, Any], current: dict[str, Any]) -> bool:
        if budget[0] <= 0 or _size(candidate) >= _size(current):
            return False
        budget[0] -= 1
        return fails(candidate)

    improved = True
    while improved and budget[0] > 0:
        improved = False
        for candidate in _candidates(case):
            if improves(candidate, case):
                case = candidate
                improved = True
                break
    relettered = _reletter(case)
    return relettered if relettered != case and fails(relettered) else case


def _letter(index: int) -> str:
    return "abcdefghijklmnopqrstuvwxyz"[index % 26]


def _reletter(case: dict[str, Any]) -> dict[str, Any]:
    """``case`` with one-letter texts renamed a, b, c... by message position (for reading)."""

    def rename(text: Any, index: int) -> Any:
        return _letter(index) if isinstance(text, str) and len(text) == 1 and text.islower() else text

    messages = []
    for index, message in enumerate(case["messages"]):
        content = message.get("content")
        if isinstance(content, list):
            content = [
                {**part, "text": rename(part.get("text"), index)} if isinstance(part, dict) and "text" in part else part
                for part in content
            ]
        messages.append({**message, "content": rename(content, index)} if "content" in message else message)
    return {**case, "messages": messages}


def _candidates(case: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Smaller variants of ``case``, biggest cuts first."""
    messages = case["messages"]
    size = len(messages) // 2
    while size >= 1:
        for start in range(0, len(messages), size):
            yield {**case, "messages": messages[:start] + messages[start + size :]}
        size //= 2
    for index in range(len(messages) - 1):  # a message takes the next one's content in its place
        pulled = {**messages[index], "content": messages[index + 1].get("content")}
        yield {**case, "messages": [*messages[:index], pulled, *messages[index + 2 :]]}
    if case.get("tools") is not None:
        yield {**case, "tools": None}
        for index in range(len(case["tools"])):
            yield {**case, "tools": case["tools"][:index] + case["tools"][index + 1 :]}
    for key in case.get("kwargs", {}):
        yield {**case, "kwargs": {name: value for name, value in case["kwargs"].items() if name != key}}
    if case.get("add_generation_prompt"):
        yield {**case, "add_generation_prompt": False}
    for index, message in enumerate(messages):
        for smaller in _smaller_messages(message, index):
            yield {**case, "messages": [*messages[:index], smaller, *messages[index + 1 :]]}


def _smaller_messages(message: dict[str, Any], index: int) -> Iterator[dict[str, Any]]:
    rank = _ROLE_RANK.get(message.get("role"), len(_ROLE_RANK) + 1)
    for role, role_rank in _ROLE_RANK.items():
        if role_rank < rank and role != "tool":
            yield {**message, "role": role}
    for key in message:
        if key not in ("role", "content"):
            yield {name: value for name, value in message.items() if name != key}
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for position, call in enumerate(calls):
            yield {**message, "tool_calls": calls[:position] + calls[position + 1 :]}
            for smaller in _smaller_calls(call):
                yield {**message, "tool_calls": [*calls[:position], smaller, *calls[position + 1 :]]}
    content = message.get("content")
    if isinstance(content, list):
        for position in range(len(content)):
            yield {**message, "content": content[:position] + content[position + 1 :]}
        yield {**message, "content": _letter(index)}
        for position, part in enumerate(content):
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                for text in _smaller_texts(part["text"], index):
                    yield {
                        **message,
                        "content": [*content[:position], {**part, "text": text}, *content[position + 1 :]],
                    }
    elif isinstance(content, str):
        for text in _smaller_texts(content, index):
            yield {**message, "content": text}
    for key, value in message.items():
        if key not in ("role", "content", "tool_call_id") and isinstance(value, str):
            for text in _smaller_texts(value, index):
                yield {**message, key: text}


def _smaller_calls(call: Any) -> Iterator[Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        return
    arguments = function.get("arguments")
    if arguments not in ({}, "{}"):
        yield {**call, "function": {**function, "arguments": {} if isinstance(arguments, dict) else "{}"}}


def _smaller_texts(text: str, index: int) -> Iterator[str]:
    """Shorter, plainer texts: one letter (a different one per message), empty, stripped,
    halves, ASCII only, whitespace runs collapsed."""
    letter = _letter(index)
    seen = {text}
    for candidate in (
        letter,
        "",
        text.strip(),
        text[: len(text) // 2],
        text[len(text) // 2 :],
        "".join(char if char.isascii() else letter for char in text),
        " ".join(text.split()),
    ):
        if candidate not in seen:
            seen.add(candidate)
            yield candidate


# --- verify -----------------------------------------------------------------------------------

# The mix verify draws from: walks of the original's shape, irregular histories, random
# user/assistant/system sequences.
VERIFY_MODES = (45, 40, 15)
VERIFY_ROLES = ("user", "assistant", "system", "developer")
VERIFY_MAX_TURNS = 10


def verify_plan(inputs: TemplateInputs) -> Plan:
    """The plan :func:`verify` generates with for the original template ``inputs``."""
    return Plan(learn_shape(inputs), VERIFY_MODES, VERIFY_MAX_TURNS, VERIFY_ROLES)


def cases_for(
    template: str | ChatTemplate,
    examples: int,
    *,
    seed: int = 0,
    special_tokens: Mapping[str, str] | None = None,
    profile: Profile = DEFAULT_PROFILE,
) -> list[dict[str, Any]]:
    """The first ``examples`` cases :func:`verify` checks for ``template`` with ``seed``
    (for benchmarks and for looking at what is generated)."""
    plan = verify_plan(template_inputs(template, special_tokens, profile))
    return [seeded_case(plan, seed, index) for index in range(examples)]


def _role_messages(text: str) -> frozenset[str]:
    return frozenset(
        site.message
        for site in analyze_text(text)[1].sites
        if site.check_class in ROLE_STRUCTURE and site.message_is_literal
    )


def _check_options(examples: int, seed: int, normalize: Any, jobs: int) -> None:
    for name, value, low in (("examples", examples, 1), ("seed", seed, 0), ("jobs", jobs, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    if normalize not in (None, "merge", "skip"):
        raise ValueError(f"normalize must be None, 'merge' or 'skip'; got {normalize!r}")


def verify(
    original: str | ChatTemplate,
    relaxed: str | ChatTemplate,
    *,
    examples: int = 500,
    seed: int = 0,
    normalize: NormalizeMode | None = None,
    tokenizer: Tokenizer | str | None = None,
    jobs: int = 1,
    profile: Profile = DEFAULT_PROFILE,
    special_tokens: Mapping[str, str] | None = None,
    server: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyResult:
    """Check fidelity, tolerance and (with ``normalize``) ``R == T∘normalize`` on ``examples``
    generated conversations; return the verdict and, on failure, a shrunk counterexample.

    ``original``/``relaxed`` are template text or :class:`~templatekit.sources.ChatTemplate`.
    ``special_tokens`` default to ORIGINAL's own (``bos_token``, ...), else placeholders;
    both templates render with the same ones.  ``tokenizer`` (a loaded
    :class:`~templatekit.tokens.Tokenizer` or a source for :func:`~templatekit.tokens.load_tokenizer`)
    adds a token-by-token diff to a counterexample.  The same ``seed`` gives the same result,
    whatever ``jobs``.  ``server`` (``"vllm"``, ``"llama-server"``, ...: :data:`templatekit.servers.SERVERS`)
    renders both through that server's pipeline and engine instead of transformers'; the
    engine must be installed (:func:`templatekit.engines.available_engines`).
    ``progress(done)`` is called after each chunk of conversations.  Every render has the
    default render budget: a template exceeding it raises
    :class:`~templatekit.errors.RenderBudgetExceeded`.
    """
    _check_options(examples, seed, normalize, jobs)
    if server is not None:
        from .engines import engine_status
        from .errors import EngineUnavailableError
        from .servers import engine_of

        problem = engine_status(engine_of(server))
        if problem is not None:
            raise EngineUnavailableError(f"cannot verify under {server}: {problem}", engine=engine_of(server))
    original_inputs = template_inputs(original, special_tokens, profile, server)
    relaxed_inputs = TemplateInputs(
        relaxed if isinstance(relaxed, str) else relaxed.text, original_inputs.special_tokens, profile, server
    )
    if isinstance(tokenizer, str):
        from .tokens import load_tokenizer

        tokenizer = load_tokenizer(tokenizer)
    policy = role_policy(_chat_template(original_inputs)) if normalize is not None else RolePolicy()
    job = _Job(
        original_inputs,
        relaxed_inputs,
        verify_plan(original_inputs),
        seed,
        normalize,
        _role_messages(original_inputs.text),
        policy,
    )
    checked = accepted = 0
    checks = dict.fromkeys(PROPERTIES, 0)
    failure: int | None = None
    for result in _results(job, examples, jobs):
        checked, accepted = result.stop, accepted + result.accepted
        if progress is not None:
            progress(checked)
        for name, count in result.checks.items():
            checks[name] += count
        if result.failure is not None:
            failure = result.failure
            break
    compared: Literal["text", "tokens"] = "tokens" if tokenizer is not None else "text"
    counterexample = None
    if failure is not None:
        counterexample = _counterexample(job, _case(job, failure), tokenizer)
    return VerifyResult(
        ok=failure is None,
        checked=checked,
        accepted_by_original=accepted,
        compared=compared,
        seed=seed,
        counterexample=counterexample,
        examples=examples,
        normalize=normalize,
        checks=checks,
    )


def _counterexample(job: _Job, case: dict[str, Any], tokenizer: Tokenizer | None) -> Counterexample:
    case = _shrink(_copy(case), lambda candidate: _evaluate(job, candidate).failure is not None)
    verdict = _evaluate(job, case)
    assert verdict.failure is not None
    token_diff = None
    if tokenizer is not None and verdict.expected is not None and verdict.actual is not None:
        from .tokens import diff_tokens

        token_diff = diff_tokens(tokenizer.encode(verdict.expected), tokenizer.encode(verdict.actual))
    normalized = tuple(verdict.normalized) if verdict.normalized is not None else None
    return Counterexample(
        verdict.failure,
        Case.from_data(_with_special_tokens(job, case)),
        verdict.expected,
        verdict.actual,
        verdict.error,
        normalized,
        token_diff,
    )


def _with_special_tokens(job: _Job, case: dict[str, Any]) -> dict[str, Any]:
    """``case`` with the special tokens the templates read as kwargs, so that rendering it
    from any source (a bare .jinja file has none) replays exactly what was compared."""
    read = analyze_text(job.original.text)[1].undeclared | analyze_text(job.relaxed.text)[1].undeclared
    tokens = {name: value for name, value in job.original.special_tokens if name in read}
    return {**case, "kwargs": {**tokens, **case.get("kwargs", {})}}
