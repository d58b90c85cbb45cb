"""Where a sweep's tasks run: a local process pool (the default) or a Ray cluster (`--ray`).

Both take the plan's task graph and report each result as it lands (`on_done(task, result)`); the
stage code is the same (`stages.run_task`). Device tasks (benchmarks) need their device label:
- locally only this machine's label can run; they run one at a time and alone, because a benchmark
  sharing the CPU with an export measures the export;
- under Ray they request the custom resource `device:<label>` (one unit: one benchmark at a time per
  device) and no CPU, so a device host can be started with `--num-cpus 0` to keep exports off it.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable

from edgekit.errors import EdgekitError
from edgekit.sweep.plan import SweepPlan, Task
from edgekit.sweep.stages import run_task

OnDone = Callable[[Task, dict], None]
TASK_TIMEOUT_S = 4 * 3600.0  # one stage (a pruning recovery, an int8 export of a large model) may take hours


def _failed(task: Task, reason: str) -> dict:
    return {"status": "failed", "reason": reason, "kind": task.kind, "key": task.key, "label": task.label}


class LocalExecutor:
    """A spawned process pool on this machine (`jobs` workers, reused across tasks)."""

    name = "local"

    def __init__(self, jobs: int | None = None, timeout_s: float = TASK_TIMEOUT_S):
        self.jobs = jobs or max(1, (os.cpu_count() or 2) // 2)
        self.timeout_s = timeout_s  # a task running longer fails ("timed out") and its worker is killed

    def unroutable(self, label: str, local_label: str) -> str | None:
        if label == local_label:
            return None
        return (f"no host with device:{label} (without --ray only this machine's label {local_label!r} runs; "
                f"use --ray with a node started with --resources '{{\"device:{label}\": 1}}')")

    def run(self, plan: SweepPlan, on_done: OnDone) -> dict[str, dict]:
        results: dict[str, dict] = {}
        pending = dict(plan.tasks)
        running: dict = {}  # future → task
        started: dict = {}  # future → monotonic start
        # spawn, not fork: the parent may hold torch/OpenMP threads, which do not survive a fork
        context = multiprocessing.get_context("spawn")
        pool = _pool(context, self.jobs)
        try:
            while pending or running:
                for task in self._next(pending, running, results):
                    del pending[task.key]
                    future = pool.submit(run_task, task.payload, *[results[d] for d in task.deps])
                    running[future], started[future] = task, time.monotonic()
                if not running:
                    raise RuntimeError(f"sweep plan has tasks that can never run: {', '.join(pending)}")
                first_deadline = min(started[f] for f in running) + self.timeout_s
                done, _ = wait(running, timeout=max(0.0, first_deadline - time.monotonic()),
                               return_when=FIRST_COMPLETED)
                if not done:  # a task outlived its timeout: kill the pool, fail it, requeue the innocent others
                    now = time.monotonic()
                    for future, task in list(running.items()):
                        if now - started[future] >= self.timeout_s:
                            results[task.key] = _failed(task, f"timed out after {self.timeout_s:g} s (hung or "
                                                              f"too slow); its worker was stopped")
                            on_done(task, results[task.key])
                        else:
                            pending[task.key] = task
                    running.clear()
                    pool = _restart(pool, context, self.jobs)
                    continue
                broken = False
                for future in done:
                    task = running.pop(future)
                    try:
                        results[task.key] = future.result()
                    except BrokenProcessPool:
                        broken = True
                        results[task.key] = _failed(task, "the worker process died (crash or out of memory)")
                    on_done(task, results[task.key])
                if broken:  # every task in flight went down with the pool; a fresh pool serves the rest
                    for future, task in running.items():
                        results[task.key] = _failed(task, "the worker process died (crash or out of memory)")
                        on_done(task, results[task.key])
                    running.clear()
                    pool = _restart(pool, context, self.jobs)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return results

    def close(self) -> None:
        pass

    def _next(self, pending: dict, running: dict, results: dict) -> list[Task]:
        """Ready tasks to start now: a device task only when nothing else runs, and then nothing beside it."""
        if any(t.device for t in running.values()):
            return []
        ready = [t for t in pending.values() if all(d in results for d in t.deps)]
        if not running:
            device = next((t for t in ready if t.device), None)
            others = [t for t in ready if not t.device]
            if device is not None and not others:
                return [device]
            return others[: self.jobs]
        return [t for t in ready if not t.device][: self.jobs - len(running)]


def _restart(pool: ProcessPoolExecutor, context, jobs: int) -> ProcessPoolExecutor:
    """A fresh pool after killing the old one's workers (a hung task never returns on its own)."""
    for process in list(getattr(pool, "_processes", {}).values()):  # private, but the only handle on them
        if process.is_alive():
            process.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    return _pool(context, jobs)


def _pool(context, jobs: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(jobs, mp_context=context, initializer=_exit_with_parent, initargs=(os.getpid(),))


def _exit_with_parent(parent: int) -> None:
    """Pool worker initializer: exit when the sweep that started this worker is gone (SIGKILLed, OOM).
    A spawned worker would otherwise outlive it forever (it holds its own end of the task queue, so it
    never sees EOF), still running a stage nobody will read."""
    import threading

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(70)

    threading.Thread(target=watch, name="edgekit-parent-watch", daemon=True).start()


class RayExecutor:
    """Ray tasks on a running cluster (`address`: "auto", "ray://host:10001", "host:6379") or, with
    "local", on an instance started here that declares this machine's device label."""

    name = "ray"

    def __init__(self, address: str = "auto", local_label: str = "local", num_cpus: int | None = None,
                 timeout_s: float = TASK_TIMEOUT_S):
        self.timeout_s = timeout_s  # a task running longer fails ("timed out"); see run_with_deadline
        try:
            import ray
        except ImportError:
            raise EdgekitError("--ray needs ray (pip install 'edgekit[sweep]')") from None
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            if address == "local":
                ray.init(num_cpus=num_cpus, resources={f"device:{local_label}": 1}, include_dashboard=False,
                         log_to_driver=False)
            else:
                try:
                    ray.init(address=address, log_to_driver=False)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    raise EdgekitError(f"--ray {address}: cannot connect to a Ray cluster: "
                                       f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
            self.started = True

    def unroutable(self, label: str, local_label: str) -> str | None:
        if self.ray.cluster_resources().get(f"device:{label}", 0) >= 1:
            return None
        return (f"no host with device:{label} in the Ray cluster (declare it on the host that has it: "
                f"ray start --resources '{{\"device:{label}\": 1}}')")

    def run(self, plan: SweepPlan, on_done: OnDone) -> dict[str, dict]:
        ray = self.ray
        remote = ray.remote(max_retries=0)(run_with_deadline)
        refs = {}
        for task in plan.tasks.values():  # dependency order: upstream refs exist; Ray resolves them to results
            if task.device:
                options = {"num_cpus": 0, "resources": {f"device:{task.device}": 1}}
            else:
                options = {"num_cpus": 1}
            refs[task.key] = remote.options(name=f"edgekit-sweep {task.label}", **options).remote(
                self.timeout_s, task.payload, *[refs[d] for d in task.deps])
        waiting = {ref: key for key, ref in refs.items()}
        results: dict[str, dict] = {}
        while waiting:
            done, _ = ray.wait(list(waiting), num_returns=1)
            for ref in done:
                task = plan.tasks[waiting.pop(ref)]
                try:
                    results[task.key] = ray.get(ref)
                except Exception as exc:  # the worker died (or was stopped at its deadline), or an upstream one did
                    reason = str(exc).strip().splitlines()
                    results[task.key] = _failed(task, f"ray: {type(exc).__name__}: {reason[0] if reason else ''} "
                                                      f"(if it ran {self.timeout_s:g} s: hung, stopped at its deadline)")
                on_done(task, results[task.key])
        return results

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


class StageTimeout(EdgekitError):
    """A stage ran past its deadline (raised inside it by SIGALRM; `run_task` turns it into a failed result)."""


def run_with_deadline(timeout_s: float, payload: dict, *upstream: dict) -> dict:
    """`run_task` bounded in time, for Ray workers (which Ray cannot stop on a timer): SIGALRM raises
    StageTimeout inside the stage, a failed result with its reason, and the worker lives on; a stage stuck
    where Python cannot interrupt it (native code, SIGALRM blocked) is ended by a watchdog thread that
    exits the worker `grace` seconds later, which Ray reports as a dead worker."""
    import signal
    import threading

    def interrupt(signum, frame):
        raise StageTimeout(f"timed out after {timeout_s:g} s (hung or too slow); the stage was stopped")

    grace = min(60.0, max(5.0, 0.1 * timeout_s))
    watchdog = threading.Timer(timeout_s + grace, os._exit, args=(75,))
    watchdog.daemon = True
    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    watchdog.start()
    try:
        return run_task(payload, *upstream)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        watchdog.cancel()
