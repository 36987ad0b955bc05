"""The Ray session of a study command: join a cluster, or start an embedded single-node Ray on loopback.

Ray is imported lazily (inside the functions), so the CLI can prepare the environment first.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from seqsum.errors import StudyError

# Ray reads this variable when `ray` is first imported (into a module constant) and again in every
# process it starts. Set to 0, an embedded single-node Ray binds every listener and connection to
# 127.0.0.1 (Ray's default listens on all interfaces). There is no public API for this: the variable
# is the public switch, and it must be in os.environ before the process's first `import ray`. So every
# import of ray in study/ is lazy and `ray_session` sets the variable just before its own import (the
# CLI imports nothing of Ray before that; set it yourself before importing ray if you embed seqsum).
# It refuses multi-node clusters, so it is set only for the embedded mode, never for a driver joining
# a cluster.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def embedded_environment() -> None:
    """Prepare os.environ for an embedded Ray (call before the first `import ray` of the process)."""
    if os.environ.get(LOOPBACK_ENV) != "0" and "ray" in sys.modules:
        print(
            f"seqsum: warning: ray was imported before {LOOPBACK_ENV}=0 was set; "
            "the embedded Ray may listen on every interface",
            file=sys.stderr,
        )
    os.environ[LOOPBACK_ENV] = "0"


def quiet_environment() -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


@contextmanager
def ray_session(address: str | None, num_cpus: int | None = None) -> Iterator[None]:
    """Join the cluster at `address`, or start an embedded single-node Ray bound to loopback only."""
    quiet_environment()
    if address is None:
        embedded_environment()
    import ray  # Ray reads the environment set just above at its first import

    if ray.is_initialized():
        yield
        return
    if address is None:
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            configure_logging=True,
            logging_level="WARNING",
            log_to_driver=True,
        )
    else:
        check_reachable(address)
        try:
            ray.init(address=address, logging_level="WARNING", log_to_driver=True)
        except Exception as e:  # ConnectionError, AuthenticationError, ...
            hint = ""
            if "auth" in type(e).__name__.lower() or "auth" in str(e).lower():
                hint = " (a secured cluster: set RAY_AUTH_MODE=token and the cluster's token, see README)"
            raise StudyError(f"cannot connect to Ray at {address!r}: {str(e).splitlines()[0][:200]}{hint}") from None
    try:
        yield
    finally:
        ray.shutdown()


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast with one line when host:port does not answer (ray.init alone may retry for minutes)."""
    if address in ("auto", "local") or address.startswith(("ray://", "anyscale://")):
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise StudyError(f"bad --address {address!r}; use auto or host:port (e.g. 10.0.0.5:6379)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise StudyError(f"Ray cluster at {address!r} is unreachable: {e.strerror or e}") from None


def check_resources(cpus: float, gpus: float, address: str | None = None) -> None:
    """Refuse, before any trial starts, a per-trial request that no node of the cluster can hold.

    Inside a Ray session it asks the cluster (ray.nodes()); outside one, for the embedded mode
    (address None), it counts this machine's CPUs and CUDA devices, so a bad request fails before Ray
    starts."""
    ray = sys.modules.get("ray")  # not imported here: the embedded mode's environment comes first
    joined = ray is not None and ray.is_initialized()
    if joined:
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    elif address is None:
        nodes = [{"CPU": len(os.sched_getaffinity(0)), "GPU": torch.cuda.device_count()}]
    else:
        return  # checked once the session has joined the cluster
    if any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
        return
    most_cpu = max((n.get("CPU", 0) for n in nodes), default=0)
    most_gpu = max((n.get("GPU", 0) for n in nodes), default=0)
    has = f"{most_cpu:g} CPU(s) and {most_gpu:g} GPU(s)"
    where = f"the Ray cluster's largest node ({len(nodes)} node(s)) has {has}" if joined else f"this machine has {has}"
    raise StudyError(
        f"each trial asks for {cpus:g} CPU(s) and {gpus:g} GPU(s) (--cpus-per-trial/--gpus-per-trial), but {where}"
    )
