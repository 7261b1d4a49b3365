"""The state contract: join entries and rolling samples survive storage, and the arithmetic both stores share."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.core.contract import RollingDue, merge_counts, rolling_due
from stream.core.records import Joined
from stream.core.state import JoinEntry, decode_entry, encode_entry, encode_sample

ENTRIES = [
    JoinEntry("I", 1764000600.5, 3, "churn", "2", 1764000000.25, "1", 0.75),
    JoinEntry("I", math.inf, 0, "churn", "", 1764000000.0, "cat:a b", None),
    JoinEntry("L", 1764000600.0, 1, label="yes", label_time=None, raw='{"label": "yes"}', topic="labels", offset=7),
    JoinEntry("L", 1764000600.0, 1, label=1, label_time=1764000000.5, raw='{"label": 1}', topic="labels", offset=8),
    JoinEntry("J", 1764000600.0, 2, "churn"),  # a tombstone of 0.1: no fingerprints
    JoinEntry("J", 1764000600.0, 2, "churn", fingerprints=bytes(range(8))),
]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.state)
def test_join_entries_survive_storage(entry: JoinEntry) -> None:
    """Every kind of join entry reads back equal from its stored text, as text or as bytes."""
    assert decode_entry(encode_entry(entry)) == entry
    assert decode_entry(encode_entry(entry).encode()) == entry


def test_join_entries_of_0_1_0_still_read() -> None:
    """Entries that truthstream 0.1.0 stored as JSON are read after an upgrade (labels as JSON text)."""
    old = '["I",null,3,{"m":"churn","v":"2","t":1764000000.25,"y":"1","s":0.75}]'
    assert decode_entry(old) == JoinEntry("I", math.inf, 3, "churn", "2", 1764000000.25, "1", 0.75)
    old_label = '["L",1764000600.0,1,{"y":"\\"yes\\"","raw":"{}","tp":"labels","o":7}]'
    assert decode_entry(old_label) == JoinEntry("L", 1764000600.0, 1, label="yes", raw="{}", topic="labels", offset=7)


@given(
    label=st.one_of(
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs"))),
    ),
    label_time=st.one_of(st.none(), st.floats(min_value=946684800, max_value=4e9)),
    raw=st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
)
def test_pending_labels_keep_their_json_type_and_text(label: object, label_time: float | None, raw: str) -> None:
    """A waiting label reads back as the same JSON scalar (1 stays an int, true a bool, "1" text), and
    its message text whole, whatever quotes, newlines or separators it holds."""
    entry = JoinEntry("L", 1764000600.0, 2, label=label, label_time=label_time, raw=raw, topic="t.l-1", offset=9)
    back = decode_entry(encode_entry(entry).encode())
    assert back == entry
    assert type(back.label) is type(label)


def test_pending_labels_stored_as_json_still_read() -> None:
    """Waiting labels that earlier versions stored with their fields as JSON are read after an upgrade."""
    stored = '{"v":true,"lt":1764000000.5,"raw":"{\\"label\\": true}","tp":"labels","o":7}'
    assert decode_entry(f"L\x1f1764000600.0\x1f1\x1f{stored}") == JoinEntry(
        "L", 1764000600.0, 1, label=True, label_time=1764000000.5, raw='{"label": true}', topic="labels", offset=7
    )


def test_rolling_samples_decode_as_columns() -> None:
    """Samples written one per list item read back as the columns the evaluation takes."""
    samples = [Joined("m", "1", 10.5, "1", "0", 0.25), Joined("m", "1", 11.0, "0", "0", None)]
    due = RollingDue.decode("m\x1f1", 2, [encode_sample(s).encode() for s in samples])
    assert due == RollingDue.of("m\x1f1", 2, samples)
    assert (due.times, due.y_true, due.y_pred, due.scores) == ([10.5, 11.0], ["1", "0"], ["0", "0"], [0.25, None])


@pytest.mark.parametrize("every", [1, 3, 100])
@pytest.mark.parametrize("batch", [1, 7, 100, 999])
def test_a_rolling_window_is_due_when_a_batch_crosses_a_multiple_of_every(every: int, batch: int) -> None:
    """Due exactly when one of the sample numbers a batch added is a multiple of `every`."""
    total = 0
    while total < 1000:
        added = min(batch, 1000 - total)
        total += added
        crossed = any(k % every == 0 for k in range(total - added + 1, total + 1))
        assert rolling_due(total, added, every) == crossed, (total, added)


def test_counts_merge_into_integers() -> None:
    """A model's counters and the unattributed ones add up; Redis's text and float counters become ints."""
    assert merge_counts({"late": 2, "rejected": 1.0}, {"rejected": 3}, {}) == {"late": 2, "rejected": 4}
