"""The state table itself: shape, totality, refusal messages, the generated docs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anysgi.fastcgi.protocol import _state
from anysgi.fastcgi.protocol._state import (
    OUTPUT_ALLOWED,
    TRACK,
    TRANSITIONS,
    Kind,
    RequestMachine,
    State,
    closing_kinds,
    next_state,
)

S, K = State, Kind
INPUT_STATES = [s for s in State if not s.name.startswith(("STDOUT", "STDERR"))]
STDOUT_STATES = [s for s in State if s.name.startswith("STDOUT")]
STDERR_STATES = [s for s in State if s.name.startswith("STDERR")]


def test_every_key_and_target_is_on_the_kinds_track() -> None:
    tracks = {"input": INPUT_STATES, "stdout": STDOUT_STATES, "stderr": STDERR_STATES}
    for (state, kind), target in TRANSITIONS.items():
        assert state in tracks[TRACK[kind]], (state, kind)
        assert target in tracks[TRACK[kind]], (state, kind)
    assert set(TRACK) == set(Kind)


def test_inactive_and_done_states() -> None:
    # Only BEGIN_REQUEST leaves INACTIVE; nothing leaves DONE.
    assert {k for (s, k) in TRANSITIONS if s is S.INACTIVE} == {K.BEGIN_REQUEST, K.BEGIN_FILTER}
    assert not [key for key in TRANSITIONS if key[0] is S.DONE]
    # END_REQUEST is accepted in every active input state and leads to DONE.
    for state in INPUT_STATES:
        expected = None if state in (S.INACTIVE, S.DONE) else S.DONE
        assert next_state(state, K.END_REQUEST) is expected, state


def test_streams_follow_spec_order() -> None:
    responder = [K.PARAMS, K.PARAMS_END, K.STDIN, K.STDIN, K.STDIN_END]
    filter_ = [K.PARAMS_END, K.STDIN_END, K.DATA, K.DATA_END]
    machine = RequestMachine(S.PARAMS)
    assert all(machine.advance(kind) for kind in responder)
    assert machine.input is S.INPUT_ENDED
    machine = RequestMachine(S.FILTER_PARAMS)
    assert all(machine.advance(kind) for kind in filter_)
    assert machine.input is S.FILTER_INPUT_ENDED


def test_abort_keeps_whether_output_may_start() -> None:
    early = [S.PARAMS, S.FILTER_PARAMS, S.FILTER_STDIN]
    late = [S.STDIN, S.INPUT_ENDED, S.FILTER_DATA, S.FILTER_INPUT_ENDED]
    for state in early:
        assert next_state(state, K.ABORT_REQUEST) is S.ABORTED_EARLY
    for state in late:
        assert next_state(state, K.ABORT_REQUEST) is S.ABORTED
    assert {*late, S.ABORTED} == OUTPUT_ALLOWED


@pytest.mark.parametrize("input_state", INPUT_STATES)
@pytest.mark.parametrize("kind", list(Kind))
def test_every_state_and_kind_moves_or_is_refused_with_a_reason(
    input_state: State, kind: Kind
) -> None:
    """(e) as an exhaustive example test: input track x every kind."""
    _check_step(RequestMachine(input_state), kind)


@pytest.mark.parametrize("stdout", STDOUT_STATES)
@pytest.mark.parametrize("stderr", STDERR_STATES)
@pytest.mark.parametrize("input_state", [S.PARAMS, S.STDIN, S.ABORTED, S.ABORTED_EARLY])
@pytest.mark.parametrize("kind", [kind for kind in Kind if kind in _state.OUTPUT_KINDS])
def test_every_output_state_and_kind_moves_or_is_refused(
    stdout: State, stderr: State, input_state: State, kind: Kind
) -> None:
    _check_step(RequestMachine(input_state, stdout, stderr), kind)


@given(
    input_state=st.sampled_from(INPUT_STATES),
    stdout=st.sampled_from(STDOUT_STATES),
    stderr=st.sampled_from(STDERR_STATES),
    kind=st.sampled_from(list(Kind)),
)
def test_property_every_configuration_moves_or_refuses(
    input_state: State, stdout: State, stderr: State, kind: Kind
) -> None:
    _check_step(RequestMachine(input_state, stdout, stderr), kind)


def _check_step(machine: RequestMachine, kind: Kind) -> None:
    before = machine.snapshot()
    track = TRACK[kind]
    current = getattr(before, track)
    guarded = track != "input" and before.input not in OUTPUT_ALLOWED
    expected = None if guarded else TRANSITIONS.get((current, kind))
    reason = machine.refusal(kind)
    moved = machine.advance(kind)
    after = machine.snapshot()
    assert moved is (expected is not None)
    if moved:
        assert getattr(after, track) is expected
        # Only the kind's own track moves.
        for other in ("input", "stdout", "stderr"):
            if other != track:
                assert getattr(after, other) is getattr(before, other)
    else:
        assert after == before
        assert reason
        assert not reason.endswith(" ")


@pytest.mark.parametrize(
    ("machine", "kind", "reason"),
    [
        (RequestMachine(S.PARAMS), K.STDIN, "before its PARAMS stream ended"),
        (RequestMachine(S.STDIN), K.PARAMS, "after its PARAMS stream ended"),
        (RequestMachine(S.INPUT_ENDED), K.STDIN_END, "after its STDIN stream ended"),
        (RequestMachine(S.STDIN), K.DATA, "which is not a FILTER request"),
        (RequestMachine(S.INPUT_ENDED), K.DATA_END, "which is not a FILTER request"),
        (RequestMachine(S.FILTER_STDIN), K.DATA, "before its STDIN stream ended"),
        (RequestMachine(S.FILTER_PARAMS), K.DATA, "before its PARAMS stream ended"),
        (RequestMachine(S.FILTER_INPUT_ENDED), K.DATA, "after its DATA stream ended"),
        (RequestMachine(S.FILTER_DATA), K.STDIN, "after its STDIN stream ended"),
        (RequestMachine(S.PARAMS), K.BEGIN_REQUEST, "which is already active"),
        (RequestMachine(S.ABORTED), K.ABORT_REQUEST, "after it was aborted"),
        (RequestMachine(S.ABORTED_EARLY), K.STDIN, "after it was aborted"),
        (RequestMachine(S.INACTIVE), K.STDIN, "which is not active"),
        (RequestMachine(S.PARAMS), K.STDOUT, "before its PARAMS stream ended"),
        (RequestMachine(S.FILTER_STDIN), K.STDERR, "before its STDIN stream ended"),
        (
            RequestMachine(S.ABORTED_EARLY),
            K.STDOUT,
            "which was aborted before it could send output",
        ),
        (
            RequestMachine(S.STDIN, S.STDOUT_ENDED),
            K.STDOUT,
            "after its STDOUT stream ended",
        ),
        (
            RequestMachine(S.ABORTED, S.STDOUT_IDLE, S.STDERR_ENDED),
            K.STDERR_END,
            "after its STDERR stream ended",
        ),
    ],
)
def test_refusal_reasons(machine: RequestMachine, kind: Kind, reason: str) -> None:
    assert not machine.advance(kind)
    assert machine.refusal(kind) == reason


@pytest.mark.parametrize(
    ("machine", "complete", "expected"),
    [
        (RequestMachine(S.STDIN), True, (K.STDOUT_END,)),
        (RequestMachine(S.STDIN), False, ()),
        (RequestMachine(S.PARAMS), True, ()),
        (RequestMachine(S.ABORTED_EARLY), True, ()),
        (RequestMachine(S.STDIN, S.STDOUT_OPEN), False, (K.STDOUT_END,)),
        (RequestMachine(S.STDIN, S.STDOUT_ENDED), True, ()),
        (
            RequestMachine(S.INPUT_ENDED, S.STDOUT_OPEN, S.STDERR_OPEN),
            True,
            (K.STDOUT_END, K.STDERR_END),
        ),
        (RequestMachine(S.INPUT_ENDED, S.STDOUT_ENDED, S.STDERR_OPEN), True, (K.STDERR_END,)),
        (RequestMachine(S.INPUT_ENDED, S.STDOUT_ENDED, S.STDERR_IDLE), True, ()),
    ],
)
def test_closing_kinds(machine: RequestMachine, complete: bool, expected: tuple[Kind, ...]) -> None:
    assert closing_kinds(machine, complete) == expected
    # Whatever they are, they are valid in order, and END_REQUEST is valid after them.
    assert all(machine.advance(kind) for kind in expected)
    assert machine.advance(K.END_REQUEST)


def test_reprs() -> None:
    assert repr(_state.SERVER) == "SERVER"
    assert repr(S.STDIN) == "State.STDIN"
    assert repr(K.PARAMS_END) == "Kind.PARAMS_END"
    assert K.PARAMS_END.label == "empty PARAMS record"
    assert K.BEGIN_FILTER.label == "BEGIN_REQUEST record"
    assert K.END_REQUEST.label == "END_REQUEST record"


def test_snapshot_reports_output_permission() -> None:
    assert RequestMachine(S.STDIN).snapshot().output_allowed
    assert not RequestMachine(S.PARAMS).snapshot().output_allowed


def test_generated_docs_table_is_up_to_date() -> None:
    script = Path(__file__).parents[3] / "docs" / "reference" / "make_protocol_states.py"
    spec = importlib.util.spec_from_file_location("make_protocol_states", script)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.OUTPUT.read_text(encoding="utf-8") == module.render(), (
        "docs/reference/protocol-states.rst.inc is stale: run "
        "python docs/reference/make_protocol_states.py"
    )
