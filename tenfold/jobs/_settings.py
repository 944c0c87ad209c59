"""The jobs section (`TENFOLD_JOBS__*`): broker, queues, and the worker's safe defaults."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from tenfold._section import SettingsSection, json_or_text

__all__ = ["JobsSettings", "ScheduledTask"]


class ScheduledTask(BaseModel):
    """One entry of TENFOLD_JOBS__SCHEDULE: ``{"task": ..., "every": seconds, ...}`` or
    ``{"task": ..., "cron": "*/5 * * * *", ...}`` (checked when the platform is built)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str = Field(min_length=1)
    every: float | None = Field(None, gt=0)
    cron: str | None = None
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    queue: str | None = None


class JobsSettings(SettingsSection):
    """Background jobs on Celery (`TENFOLD_JOBS__*`): broker, queues and worker limits."""

    broker: Literal["auto", "redis", "rabbitmq", "memory"] = Field(
        "auto",
        description="Message broker; auto: redis when TENFOLD_REDIS__URL is set, else memory "
        "(in-process only).",
    )
    broker_url: SecretStr | None = Field(
        None,
        description="Broker URL: amqp://... for rabbitmq (required), or a redis:// URL other "
        "than TENFOLD_REDIS__URL.",
    )
    embedded_worker: bool = Field(
        True,
        description="With the memory broker, run a worker in a thread of each started "
        "platform (the web app); off: messages stay queued.",
    )
    default_queue: str = Field("default", min_length=1, description="Queue of tasks given none.")
    visibility_timeout: int = Field(
        3600,
        ge=1,
        description="Seconds before Redis redelivers an unacknowledged message; longer than "
        "any task and any countdown.",
    )
    max_countdown: int = Field(
        3000,
        ge=0,
        description="Longest countdown or ETA (seconds) accepted at enqueue; below "
        "visibility_timeout.",
    )
    prefetch_multiplier: int = Field(
        1, ge=1, description="Messages a worker process reserves ahead of the one it runs."
    )
    max_memory_per_child: int | None = Field(
        512_000,
        ge=1,
        description="KiB of resident memory after which a pool process is replaced; unset: never.",
    )
    soft_time_limit: int | None = Field(
        300, ge=1, description="Seconds before SoftTimeLimitExceeded is raised in a task."
    )
    time_limit: int | None = Field(
        360, ge=1, description="Seconds before a task's pool process is killed."
    )
    result_backend: Literal["off", "redis"] = Field(
        "off", description="Where task results are stored; redis: TENFOLD_REDIS__URL."
    )

    key_retention: int = Field(
        7 * 24 * 3600,
        ge=60,
        description="Seconds a committed exactly-once task key is kept; a redelivery later than "
        "this runs the task again. Above visibility_timeout.",
    )
    dlq_max_args: int = Field(
        65_536,
        ge=256,
        description="Bytes of a dead-lettered task's JSON arguments kept; longer ones are cut "
        "and cannot be retried from the dead-letter queue.",
    )
    outbox_relay: bool = Field(
        True,
        description="Whether a started platform drains the outbox of tasks enqueued inside "
        "transactions whose process died before sending them.",
    )
    outbox_interval: float = Field(
        1.0, gt=0, description="Seconds between the outbox relay's passes."
    )
    outbox_grace: float = Field(
        10.0,
        gt=0,
        description="Seconds an outbox row is left to the process that committed it before "
        "the relay sends it.",
    )

    schedule: dict[str, ScheduledTask] = Field(
        default_factory=dict,
        description='Periodic tasks for `tenfold beat`, JSON: {"name": {"task": "module.fn", '
        '"every": seconds or "cron": "*/5 * * * *" (UTC), "args": [], "kwargs": {}, '
        '"queue": null}}.',
    )
    beat_lease_ttl: float = Field(
        10.0,
        gt=0,
        description="Seconds the beat leader's lease outlives its last renewal; a dead "
        "leader is replaced within 4/3 of it.",
    )
    metrics_interval: float = Field(
        15.0,
        gt=0,
        description="Seconds between two samples of the queue depths, taken by one process "
        "(the leader of `jobs-metrics:<app name>`).",
    )
    metrics_queues: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Queues sampled besides the tasks' own and the default queue "
        "(comma-separated or JSON list).",
    )
    worker_metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Port `tenfold worker` serves its task metrics on (plain Prometheus "
        "text); unset: none. `--metrics-port` overrides it.",
    )
    worker_metrics_host: str = Field(
        "127.0.0.1", min_length=1, description="Address the worker's metrics port binds."
    )

    @field_validator("metrics_queues", mode="before")
    @classmethod
    def _queue_names(cls, value: Any) -> list[str]:
        value = json_or_text(value)
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ValueError("must be a comma-separated or JSON list of queue names")
        return [str(item).strip() for item in items if str(item).strip()]

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule_json(cls, value: Any) -> Any:
        return json_or_text(value)

    @field_validator("broker_url")
    @classmethod
    def _rabbitmq_needs_url(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        broker = info.data.get("broker")
        if broker == "rabbitmq" and value is None:
            raise ValueError("the rabbitmq broker needs an amqp:// URL")
        if value is not None:
            scheme = value.get_secret_value().partition("://")[0]
            wanted = {"rabbitmq": ("amqp", "amqps", "pyamqp"), "redis": ("redis", "rediss")}
            if broker in wanted and scheme not in wanted[broker]:
                raise ValueError(f"a {broker} broker URL starts with {wanted[broker][0]}://")
        return value

    @field_validator("max_countdown")
    @classmethod
    def _countdown_below_visibility(cls, value: int, info: ValidationInfo) -> int:
        visibility = info.data.get("visibility_timeout")
        if visibility is not None and value >= visibility:
            raise ValueError(
                f"must be below TENFOLD_JOBS__VISIBILITY_TIMEOUT ({visibility} s): Redis would "
                "deliver a message waiting longer than that a second time"
            )
        return value

    @field_validator("key_retention")
    @classmethod
    def _keys_outlive_redelivery(cls, value: int, info: ValidationInfo) -> int:
        visibility = info.data.get("visibility_timeout")
        if visibility is not None and value <= visibility:
            raise ValueError(
                f"must be above TENFOLD_JOBS__VISIBILITY_TIMEOUT ({visibility} s): a message "
                "redelivered after its key was pruned would run a second time"
            )
        return value

    @field_validator("time_limit")
    @classmethod
    def _hard_after_soft(cls, value: int | None, info: ValidationInfo) -> int | None:
        soft = info.data.get("soft_time_limit")
        if value is not None and soft is not None and value <= soft:
            raise ValueError(f"must be above TENFOLD_JOBS__SOFT_TIME_LIMIT ({soft} s)")
        visibility = info.data.get("visibility_timeout")
        if value is not None and visibility is not None and value >= visibility:
            raise ValueError(
                f"must be below TENFOLD_JOBS__VISIBILITY_TIMEOUT ({visibility} s): a task still "
                "running then is delivered to a second worker"
            )
        return value

    @property
    def distributed(self) -> bool:
        """Whether jobs go through a broker server (Redis or RabbitMQ)."""
        return self.broker in ("redis", "rabbitmq")
