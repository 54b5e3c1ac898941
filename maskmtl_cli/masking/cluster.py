"""The Ray cluster of ``maskmtl mask --ray``: connect, then check every node can do the work.

Ray moves tasks and their small results, never images: each worker reads the photos and writes
the outputs itself, so every node must see the input and output folders at the same paths (a
shared filesystem such as NFS, or a cluster of one machine). Before any image is processed,
``check_nodes`` runs one small task on every node with CPUs. It must

* read a file this machine has just written in the output folder, and write one back that this
  machine then reads (the output folder is the same folder there, not a local one of that name);
* read the first input image;
* run the same masking code and libraries (``code_fingerprint``): the per-image seeds make the
  outputs byte-identical to a local run only if every node computes them alike.

A node that fails any of these stops the run with an error that names it and says what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from maskmtl_cli.errors import ClusterError, InputError, MissingExtraError
from maskmtl_cli.extras import install_hint

#: Seconds the node checks may take (a fresh worker imports NumPy and OpenCV first).
PROBE_TIMEOUT_S = 120.0
#: Folders and files whose content decides the pixels of a masked image.
_CODE = ("masking", "prediction", "data", "schema.py", "assets/masks")


def import_ray():
    """The ``ray`` module.

    Raises:
        MissingExtraError: Ray is not installed (the message says how to install it).
    """
    try:
        import ray
    except ImportError:
        raise MissingExtraError(
            "--ray needs Ray, which is not installed. Install the ray extra on this machine "
            f"and every node of the cluster: {install_hint('ray')}."
        ) from None
    return ray


@dataclass
class RayCluster:
    """A connection to a Ray cluster.

    Attributes:
        address: The address it was reached by, as given.
        owned: This process connected (so ``close`` disconnects); False when the caller had
            called ``ray.init`` already.
    """

    address: str
    owned: bool
    _cpus: int = 0
    _cpus_read: float = 0.0
    _stdout: contextlib.AbstractContextManager | None = None

    def cpus(self) -> int:
        """CPUs of the cluster now (read at most every 10 s: an autoscaler may add nodes)."""
        now = time.monotonic()
        if not self._cpus or now - self._cpus_read > 10.0:
            import ray

            self._cpus = max(1, int(ray.cluster_resources().get("CPU", 0)))
            self._cpus_read = now
        return self._cpus

    def close(self) -> None:
        """Disconnect from the cluster (it keeps running) if this process connected."""
        if self.owned:
            import ray

            ray.shutdown()
        if self._stdout is not None:
            self._stdout.__exit__(None, None, None)
            self._stdout = None


def connect(address: str) -> RayCluster:
    """Connect this process to the Ray cluster at ``address`` as a driver.

    While connected, standard output goes to standard error: Ray's driver prints the cluster's
    messages (a worker died, a node is out of memory) on stdout, where results belong.

    Args:
        address: ``HOST:PORT`` of the head node, ``ray://HOST:PORT`` (Ray Client), or
            ``auto`` (``RAY_ADDRESS``, else the cluster started with ``ray start`` here).

    Raises:
        MissingExtraError: Ray is not installed.
        ClusterError: No cluster answers there, or it has no CPU.
    """
    ray = import_ray()
    cluster = RayCluster(address=address, owned=not ray.is_initialized())
    if cluster.owned:
        _check_reachable(address)
        cluster._stdout = contextlib.redirect_stdout(sys.stderr)
        cluster._stdout.__enter__()
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        except Exception as error:  # Ray raises ConnectionError, ValueError, RuntimeError...
            cluster.owned = False
            cluster.close()
            message = " ".join(str(error).split())
            raise ClusterError(
                f"Cannot connect to a Ray cluster at {address!r}: {message} Start one with "
                "`ray start --head` (see docs/scale.md) and pass its address, HOST:PORT, or "
                "--ray auto on one of its machines."
            ) from None
    if not ray.cluster_resources().get("CPU", 0):
        cluster.close()
        raise ClusterError(
            f"The Ray cluster at {address!r} has no CPU to run tasks on. Add worker nodes "
            "(`ray start --address HEAD:PORT` on each) or start the head with --num-cpus."
        )
    return cluster


def _check_reachable(address: str) -> None:
    """Fail fast where nothing listens: Ray itself retries an unreachable head for minutes.

    Raises:
        ClusterError: ``HOST:PORT`` (or ``RAY_ADDRESS`` for ``auto``) refuses connections.
    """
    target = os.environ.get("RAY_ADDRESS", "auto") if address == "auto" else address
    host, _, port = target.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" without RAY_ADDRESS, "local": Ray finds (or refuses) it at once
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as error:
        raise ClusterError(
            f"Nothing answers at {target} ({error.strerror or error}): no Ray cluster runs "
            "there. Start one with `ray start --head` (see docs/scale.md), or check the "
            "address and the firewall."
        ) from None


def code_fingerprint() -> dict[str, str]:
    """What decides the output bytes: a hash of maskmtl's masking code and the library versions."""
    import cv2
    import numpy

    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for part in _CODE:
        path = root / part
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if file.is_file() and file.suffix in (".py", ".json", ".svg", ".png"):
                digest.update(file.relative_to(root).as_posix().encode())
                digest.update(file.read_bytes())
    versions = {"maskmtl code": digest.hexdigest()[:16], "numpy": numpy.__version__,
                "opencv": cv2.__version__, "python": platform.python_version()}
    for module in ("dlib", "onnxruntime"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = "missing"
    return versions


def probe_node(output_root: str, token_name: str, token: str, sample: str) -> dict:
    """Ray task, one per node: what this node sees of the two folders, and its code."""
    answer = {"host": socket.gethostname(), "pid": os.getpid(), "sees_output": False,
              "sees_input": False, "fingerprint": code_fingerprint(), "problem": ""}
    try:
        answer["sees_output"] = (Path(output_root) / token_name).read_text() == token
        if answer["sees_output"]:
            reply = Path(output_root) / f"{token_name}.{answer['host']}-{answer['pid']}"
            reply.write_text(token)
            answer["reply"] = reply.name
    except OSError as error:
        answer["problem"] = f"{error.strerror or error}"
    try:
        with open(sample, "rb") as handle:
            answer["sees_input"] = bool(handle.read(1))
    except OSError as error:
        answer["problem"] = answer["problem"] or f"{error.strerror or error}"
    return answer


def check_nodes(input_root: Path, output_root: Path, sample: str) -> int:
    """Run ``probe_node`` on every alive node with CPUs; returns how many nodes there are.

    Args:
        input_root: The input folder (resolved).
        output_root: The output folder (resolved, existing).
        sample: Path of one input image, relative to ``input_root``.

    Raises:
        InputError: A node does not see the output or the input folder.
        ClusterError: A node runs other code, or the nodes did not answer in time.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node for node in ray.nodes()
             if node.get("Alive") and node.get("Resources", {}).get("CPU", 0) > 0]
    token_name = f".maskmtl-probe-{uuid.uuid4().hex}"
    token = uuid.uuid4().hex
    token_path = output_root / token_name
    token_path.write_text(token)
    probe = ray.remote(num_cpus=0, max_retries=1)(probe_node)
    replies: list[str] = []
    try:
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
                    node["NodeID"], soft=False)).remote(
                    str(output_root), token_name, token, str(input_root / sample))
                for node in nodes]
        try:
            answers = ray.get(refs, timeout=PROBE_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise ClusterError(
                f"The Ray workers did not answer within {PROBE_TIMEOUT_S:.0f} s. Check the "
                "cluster with `ray status`, then rerun."
            ) from None
        replies = [answer["reply"] for answer in answers if answer.get("reply")]
        mine = code_fingerprint()
        for node, answer in zip(nodes, answers):
            _judge(node, answer, mine, input_root, output_root)
    finally:
        for name in [token_name, *replies]:
            try:
                os.unlink(output_root / name)
            except OSError:
                pass
    return len(nodes)


def _judge(node: dict, answer: dict, mine: dict, input_root: Path, output_root: Path) -> None:
    """Raise the error for a node that cannot do the work (see ``check_nodes``)."""
    where = f"the Ray node {answer['host']} ({node.get('NodeManagerAddress', '?')})"
    shared = ("`maskmtl mask --ray` needs a filesystem that every node sees at the same path "
              "(NFS or another shared filesystem)")
    if not answer["sees_output"] or not (output_root / answer.get("reply", "")).is_file():
        seen = f": {answer['problem']}" if answer["problem"] else ""
        raise InputError(
            f"The output folder {output_root} is not reachable from {where}{seen}: a file "
            f"written there by one is not seen by the other. {shared}. Choose an output "
            "folder on such a filesystem, or mount it at this path on every node."
        )
    if not answer["sees_input"]:
        raise InputError(
            f"The input folder {input_root} is not readable from {where}. {shared}. Put the "
            "photos on such a filesystem, or mount it at this path on every node."
        )
    differ = [f"{key} {answer['fingerprint'].get(key)} there, {value} here"
              for key, value in mine.items() if answer["fingerprint"].get(key) != value]
    if differ:
        raise ClusterError(
            f"{where} runs other masking code or libraries than this machine "
            f"({'; '.join(differ)}), so its outputs could differ from a local run. Install "
            "the same maskmtl and dependencies on every node, then rerun."
        )
