"""Change detection on live model quality, with no threshold to set: when did the error rate change?

A detector per model version (and per segment value) is river's ADWIN (`delta`, the setting
TRUTHSTREAM_CHANGE_DELTA, 0.002: the bound on a false alarm at each check) over the sequence of
joined outcomes, 1 for a wrong prediction and 0 for a right one. It is fed when a window closes,
window after window in event time, so the live worker and replay feed it the same sequence
whatever the arrival order: inside a window, which carries counts and no order, the outcomes come
in a pseudo-random order seeded by the window (the same in every run). A change is therefore
placed at window resolution: once ADWIN says there was a change, the window boundary that best
splits the windows fed since the detector started into two levels (least squares) is the
estimated change time, and the accuracy before and after are those of the two sides.

Label-free, a second detector per model version watches the score distribution: each window's
scores (a binary model's positive-class score, a multiclass model's top probability, binned at
0.01) are fed when the window's provisional record is published, i.e. as soon as its inferences
are complete, in the same seeded order; a change in the mean score is reported the same way.

Why ADWIN: `tests/test_changes.py::test_adwin_is_the_detector_of_choice` runs it and river's
alternatives (Page-Hinkley, DDM, HDDM_A) on the same streams; ADWIN alarms least often on a
stationary stream and finds an abrupt drop no later (the test holds the figures, not this text).

A detector's state (ADWIN, and the windows fed since it started as packed doubles, the last
`MAX_HISTORY` one by one and those before summed into one, in one pickle: about 8 KB) is stored by
the state store with the window it follows; it is read back with an unpickler that only
builds ADWIN. The JSON form around ADWIN's pickle that earlier 0.1.0 builds wrote still reads.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import pickle
from array import array
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from river.drift import ADWIN

CHANGE_CHECK_TYPE = "ChangeDetected"  # constraint_check_type of a change event
SCORE_DETECTOR = "scores"  # the label-free detector's name (the outcome detectors': "" and "key=value")
# Windows a detector remembers one by one (to place a change); the ones before are summed into one,
# so the before/after figures still cover everything since the detector started. ADWIN itself keeps
# a logarithmic summary (about 2.4 KB after 3,000 windows): a detector's state stays near 8 KB.
MAX_HISTORY = 128
_ALLOWED = {("river.drift.adwin", "ADWIN"), ("river._river_rust.drift", "AdaptiveWindowing")}
_FORMAT = 2  # the stored form's version (the JSON form, which has none, was the first)


class _DetectorUnpickler(pickle.Unpickler):
    """Builds ADWIN and nothing else: a detector's state comes from Redis, which must not be able to
    make the worker run anything."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"a change detector's state may not hold {module}.{name}")
        return super().find_class(module, name)


@dataclass
class Change:
    """A change ADWIN found: where the new regime starts, and the (samples, sum of the values) on
    either side (for outcomes, the sum is the errors)."""

    since: float  # start of the window holding the first sample of the new regime
    before: tuple[int, float]
    after: tuple[int, float]  # the new regime, up to the detection

    def means(self) -> tuple[float | None, float | None]:
        """The mean value before and after (None for an empty side)."""
        return tuple(s / n if n else None for n, s in (self.before, self.after))  # type: ignore[return-value]


@dataclass
class Detector:
    """ADWIN and the (start, samples, sum, sum of squares) of the windows it was fed since it started.

    Ten one-minute windows at an error rate of 0.1, then ten at 0.4: the change is found in the
    first window after it and placed at its start, with the error rates before and after.

    >>> detector = Detector(0.002)
    >>> found = [detector.feed(60.0 * w, 60.0 * (w + 1), 100, 10 if w < 10 else 40, f"w{w}") for w in range(20)]
    >>> change = next(c for c in found if c is not None)
    >>> found.index(change), change.since, [round(m, 2) for m in change.means()]
    (10, 600.0, [0.1, 0.43])
    """

    delta: float
    adwin: ADWIN | None = None
    windows: list[tuple[float, int, float, float]] = field(default_factory=list)
    fed_to: float = float("-inf")  # the end of the last window fed

    def __post_init__(self) -> None:
        if self.adwin is None:
            self.adwin = ADWIN(delta=self.delta)

    def feed(self, start: float, end: float, n: int, errors: int, seed: str) -> Change | None:
        """Feed one window's outcomes (`errors` wrong of `n`) in an order seeded by `seed`; the first
        change they reveal, if any (the detector then starts again from the sample after it)."""
        order = np.zeros(n, dtype=np.float64)
        order[:errors] = 1.0
        return self._feed(start, end, order, seed)

    def feed_values(self, start: float, end: float, counts: dict[float, int], seed: str) -> Change | None:
        """Feed one window's values in [0, 1], given as value -> count, like `feed`."""
        values = np.repeat(np.array(list(counts), dtype=np.float64), np.array(list(counts.values()), dtype=np.int64))
        return self._feed(start, end, values, seed)

    def _feed(self, start: float, end: float, values_array: np.ndarray, seed: str) -> Change | None:
        np.random.default_rng(_seed(seed)).shuffle(values_array)
        values = values_array.tolist()
        self.fed_to = end
        adwin, found = self.adwin, None
        for i, x in enumerate(values):
            adwin.update(x)  # type: ignore[union-attr]
            if adwin.drift_detected:  # type: ignore[union-attr]
                head, rest = values[: i + 1], values[i + 1 :]
                self.windows.append(_summary(start, head))
                found = self._change()
                self.adwin, self.windows = ADWIN(delta=self.delta), [_summary(start, rest)]
                for y in rest:
                    self.adwin.update(y)
                break
        else:
            self.windows.append(_summary(start, values))
        if len(self.windows) > MAX_HISTORY + 1:  # the first is the sum of the windows before
            gone = self.windows[:-MAX_HISTORY]
            summed = (gone[0][0], sum(w[1] for w in gone), sum(w[2] for w in gone), sum(w[3] for w in gone))
            self.windows[:-MAX_HISTORY] = [summed]
        return found

    def _change(self) -> Change:
        """Where the change began, at window resolution: the window boundary that best splits the
        windows fed into two levels (least squares: the smallest sum of squared deviations from
        each side's mean), ADWIN having said that one exists."""
        n, s, q = (np.array([w[i] for w in self.windows], dtype=np.float64) for i in (1, 2, 3))
        best, split = np.inf, len(n) - 1
        for j in range(1, len(n)):
            cost = _squares(n[:j].sum(), s[:j].sum(), q[:j].sum()) + _squares(n[j:].sum(), s[j:].sum(), q[j:].sum())
            if cost < best - 1e-9:
                best, split = cost, j
        return Change(
            self.windows[split][0],
            (int(n[:split].sum()), float(s[:split].sum())),
            (int(n[split:].sum()), float(s[split:].sum())),
        )

    def dump(self) -> str:
        """The detector as text, for the state store (base64 of one pickle)."""
        packed = array("d", [x for window in self.windows for x in window]).tobytes()
        state = (_FORMAT, self.delta, self.fed_to, self.adwin, packed)
        return base64.b64encode(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)).decode("ascii")

    @classmethod
    def load(cls, text: str | None, delta: float) -> Detector:
        """A detector from `dump`'s text, or from the JSON form earlier versions stored (a new one for
        None, or for a state of another delta)."""
        if not text:
            return cls(delta)
        if text.startswith("{"):
            return cls._load_json(text, delta)
        state = _DetectorUnpickler(io.BytesIO(base64.b64decode(text))).load()
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == _FORMAT):
            raise pickle.UnpicklingError("a change detector's state is not one this version stores")
        _, stored_delta, fed_to, adwin, packed = state
        if stored_delta != delta:
            return cls(delta)
        flat = array("d")
        flat.frombytes(packed)
        windows = list(zip(flat[0::4], map(int, flat[1::4]), flat[2::4], flat[3::4]))
        return cls(delta, _adwin(adwin), windows, float(fed_to))

    @classmethod
    def _load_json(cls, text: str, delta: float) -> Detector:
        doc = json.loads(text)
        if doc.get("delta") != delta:
            return cls(delta)
        adwin = _DetectorUnpickler(io.BytesIO(base64.b64decode(doc["adwin"]))).load()
        windows = [(float(w[0]), int(w[1]), float(w[2]), float(w[3])) for w in doc["windows"]]
        return cls(delta, _adwin(adwin), windows, float(doc["fed_to"]))


def _adwin(found: Any) -> ADWIN:
    if not isinstance(found, ADWIN):
        raise pickle.UnpicklingError("a change detector's state does not hold an ADWIN")
    return found


def _summary(start: float, values: list[float]) -> tuple[float, int, float, float]:
    return start, len(values), float(sum(values)), float(sum(v * v for v in values))


def _squares(n: float, total: float, squares: float) -> float:
    """Sum of squared deviations from the mean of n values with this sum and sum of squares."""
    return squares - total * total / n if n > 0 else 0.0


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
