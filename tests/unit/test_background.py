"""A background loop that fails is started again, and says so."""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY

from platograph.background import LoopState, keep_running


def failures_metric(name: str) -> float:
    return REGISTRY.get_sample_value("platograph_background_failures_total", {"loop": name}) or 0.0


def test_a_loop_that_fails_is_started_again_and_counts_its_failures() -> None:
    state, stop = LoopState("unit-loop"), threading.Event()
    calls: list[int] = []
    third_run = threading.Event()
    before = failures_metric("unit-loop")

    def body(stop: threading.Event) -> None:
        calls.append(len(calls))
        if len(calls) <= 2:
            raise ValueError(f"boom {len(calls)}")
        third_run.set()
        stop.wait()

    thread = threading.Thread(target=keep_running, args=(state, body, stop, 0.01))
    thread.start()
    assert third_run.wait(5), "the loop was not started again after its errors"
    assert state.running
    assert state.failures == 2
    assert state.last_error == "ValueError: boom 2"
    assert state.report()["last_failure_at"] is not None
    assert failures_metric("unit-loop") - before == 2
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert not state.running
    assert calls == [0, 1, 2]


def test_a_loop_stopped_while_it_pauses_ends_without_another_run() -> None:
    state, stop = LoopState("unit-loop-stop"), threading.Event()
    runs: list[int] = []

    def body(stop: threading.Event) -> None:
        runs.append(1)
        stop.set()  # shutdown arrives as the error happens
        raise RuntimeError("failed while stopping")

    keep_running(state, body, stop, 60)  # returns at once: the pause ends with stop
    assert runs == [1]
    assert state.failures == 1
    assert not state.running


def test_a_loop_whose_body_returns_is_done() -> None:
    state, runs = LoopState("unit-loop-done"), []
    keep_running(state, lambda stop: runs.append(1), threading.Event(), 0.01)
    assert runs == [1] and state.failures == 0 and not state.running
