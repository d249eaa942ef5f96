"""The collector pause is counted: nested and side-by-side holders leave the collector as
they found it, and it is off while any holder is inside."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from forensics.bulk import collector_paused


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_nested_pauses_end_with_the_outermost() -> None:
    gc.enable()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_threads_overlapping_in_any_order_leave_it_on() -> None:
    gc.enable()
    first_in, second_in, first_may_leave = threading.Event(), threading.Event(), threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with collector_paused():
            first_in.set()
            first_may_leave.wait(10)
        seen.append(gc.isenabled())  # the second holder is still inside

    def second() -> None:
        first_in.wait(10)
        with collector_paused():
            second_in.set()
            first_may_leave.set()
            one.join(10)
            seen.append(gc.isenabled())

    one, two = threading.Thread(target=first), threading.Thread(target=second)
    one.start()
    two.start()
    two.join(10)
    assert seen == [False, False]
    assert gc.isenabled()
