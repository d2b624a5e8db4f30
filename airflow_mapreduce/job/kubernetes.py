"""Pod settings of the kubernetes backend that need more than a scalar: resources,
tolerations, security context. Names follow Kubernetes' own (snake_case in YAML)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StrictInt, model_validator

from airflow_mapreduce.job.base import Model
from airflow_mapreduce.job.validators import (
    INT32_MAX,
    MAX_DURATION_SECONDS,
    FieldError,
    check_quantity,
    parse_quantity,
)

Quantity = Annotated[
    str | int | float,
    AfterValidator(check_quantity),
    Field(description="Kubernetes quantity: 500m, 2, 1.5Gi, 512Mi."),
]
ResourceName = Literal["cpu", "memory", "ephemeral-storage", "nvidia.com/gpu"]


class ResourcesSpec(Model):
    """requests and limits of one phase's worker container."""

    requests: dict[ResourceName, Quantity] = Field(default_factory=dict)
    limits: dict[ResourceName, Quantity] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _requests_within_limits(self) -> ResourcesSpec:
        for name, limit in self.limits.items():
            request = self.requests.get(name)
            if request is not None and parse_quantity(request) > parse_quantity(limit):
                raise FieldError(
                    ("requests", name),
                    f"requests.{name} ({request}) is above limits.{name} ({limit}); "
                    "Kubernetes rejects such a pod: lower the request or raise the limit",
                )
        return self


class TolerationSpec(Model):
    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: StrictInt | None = Field(default=None, ge=0, le=MAX_DURATION_SECONDS)

    @model_validator(mode="after")
    def _exists_takes_no_value(self) -> TolerationSpec:
        if self.operator == "Exists" and self.value is not None:
            raise FieldError("value", "operator Exists takes no 'value'; remove it or use Equal")
        return self


class SecurityContextSpec(Model):
    """Defaults lock pods down (non-root, read-only root, no privilege escalation)."""

    # Kubernetes takes uids and gids in 0..2**31-1 (validation.IsValidUserID).
    run_as_user: StrictInt = Field(default=1000, ge=0, le=INT32_MAX)
    run_as_group: StrictInt = Field(default=1000, ge=0, le=INT32_MAX)
    fs_group: StrictInt | None = Field(default=1000, ge=0, le=INT32_MAX)
    run_as_non_root: bool = True
    read_only_root_filesystem: bool = True
    seccomp_profile: Literal["RuntimeDefault", "Unconfined"] = "RuntimeDefault"

    @model_validator(mode="after")
    def _root_needs_opt_out(self) -> SecurityContextSpec:
        if self.run_as_user == 0 and self.run_as_non_root:
            raise FieldError(
                "run_as_user",
                "run_as_user 0 is root but run_as_non_root is true; use a non-zero uid "
                "(the default 1000) or set run_as_non_root: false deliberately",
            )
        return self
