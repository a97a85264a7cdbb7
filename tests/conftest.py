"""Shared fixtures: small task tables and configs written to temporary directories."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

POSITIVE = ["很好", "喜欢", "满意", "不错", "推荐", "实惠", "干净", "舒服"]
NEGATIVE = ["很差", "失望", "糟糕", "难用", "退货", "太贵", "肮脏", "吵闹"]
FILLER = ["酒店", "房间", "服务", "价格", "早餐", "位置", "这本书", "电脑", "屏幕", "快递"]


def sentiment_rows(n: int, seed: int = 0) -> list[tuple[int, str]]:
    """A synthetic sentiment task a tiny model can learn: the label is given by one cue word."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        cue = rng.choice(POSITIVE if label else NEGATIVE)
        words = rng.sample(FILLER, 3)
        words.insert(rng.randrange(4), cue)
        rows.append((label, "".join(words) + "。"))
    return rows


def write_tsv(path: Path, rows: list[tuple[int, str]]) -> Path:
    path.write_text("label\ttext_a\n" + "".join(f"{label}\t{text}\n" for label, text in rows), encoding="utf-8")
    return path


def write_config(path: Path, sections: dict) -> Path:
    path.write_text(yaml.safe_dump(sections, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def sentiment_files(tmp_path: Path) -> dict[str, Path]:
    """train/dev/test TSVs of the synthetic sentiment task (240/60/60 rows)."""
    rows = sentiment_rows(360)
    return {
        "train": write_tsv(tmp_path / "train.tsv", rows[:240]),
        "dev": write_tsv(tmp_path / "dev.tsv", rows[240:300]),
        "test": write_tsv(tmp_path / "test.tsv", rows[300:]),
    }


# A 4-class task as a new user brings it: string labels, a header with its own column names (and one column
# tinykd does not read), classes a little imbalanced. The class is given by one cue word.
TOPICS = {
    "billing": ["扣费", "账单", "发票", "收费"],
    "delivery": ["物流", "送货", "配送", "运输"],
    "quality": ["做工", "破损", "褪色", "开裂"],
    "refund": ["退款", "退钱", "返还", "退货"],
}
TOPIC_SHARES = (0.4, 0.25, 0.2, 0.15)
TOPIC_FILLER = ["订单", "这次", "商品", "昨天", "客服", "问题", "还是", "真的", "一直", "我的"]


def topic_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(category, review) rows of the 4-class topic task: 40/25/20/15 % of the rows per class, shuffled."""
    rng = random.Random(seed)
    counts = [round(share * n) for share in TOPIC_SHARES]
    counts[0] += n - sum(counts)
    labels = [label for label, count in zip(TOPICS, counts) for _ in range(count)]
    rng.shuffle(labels)
    rows = []
    for label in labels:
        words = rng.sample(TOPIC_FILLER, 3)
        words.insert(rng.randrange(4), rng.choice(TOPICS[label]))
        rows.append((label, "".join(words) + "。"))
    return rows


def write_topic_tsv(path: Path, rows: list[tuple[str, str]]) -> Path:
    """A TSV with a header `id, category, review`: the label column first, under the task's own names."""
    lines = "".join(f"{i}\t{label}\t{text}\n" for i, (label, text) in enumerate(rows))
    path.write_text("id\tcategory\treview\n" + lines, encoding="utf-8")
    return path


def topic_task(files: dict[str, Path], **task_overrides) -> dict:
    """The task section of the 4-class topic task: renamed columns, string labels with display names."""
    task = {
        "name": "topics",
        "kind": "single",
        "source": {"type": "files", "format": "tsv", **{k: str(v) for k, v in files.items()}},
        "columns": {"text_a": "review", "label": "category"},
        "labels": list(TOPICS),
        "label_names": ["billing-issue", "late-delivery", "poor-quality", "refund-request"],
        "max_length": 32,
    }
    task.update(task_overrides)
    return task


@pytest.fixture
def topic_files(tmp_path: Path) -> dict[str, Path]:
    """train/dev/test TSVs of the 4-class topic task (240/80/80 rows)."""
    return {
        "train": write_topic_tsv(tmp_path / "train.tsv", topic_rows(240, seed=0)),
        "dev": write_topic_tsv(tmp_path / "dev.tsv", topic_rows(80, seed=1)),
        "test": write_topic_tsv(tmp_path / "test.tsv", topic_rows(80, seed=2)),
    }


@pytest.fixture
def topic_teacher(tmp_path_factory) -> Path:
    """A tiny random 2-label BERT whose character vocabulary covers the topic task (the teacher stage re-heads it)."""
    from tests.tiny_models import save_tiny_teacher

    texts = [text for seed in (0, 1, 2) for _, text in topic_rows(240, seed)]
    return save_tiny_teacher(tmp_path_factory.mktemp("topic_teacher"), texts)


def file_task(files: dict[str, Path], **task_overrides) -> dict:
    task = {
        "name": "tiny",
        "kind": "single",
        "source": {"type": "files", "format": "tsv", **{k: str(v) for k, v in files.items()}},
        "labels": [0, 1],
        "label_names": ["negative", "positive"],
        "max_length": 32,
    }
    task.update(task_overrides)
    return task


def install_as_teacher(paths, model_dir: Path) -> None:
    """Stand a model dir in for the fine-tuned teacher, so label-stage tests need no fine-tuning."""
    import shutil

    shutil.copytree(model_dir, paths.teacher_model)
    paths.teacher_metrics.write_text('{"fingerprint": "stand-in"}')


@pytest.fixture
def tiny_teacher(tmp_path_factory) -> Path:
    from tests.tiny_models import save_tiny_teacher

    texts = [text for _, text in sentiment_rows(360)]
    return save_tiny_teacher(tmp_path_factory.mktemp("tiny_teacher"), texts)


def pytest_configure(config):
    # Tiny models run fastest on one thread, and it keeps in-process tests from fighting over 2 cores. The stages a
    # test starts as processes inherit OMP_NUM_THREADS=1 (where a config sets no threads): `make test` runs two
    # workers on 2 cores, and a 2-thread torch process beside another worker spins its OpenMP threads (a
    # 246 s end-to-end test took 415 s that way, and the tests beside it 3x their time).
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(items):
    # Longest first: `make test` runs two xdist workers, and a test of minutes started late would run alone on one
    # core at the end. The `longest` tests, then the other end-to-end (slow) ones, then the rest; a stable sort, so
    # each group keeps the collection order.
    items.sort(key=lambda item: (item.get_closest_marker("longest") is None, item.get_closest_marker("slow") is None))
