"""The accuracy-vs-speed Pareto front: the points no other point beats on both axes at once."""

from __future__ import annotations

import pandas as pd


def pareto_front(frame: pd.DataFrame, speed: str = "qps", accuracy: str = "accuracy") -> pd.DataFrame:
    """Rows not dominated by another row (at least as fast and as accurate, better on one), fastest first."""
    rows = frame.dropna(subset=[speed, accuracy]).sort_values([speed, accuracy], ascending=False)
    kept, best_accuracy = [], float("-inf")
    for index, row in rows.iterrows():
        if row[accuracy] > best_accuracy:  # slower than everything kept so far, so it must be more accurate
            kept.append(index)
            best_accuracy = row[accuracy]
    return rows.loc[kept]
