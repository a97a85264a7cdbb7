"""The typed task config: one YAML file per task, validated into frozen objects before any work starts.

Every section is a pydantic model with `extra="forbid"`, so a misspelt key is an error, not a silently
ignored option. Loading (YAML, line numbers, `--set` overrides, `${VAR:-default}`) lives in
`tinykd.config_loading`; this package only declares what a valid config is, one module per section
(`tinykd.config.task`, `.teacher`, ...; `.root` holds `Config` and the rules that span sections).
"""

from tinykd.config.augment import (  # noqa: F401
    AugmentConfig,
    AugmentOpConfig,
    Bm25PairOp,
    NSampleOp,
    PosOp,
    RandomPairOp,
    TextAttackOp,
    UnkOp,
)
from tinykd.config.bench import BenchConfig, BudgetConfig  # noqa: F401
from tinykd.config.compress import DEFAULT_BACKENDS, Backend, CompressConfig  # noqa: F401
from tinykd.config.experiments import AblationConfig, CompareConfig, ScheduleAblationConfig  # noqa: F401
from tinykd.config.label import LabelConfig  # noqa: F401
from tinykd.config.root import Config, InvalidValues, config_with_values  # noqa: F401
from tinykd.config.schedule import STAGE_KINDS, ScheduleStage, StageKind, TransformerLosses, default_schedule  # noqa: F401
from tinykd.config.search import SPEED_OBJECTIVES, STORAGE_SCHEMES, SearchBenchConfig, SearchConfig, SearchParam  # noqa: F401
from tinykd.config.section import Section  # noqa: F401
from tinykd.config.serving import SERVE_INSTALL_HINT, LoadConfig, LoadTarget, ServeConfig  # noqa: F401
from tinykd.config.students import LossWeights, RelationConfig, SmallStudentSpec, StudentSpec, TransformerStudentSpec  # noqa: F401
from tinykd.config.task import SPLITS, Columns, FileSource, SnownlpSource, SplitRows, TaskConfig  # noqa: F401
from tinykd.config.teacher import DEFAULT_TEACHER, TeacherConfig, TeacherMember  # noqa: F401
