"""`python -m tinykd <stage> --config FILE [--set key.path=value ...]`.

The CLI only parses arguments: each stage is `run(config, paths)` in its module (see tinykd.stages).
User errors (config, data, missing artifacts) print one line and exit 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from tinykd.artifacts import RUNS_ENV, RunPaths
from tinykd.config import Config
from tinykd.config_loading import load_config
from tinykd.errors import ConfigError, TinykdError
from tinykd.stages import BY_NAME, EXPERIMENTS, STAGES

EPILOG = "stages, in pipeline order:\n" + "\n".join(f"  {s.name:<15} {s.help}" for s in STAGES) + (
    "\n  all             run every stage above in order (each skips itself when already up to date)"
    "\n  check           validate the config and print the run directory; does no work"
    "\nexperiments (run on demand, not by `all`):\n" + "\n".join(f"  {s.name:<15} {s.help}" for s in EXPERIMENTS)
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinykd" if Path(sys.argv[0]).name == "tinykd" else "python -m tinykd",  # the console script, or -m
        description="Distill a fine-tuned text model into a tiny one. Every stage reads and writes files "
        "under runs/<task>/ and is skipped when its inputs and config section are unchanged.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("stage", choices=[*BY_NAME, "all", "check"], metavar="STAGE", help="see the list below")
    parser.add_argument("--config", required=True, help="the task's YAML file, e.g. configs/sentiment_zh.yaml")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
        help="override one config key, e.g. --set teacher.epochs=1 (repeatable; value parsed as YAML)",
    )
    parser.add_argument(
        "--student", dest="students", action="append", default=[], metavar="NAME",
        help="distill / compare only this student of the config (repeatable); the others are left as they are",
    )
    parser.add_argument("--runs-dir", help="where run directories live (default: $TINYKD_RUNS or ./runs)")
    parser.add_argument(
        "--if-configured", action="store_true",
        help="skip (exit 0) a stage whose config section is absent, as `all` does; Make uses this",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.runs_dir:  # `${TINYKD_RUNS:-runs}` in a config (another student's checkpoint) then names this run too
        os.environ[RUNS_ENV] = args.runs_dir
    try:
        config = load_config(args.config, args.overrides)
        if args.students:
            config = _only_students(config, args.students, args.stage)
        paths = RunPaths.for_task(config.task.name, args.runs_dir)
        if args.stage == "check":
            config.label.require_engine_package(config.where("label.engine"))  # an optional extra the config needs
            print(f"config ok: task {config.task.name} ({config.task.kind}); run directory {paths.root}")
            return 0
        names = [s.name for s in STAGES] if args.stage == "all" else [args.stage]
        for name in names:
            if (args.stage == "all" or args.if_configured) and not BY_NAME[name].configured(config):
                print(f"{name}: not configured, skipped")
                continue
            started = time.perf_counter()
            result = BY_NAME[name].load().run(config, paths)
            print(f"{result.summary()} [{time.perf_counter() - started:.0f}s]", flush=True)
    except TinykdError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: completed artifacts are kept; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


def _only_students(config: Config, names: list[str], stage: str) -> Config:
    if stage not in ("distill", "compare"):
        raise ConfigError(f"--student applies to the distill and compare stages, not '{stage}'")
    known = [s.name for s in config.students]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"--student {', '.join(unknown)}: not in the config's students {known}")
    return config.model_copy(update={"students": [s for s in config.students if s.name in names]})
