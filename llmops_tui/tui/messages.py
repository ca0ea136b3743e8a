"""App-wide messages. Workers post these; screens handle them (workers never touch widgets)."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class SweepEventPosted(Message):
    """One engine event (SweepStarted, CellFinished, LineFailed, RetryScheduled, MetricsReady, ...)."""

    def __init__(self, event: Any) -> None:
        super().__init__()
        self.event = event


class SweepProgressed(Message):
    """A throttled progress snapshot. A newer one replaces an older one still in the queue."""

    def __init__(self, event: Any) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SweepProgressed)


class SweepCrashed(Message):
    """The engine raised: the run monitor shows the one-line error; the run stays resumable."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class DataLoaded(Message):
    """A background load finished; ``payload`` is whatever the screen asked for."""

    def __init__(self, key: str, payload: Any) -> None:
        super().__init__()
        self.key = key
        self.payload = payload


class DeployFinished(Message):
    """A deployment from the Deploy screen ended: ``result`` is ``DeployResult.to_dict()``, or ``error`` is
    the one-line reason nothing (or not everything) was deployed."""

    def __init__(self, result: dict[str, Any] | None, error: str | None) -> None:
        super().__init__()
        self.result = result
        self.error = error
