"""Settings from environment and flags; record parsing corner cases."""

from __future__ import annotations

import asyncio

import pytest

from connectors.cli import build_parser
from stream.core.records import canonical_class, parse_inference, parse_label
from stream.core.segments import parse_segment_keys
from stream.core.timefmt import format_time, parse_time
from stream.errors import ConfigError, RecordError
from stream.settings import Settings
from stream.worker.app import faust_app
from tests.factories import T0


def test_environment_then_flags_override_defaults() -> None:
    """TRUTHSTREAM_* variables override defaults, and flags override variables."""
    env = {"TRUTHSTREAM_WINDOW_SECONDS": "600", "TRUTHSTREAM_BROKER": "kafka://k:9092", "TRUTHSTREAM_MIN_SAMPLES": "5"}
    s = Settings.from_env(env, window_seconds=120.0)
    assert (s.window_seconds, s.broker, s.min_samples, s.label_grace) == (120.0, "kafka://k:9092", 5, 3600.0)
    assert Settings.from_env(env).window_seconds == 600.0
    args = build_parser().parse_args(["worker", "--label-ttl", "60", "--redis-url", "redis://:pw@h:1/0"])
    s = Settings.from_args(args)
    assert s.label_ttl == 60.0 and s.masked()["redis_url"] == "redis://:***@h:1/0"
    assert Settings(broker="kafka://a:1,b:2").bootstrap_servers == ["a:1", "b:2"]


def test_the_window_settings_old_name_still_works() -> None:
    """TRUTHSTREAM_WINDOW and --window (the names before 0.2) still set the window size."""
    assert Settings.from_env({"TRUTHSTREAM_WINDOW": "600"}).window_seconds == 600.0
    args = build_parser().parse_args(["worker", "--window", "90"])
    assert Settings.from_args(args).window_seconds == 90.0


def test_a_bad_flag_is_named_as_the_user_typed_it(capsys: pytest.CaptureFixture[str]) -> None:
    """`--window-seconds -5` is refused naming the flag (and the variable), with exit code 2."""
    from connectors.cli import main

    assert main(["replay", "--window-seconds", "-5"]) == 2
    assert "--window-seconds / TRUTHSTREAM_WINDOW_SECONDS must be positive" in capsys.readouterr().err


@pytest.mark.parametrize(
    "env,match",
    [
        ({"TRUTHSTREAM_WINDOW": "abc"}, "TRUTHSTREAM_WINDOW='abc' is not a float"),
        ({"TRUTHSTREAM_WINDOW_SECONDS": "0"}, "TRUTHSTREAM_WINDOW_SECONDS must be positive"),
        ({"TRUTHSTREAM_MIN_SAMPLES": "-1"}, "TRUTHSTREAM_MIN_SAMPLES must not be negative"),
        ({"TRUTHSTREAM_METRICS_TOPIC": "labels"}, "must be distinct"),
        ({"TRUTHSTREAM_REDIS_CLUSTER": "maybe"}, "TRUTHSTREAM_REDIS_CLUSTER='maybe' is not on or off"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], match: str) -> None:
    """A bad value is refused with the variable's name."""
    with pytest.raises(ConfigError, match=match):
        Settings.from_env(env)


@pytest.mark.parametrize(
    "word,value",
    [(w, True) for w in ("on", "true", "1", "yes", "ON", "Yes")]
    + [(w, False) for w in ("off", "false", "0", "no", "Off")],
)
def test_on_off_settings_take_every_usual_spelling(word: str, value: bool) -> None:
    """on/off, true/false, 1/0 and yes/no, in any case, from a variable and from a flag."""
    env = {"TRUTHSTREAM_DEVIATIONS": word, "TRUTHSTREAM_REDIS_CLUSTER": word, "TRUTHSTREAM_ROLLING_SIZE": "0"}
    settings = Settings.from_env(env)
    assert settings.deviations is value and settings.redis_cluster is value
    args = build_parser().parse_args(["worker", "--engine-process", word])
    assert Settings.from_args(args).engine_process is value


def test_per_model_lists_share_one_syntax_and_read_the_older_forms() -> None:
    """`model=value|value;model=value` for classes, problem types and segments; the comma forms of
    earlier versions still read the same."""
    settings = Settings.from_env(
        {
            "TRUTHSTREAM_MODEL_CLASSES": "species=cat|dog;color=red|blue",
            "TRUTHSTREAM_MODEL_PROBLEM_TYPES": "species=MulticlassClassification;price=Regression",
        }
    )
    assert settings.class_map() == {"species": frozenset({"cat", "dog"}), "color": frozenset({"red", "blue"})}
    older = Settings.from_env({"TRUTHSTREAM_MODEL_PROBLEM_TYPES": "species=MulticlassClassification,price=Regression"})
    assert (
        older.problem_type_map()
        == settings.problem_type_map()
        == {
            "species": "MulticlassClassification",
            "price": "Regression",
        }
    )
    assert parse_segment_keys("features.a|features.b") == parse_segment_keys("features.a,features.b")
    with pytest.raises(ConfigError, match="TRUTHSTREAM_MODEL_CLASSES entry 'species' is not model=value"):
        Settings.from_env({"TRUTHSTREAM_MODEL_CLASSES": "species;color=red"})


def test_the_settings_groups_are_small_dataclasses_and_the_core_config_shares_their_defaults() -> None:
    """Each group is a frozen dataclass of its own; the defaults the core uses are CoreConfig's."""
    from dataclasses import FrozenInstanceError, fields

    from stream.core.config import CoreConfig
    from stream.settings.groups import KafkaSettings, WindowSettings

    settings = Settings.from_env({"TRUTHSTREAM_BROKER": "kafka://b:9092"})
    kafka = settings.group(KafkaSettings)
    assert kafka.broker == "kafka://b:9092" and len(fields(kafka)) == 10
    with pytest.raises(FrozenInstanceError):
        kafka.broker = "x"  # type: ignore[misc]
    defaults, core = Settings(), CoreConfig()
    for f in fields(WindowSettings):
        if hasattr(core, f.name):
            assert getattr(defaults, f.name) == getattr(core, f.name), f.name
    assert Settings().core() == core


def test_times_accept_iso_and_epoch() -> None:
    """ISO-8601 with Z, offsets or none (UTC), and epoch seconds all parse to the same instant."""
    t = 1764000000.25
    assert parse_time("2025-11-24T16:00:00.250Z") == t
    assert parse_time("2025-11-24T17:00:00.250+01:00") == t
    assert parse_time("2025-11-24T16:00:00.250") == t
    assert parse_time(t) == t and parse_time(str(t)) == t
    assert format_time(t) == "2025-11-24T16:00:00.250Z"
    with pytest.raises(ValueError):
        parse_time(True)


def test_class_labels_are_canonical() -> None:
    """1, 1.0, "1", true all mean the positive class; other binary values are refused."""
    for value in (1, 1.0, "1", "1.0", True, "true"):
        assert canonical_class(value, "label", "BinaryClassification") == "1"
    assert canonical_class("cat", "label", "MulticlassClassification") == "cat"
    with pytest.raises(RecordError, match="binary classes"):
        canonical_class("cat", "label", "BinaryClassification")
    with pytest.raises(RecordError, match="not a class label"):
        canonical_class(0.5, "label", "BinaryClassification")


def test_positive_score_comes_from_probabilities_when_no_probability() -> None:
    """For binary models the score of class 1 in `probabilities` is used when `probability` is absent."""
    doc = {
        "event_id": "e",
        "model": "m",
        "inference_time": T0,
        "prediction": 1,
        "probabilities": {"0": 0.25, "1": 0.75},
    }
    assert parse_inference(doc, lambda m: "BinaryClassification", T0).score == 0.75
    with pytest.raises(RecordError) as err:
        parse_inference({**doc, "probabilities": {"0": 2}}, lambda m: "BinaryClassification", T0)
    assert err.value.field == "probabilities.0" and err.value.model == "m"
    with pytest.raises(RecordError, match="is required"):
        parse_label({"event_id": "e"}, T0)


def test_event_times_must_be_plausible_and_not_far_ahead_of_the_record() -> None:
    """From 2000-01-01 on, and at most the tolerance ahead of the reference (the record's Kafka time)."""
    doc = {"event_id": "e", "model": "m", "prediction": 1}
    ok = parse_inference({**doc, "inference_time": T0 + 3600}, lambda m: "BinaryClassification", T0, 3600)
    assert ok.time == T0 + 3600
    for when, reason in [(T0 + 3601, "ahead of the record's timestamp"), ("1999-12-31T23:59:59Z", "before 2000")]:
        with pytest.raises(RecordError, match=reason) as err:
            parse_inference({**doc, "inference_time": when}, lambda m: "BinaryClassification", T0, 3600)
        assert err.value.field == "inference_time"
        with pytest.raises(RecordError, match=reason) as err:
            parse_label({"event_id": "e", "label": 1, "label_time": when}, T0, 3600)
        assert err.value.field == "label_time"


def test_names_and_classes_with_control_characters_are_refused() -> None:
    """They are stored joined by a control character, so one inside a name would split it."""
    doc = {"event_id": "e", "model": "m", "inference_time": T0, "prediction": 1}
    for field, value, kind in [
        ("model", "churn\x1fv2", "BinaryClassification"),
        ("model_version", "2\n", "BinaryClassification"),
        ("prediction", "c\x1fat", "MulticlassClassification"),
    ]:
        with pytest.raises(RecordError, match="control characters") as err:
            parse_inference({**doc, field: value}, lambda m, kind=kind: kind, T0)
        assert err.value.field == field


def test_fetch_wait_reaches_the_workers_kafka_consumer(tmp_path) -> None:
    """faust fixes the consumer's broker-side fetch wait at 1.5 s; the worker's is the setting."""

    async def created_consumer_wait() -> int:
        app = faust_app(Settings(fetch_wait=0.05, data_dir=str(tmp_path)))
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()  # never started: this only releases it

    assert asyncio.run(created_consumer_wait()) == 50


def test_records_decode_as_json_itself_would_from_bytes() -> None:
    """UTF-8 (the fast path), UTF-8 with a byte-order mark and UTF-16 decode as `json.loads` of the
    bytes does; invalid UTF-8 and non-objects are refused with the reason."""
    import json as _json

    from stream.core.records import decode_json

    doc = {"event_id": "é-1", "label": 1}
    for raw in (
        _json.dumps(doc, ensure_ascii=False).encode(),
        b"\xef\xbb\xbf" + _json.dumps(doc).encode(),
        _json.dumps(doc).encode("utf-16"),
    ):
        assert decode_json(raw, 1000) == _json.loads(raw) == doc
    with pytest.raises(RecordError, match="not valid UTF-8 JSON"):
        decode_json(b'{"event_id": "\xff"}', 1000)
    with pytest.raises(RecordError, match="expected a JSON object"):
        decode_json(b"[1]", 1000)


def test_the_interval_rule_needs_intervals() -> None:
    with pytest.raises(ConfigError, match="VIOLATION_RULE=interval needs confidence intervals"):
        Settings.from_env({}, violation_rule="interval", confidence_level=0.0)
    with pytest.raises(ConfigError, match="CONFIDENCE_LEVEL must be in"):
        Settings.from_env({}, confidence_level=1.5)
    assert Settings.from_env({}, violation_rule="interval").core().violation_rule == "interval"
