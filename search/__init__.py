"""Stage `search`: Optuna over one student's knobs, each trial the same distill -> compress -> bench functions as Make."""
