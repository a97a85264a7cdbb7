"""`label.engine: ray`: the teacher's logits from a Ray Data actor pool, one teacher loaded per actor.

Only the chunks a run is missing go to Ray. Each comes back to this process, which writes its part file as the
local engine does, so resuming, the part files and the joined split are the same on both engines. Ray is imported
only when a run uses this engine (the optional extra `tinykd[ray]`, `make ray`).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Generator, Iterable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from tinykd.artifacts import RunPaths
from tinykd.config import Config
from tinykd.errors import ConfigError
from tinykd.teacher.label_engine import Chunk, LabelWork, TeacherLogits, load_teacher, start_runtime

TEXT_COLUMNS = ("text_a", "text_b")
# Carried beside the texts through the pool: which chunk and row a logit row belongs to (Ray may return blocks in
# any order), and the actor's compute seconds spread over the batch's rows (their sum is the actors' busy time).
CHUNK, ROW, SECONDS = "chunk", "row", "seconds"
GRAPH_FILE = "teacher.onnx"  # where an actor on another node writes the graph it was sent


class TeacherLabeler:
    """The `map_batches` callable: `__init__` loads the teacher once per actor, `__call__` labels a batch of rows.

    `teacher` is the saved teacher's directory, or (joining a cluster whose nodes cannot see this disk) its files as
    {relative path: bytes}, which the actor unpacks into a temporary directory just long enough to load them.
    """

    def __init__(self, teacher: str | dict[str, bytes], graph: str | bytes | None, max_length: int, batch_size: int,
                 threads: int) -> None:
        torch.set_num_threads(threads)
        with tempfile.TemporaryDirectory(prefix="tinykd-teacher-") as directory:
            if isinstance(teacher, dict):
                for name, blob in teacher.items():
                    (Path(directory) / name).parent.mkdir(parents=True, exist_ok=True)
                    (Path(directory) / name).write_bytes(blob)
                teacher = directory
            if isinstance(graph, bytes):
                (Path(directory) / GRAPH_FILE).write_bytes(graph)
                graph = str(Path(directory) / GRAPH_FILE)
            tokenizer, model = load_teacher(teacher)
            # An ORT session has read its graph once it exists, so the temporary copy may go.
            self.teacher = TeacherLogits(tokenizer, model, Path(graph) if graph else None, threads, max_length,
                                         batch_size)

    def __call__(self, batch: pd.DataFrame) -> dict[str, np.ndarray]:
        """Logits (n, K) float32 in the batch's row order; inside, rows go in length-sorted batches of
        `label.batch_size`, as on the local engine (a Ray batch is one chunk)."""
        started = time.perf_counter()
        logits = self.teacher(batch[[c for c in TEXT_COLUMNS if c in batch]])  # (n, K)
        seconds = time.perf_counter() - started
        return {CHUNK: batch[CHUNK].to_numpy(), ROW: batch[ROW].to_numpy(), "logits": logits,
                SECONDS: np.full(len(batch), seconds / len(batch))}


class RayEngine:
    """A pool of `label.ray_actors` actors of `label.threads` torch threads each (default: one single-threaded actor
    per CPU of the cluster) on a local Ray it starts and stops, or on the cluster at `label.ray_address`, which it
    joins and leaves running."""

    def __init__(self, config: Config, paths: RunPaths) -> None:
        self.config, self.paths = config, paths
        self.spec, self.max_length, self.model_dir = config.label, config.task.max_length, paths.teacher_model
        self.work = LabelWork()

    def label(self, chunks: Iterable[Chunk], progress: tqdm) -> Generator[tuple[Chunk, np.ndarray], None, None]:
        chunks = list(chunks)
        if not chunks:
            return
        import ray
        import ray.data

        started_here = not ray.is_initialized()  # a caller's own Ray session (a test's, a notebook's) is left alone
        if started_here:
            if self.spec.ray_address is None:  # "local": a new Ray here, not one RAY_ADDRESS or `ray start` points at
                ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
            else:
                ray.init(address=self.spec.ray_address, log_to_driver=False, logging_level=logging.WARNING)
        try:
            yield from self._label(ray, chunks, progress)
        finally:
            if started_here:
                ray.shutdown()  # stops the local Ray it started; from a joined cluster it only disconnects

    def _label(self, ray, chunks: list[Chunk], progress: tqdm) -> Generator[tuple[Chunk, np.ndarray], None, None]:
        threads = self.spec.threads or 1
        cpus = int(ray.cluster_resources().get("CPU", 0))
        actors = min(self.spec.ray_actors or max(1, cpus // threads), len(chunks))  # idle actors only cost memory
        if actors * threads > cpus:  # Ray Data would wait forever for actors that cannot be placed
            raise ConfigError(f"label.ray_actors × label.threads: {actors} actors × {threads} threads need "
                              f"{actors * threads} CPUs, but the Ray cluster has {cpus} (start its nodes first)")
        self.work.workers, self.work.threads = actors, threads
        # The runtime (ONNX graph or torch) is decided once, here, and every actor uses it.
        runtime = start_runtime(self.config, self.paths, *load_teacher(self.model_dir), chunks[0])
        self.work.runtime = runtime.facts
        graph = str(runtime.graph) if runtime.graph else None
        # A joined cluster's nodes may not see this disk: the teacher's files travel through the object store.
        teacher = str(self.model_dir) if self.spec.ray_address is None else teacher_files(self.model_dir)
        if self.spec.ray_address is not None and runtime.graph is not None:
            graph = runtime.graph.read_bytes()
        frames = [chunk.rows[[c for c in TEXT_COLUMNS if c in chunk.rows]].reset_index(drop=True)
                  .assign(**{CHUNK: index, ROW: np.arange(len(chunk.rows))}) for index, chunk in enumerate(chunks)]
        dataset = ray.data.from_pandas(frames).map_batches(  # one block per chunk
            TeacherLabeler, batch_size=self.spec.chunk_rows, batch_format="pandas", num_cpus=threads,
            compute=ray.data.ActorPoolStrategy(size=actors),
            fn_constructor_kwargs={"teacher": teacher, "graph": graph, "max_length": self.max_length,
                                   "batch_size": self.spec.batch_size, "threads": threads})
        # This dataset's own copy of the context: a caller's session keeps its settings.
        dataset.context.enable_progress_bars = False  # tinykd's bar counts rows; Ray's would interleave with it
        dataset.context.print_on_execution_start = False

        pieces: dict[int, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
        arrived: dict[int, int] = defaultdict(int)
        started = time.perf_counter()
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            self.work.core_seconds += float(batch[SECONDS].sum()) * threads
            for index in np.unique(batch[CHUNK]).tolist():
                mine = batch[CHUNK] == index
                pieces[index].append((batch[ROW][mine], batch["logits"][mine]))  # (m,), (m, K)
                arrived[index] += int(mine.sum())
                if arrived[index] < len(chunks[index].rows):
                    continue
                rows, logits = (np.concatenate(parts) for parts in zip(*pieces.pop(index)))  # (n,), (n, K)
                progress.update(len(rows))
                self.work.seconds = time.perf_counter() - started
                yield chunks[index], logits[np.argsort(rows)].astype(np.float32, copy=False)


def teacher_files(model_dir: Path) -> dict[str, bytes]:
    """Every file of the saved teacher, by path relative to its directory (a few hundred MB for a base model)."""
    return {path.relative_to(model_dir).as_posix(): path.read_bytes()
            for path in sorted(model_dir.rglob("*")) if path.is_file()}
