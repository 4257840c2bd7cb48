"""Python SDK workers for a Flink (or any portable) cluster whose workers are other processes.

On a real cluster the runner does not run the pipeline's Python code in the launcher: it asks
for SDK workers, either by starting a command itself (``--environment_type=PROCESS``) or by
asking a worker pool that runs beside each TaskManager (``--environment_type=EXTERNAL
--environment_config=<host>:<port>``). Beam's Docker image does this with its Go boot program;
this module is the same contract in Python, for machines where this package is installed and
Docker is not used:

    python -m pipelines.sdk_worker pool --port 50000     # the worker pool, one per machine
    python -m pipelines.sdk_worker boot --id=... --provision_endpoint=... --control_endpoint=...

``boot`` asks the runner's provision service for the pipeline options, then runs Beam's
``sdk_worker_main`` with them: so a worker knows the run's options (pickler, log level),
and its log records go to the runner through the Fn API logging service (they appear in the
TaskManager's log). The worker's environment is the pool's (or the TaskManager's) environment:
a password variable named by ``PASSWORD_ENV`` must be set there.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

_LOG = logging.getLogger(__name__)

_REPO_ROOT = Path(__file__).resolve().parent.parent


def _descriptor(url: str) -> str:
    """An ApiServiceDescriptor in protobuf text format, as sdk_worker_main reads it."""
    return f'url: "{url}"'


def boot(argv: list[str]) -> int:
    """The SDK container contract (``--id``, ``--provision_endpoint``, ...): fetch the pipeline
    options from the runner, then replace this process with Beam's SDK worker."""
    import grpc
    from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc
    from google.protobuf import json_format

    parser = argparse.ArgumentParser(prog="python -m pipelines.sdk_worker boot")
    parser.add_argument("--id", required=True)
    parser.add_argument("--provision_endpoint", required=True)
    parser.add_argument("--control_endpoint", default="")
    parser.add_argument("--logging_endpoint", default="")
    parser.add_argument("--artifact_endpoint", default="")
    parser.add_argument("--semi_persist_dir", default="")
    args, _ = parser.parse_known_args(argv)
    with grpc.insecure_channel(args.provision_endpoint) as channel:
        grpc.channel_ready_future(channel).result(timeout=60)
        info = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel).GetProvisionInfo(
            beam_provision_api_pb2.GetProvisionInfoRequest(),
            metadata=[("worker_id", args.id)]).info
    options = json_format.MessageToDict(info.pipeline_options)
    semi_persistent = args.semi_persist_dir or tempfile.mkdtemp(prefix=f"beam-{args.id}-")
    environment = {
        **os.environ,
        "WORKER_ID": args.id,
        "PIPELINE_OPTIONS": json.dumps(options),
        "SEMI_PERSISTENT_DIRECTORY": semi_persistent,
        "CONTROL_API_SERVICE_DESCRIPTOR": _descriptor(args.control_endpoint
                                                      or info.control_endpoint.url),
        "LOGGING_API_SERVICE_DESCRIPTOR": _descriptor(args.logging_endpoint
                                                      or info.logging_endpoint.url),
        "RUNNER_CAPABILITIES": " ".join(info.runner_capabilities),
    }
    # This package is installed (or on PYTHONPATH) where the worker runs: no artifacts to stage.
    os.execve(sys.executable, [sys.executable, "-m", "apache_beam.runners.worker.sdk_worker_main"],
              environment)
    return 1  # not reached


def write_boot_script(directory: Path) -> Path:
    """An executable that runs ``boot`` with this interpreter (what a worker pool starts)."""
    script = directory / "beam-sdk-worker-boot"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} -m pipelines.sdk_worker boot \"$@\"\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


class _WorkerPool:
    """Beam's worker pool service (``BeamFnExternalWorkerPool``): a ``boot`` process per
    StartWorker request of a TaskManager.

    Beam's own pool (``worker_pool_main``) keeps one process per worker id, but two TaskManagers
    on one machine name their workers alike (``1-1``, ...): a StopWorker from one would end the
    other's worker. Here a StopWorker ends the worker only when its id is unambiguous; a worker
    also ends by itself when its TaskManager closes the control channel."""

    def __init__(self, boot_script: Path):
        self._boot_script = boot_script
        self._lock = threading.Lock()
        self._workers: dict[str, list[subprocess.Popen]] = {}

    def StartWorker(self, request, context):  # noqa: N802 - the gRPC method's name
        from apache_beam.portability.api import beam_fn_api_pb2

        command = [str(self._boot_script), f"--id={request.worker_id}",
                   f"--logging_endpoint={request.logging_endpoint.url}",
                   f"--artifact_endpoint={request.artifact_endpoint.url}",
                   f"--provision_endpoint={request.provision_endpoint.url}",
                   f"--control_endpoint={request.control_endpoint.url}"]
        try:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        except OSError as error:
            return beam_fn_api_pb2.StartWorkerResponse(error=f"{type(error).__name__}: {error}")
        _LOG.info("started SDK worker %s (pid %d) for %s", request.worker_id, process.pid,
                  request.control_endpoint.url)
        with self._lock:
            self._workers.setdefault(request.worker_id, []).append(process)
        return beam_fn_api_pb2.StartWorkerResponse()

    def StopWorker(self, request, context):  # noqa: N802 - the gRPC method's name
        from apache_beam.portability.api import beam_fn_api_pb2

        with self._lock:
            live = [process for process in self._workers.pop(request.worker_id, [])
                    if process.poll() is None]
            if len(live) > 1:  # several TaskManagers' workers: each ends on its own
                self._workers[request.worker_id] = live
        if len(live) == 1:
            _end_worker(live[0])
        return beam_fn_api_pb2.StopWorkerResponse()

    def stop_all(self) -> None:
        with self._lock:
            workers = [process for processes in self._workers.values() for process in processes]
            self._workers.clear()
        for process in workers:
            _end_worker(process)


def _end_worker(process: subprocess.Popen, grace: float = 10.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def pool(port: int) -> int:
    """The worker pool service on ``port``: a new SDK worker process (``boot``) per request of
    the runner, until interrupted (Ctrl-C or SIGTERM, which end its workers too)."""
    import grpc
    from apache_beam.portability.api import beam_fn_api_pb2_grpc

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    # The workers import this package: from the same place as this process does.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(_REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    with tempfile.TemporaryDirectory(prefix="beam-worker-pool-") as directory:
        workers = _WorkerPool(write_boot_script(Path(directory)))
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(workers, server)
        bound = server.add_insecure_port(f"[::]:{port}")
        server.start()
        _LOG.info("SDK worker pool listening on port %d (pid %d)", bound, os.getpid())
        try:
            while True:
                time.sleep(3600)
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            server.stop(0)
            workers.stop_all()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["boot"]:
        return boot(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m pipelines.sdk_worker",
                                     description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pool_parser = commands.add_parser("pool", help="run an SDK worker pool (EXTERNAL "
                                                   "environment) until interrupted")
    pool_parser.add_argument("--port", type=int, required=True)
    commands.add_parser("boot", help="start one SDK worker (the container contract)")
    options = parser.parse_args(argv)
    return pool(options.port)


if __name__ == "__main__":
    sys.exit(main())
