"""`TENFOLD_JOBS__*`: bad values and bad combinations stop the build, naming the variable."""

from __future__ import annotations

import pytest

from tenfold import ConfigurationError, Platform, RedisSettings, Settings
from tenfold.jobs import Jobs, JobsExtension

REDIS = RedisSettings(url="redis://127.0.0.1:1/0")  # never connected: build has no I/O


def _build(monkeypatch: pytest.MonkeyPatch, redis: RedisSettings | None = None, **env: str) -> Jobs:
    for name in ("TENFOLD_REDIS__URL", "TENFOLD_JOBS__BROKER", "TENFOLD_JOBS__BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(f"TENFOLD_JOBS__{name}", value)
    settings = Settings.load(redis=redis or RedisSettings())
    platform = Platform.build(settings, extensions=[JobsExtension()], configure_logs=False)
    return platform.get(Jobs)


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"MAX_COUNTDOWN": "3600"}, "TENFOLD_JOBS__MAX_COUNTDOWN"),
        ({"VISIBILITY_TIMEOUT": "60", "MAX_COUNTDOWN": "10"}, "TENFOLD_JOBS__TIME_LIMIT"),
        ({"SOFT_TIME_LIMIT": "100", "TIME_LIMIT": "100"}, "TENFOLD_JOBS__TIME_LIMIT"),
        ({"BROKER": "rabbitmq"}, "TENFOLD_JOBS__BROKER_URL"),
        ({"BROKER": "rabbitmq", "BROKER_URL": "redis://h/0"}, "TENFOLD_JOBS__BROKER_URL"),
        ({"BROKER": "kafka"}, "TENFOLD_JOBS__BROKER"),
        ({"PREFETCH_MULTIPLIER": "0"}, "TENFOLD_JOBS__PREFETCH_MULTIPLIER"),
    ],
)
def test_an_invalid_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], setting: str
) -> None:
    """Each invalid value or combination is a ConfigurationError whose setting is the variable."""
    with pytest.raises(ConfigurationError) as raised:
        _build(monkeypatch, REDIS, **env)
    assert raised.value.setting == setting
    assert setting in str(raised.value)


def test_a_redis_broker_without_a_redis_url_names_the_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TENFOLD_JOBS__BROKER=redis with no Redis URL anywhere fails the build, naming it."""
    with pytest.raises(ConfigurationError) as raised:
        _build(monkeypatch, BROKER="redis")
    assert raised.value.setting == "TENFOLD_JOBS__BROKER"
    assert "TENFOLD_REDIS__URL" in str(raised.value)


def test_a_result_backend_without_redis_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Redis result backend needs TENFOLD_REDIS__URL, even with a RabbitMQ broker."""
    with pytest.raises(ConfigurationError) as raised:
        _build(monkeypatch, BROKER="rabbitmq", BROKER_URL="amqp://h//", RESULT_BACKEND="redis")
    assert raised.value.setting == "TENFOLD_JOBS__RESULT_BACKEND"


def test_auto_picks_redis_when_redis_is_configured_else_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The auto broker is the platform's Redis when TENFOLD_REDIS__URL is set, else in-process."""
    assert _build(monkeypatch, REDIS).broker == "redis"
    assert _build(monkeypatch).broker == "memory"
    rabbit = _build(monkeypatch, REDIS, BROKER="rabbitmq", BROKER_URL="amqp://u:p@h:5672//")
    assert rabbit.broker == "rabbitmq"
    assert rabbit.app.conf.broker_url == "amqp://u:p@h:5672//"


def test_the_celery_app_has_the_safe_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Late acks, requeue on a lost worker, the visibility timeout, prefetch 1, JSON only,
    limits, and no remote control or events."""
    conf = _build(monkeypatch, REDIS, VISIBILITY_TIMEOUT="7200").app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.broker_transport_options["visibility_timeout"] == 7200
    assert conf.worker_prefetch_multiplier == 1
    assert conf.worker_max_memory_per_child == 512_000
    assert (conf.task_soft_time_limit, conf.task_time_limit) == (300, 360)
    assert conf.worker_enable_remote_control is False
    assert conf.worker_send_task_events is False
    assert conf.task_send_sent_event is False
    assert conf.accept_content == ["json"]
    assert conf.task_serializer == "json"
    assert conf.result_backend is None


def test_redis_workers_sweep_for_unacknowledged_messages_each_tenth_of_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A dead worker's messages are restored within a tenth of the visibility timeout (1 to
    10 s) after it, not on kombu's 100 s cycle."""
    for timeout, interval in (("3600", 10), ("60", 6), ("3", 1)):
        options = _build(
            monkeypatch,
            REDIS,
            VISIBILITY_TIMEOUT=timeout,
            MAX_COUNTDOWN="1",
            SOFT_TIME_LIMIT="1",
            TIME_LIMIT="2",
            KEY_RETENTION="3601",
        ).app.conf.broker_transport_options
        assert options["unacked_restore_interval"] == interval
        assert options["unacked_restore_throttle"] == 1
