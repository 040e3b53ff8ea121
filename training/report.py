"""A training run's report: report.json for tools, report.png for people (chat, RESULTS.md).

The plot has the loss curve on the left (training loss per step, validation loss where
it was measured) and the gate's measures on the right, candidate beside what serves:
perplexity on the validation split and on the corpus screenplay set, and the share of
valid sampled scenes. The title says what the gate decided.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from training.gate import Scores, Verdict


def write_report(directory: Path, *, title: str, losses: Sequence[tuple[int, float]],
                 eval_losses: Sequence[tuple[int, float]], candidate: Scores, serving: Scores,
                 verdict: Verdict, extra: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write report.json and report.png into ``directory``; returns both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    data = {"title": title, "verdict": verdict.as_json(), "candidate": candidate.as_json(),
            "serving": serving.as_json(), "losses": list(losses), "eval_losses": list(eval_losses),
            "samples": {"candidate": candidate.samples, "serving": serving.samples}, **(extra or {})}
    json_path = directory / "report.json"
    json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    png_path = directory / "report.png"
    plot(png_path, title=title, losses=losses, eval_losses=eval_losses, candidate=candidate, serving=serving,
         verdict=verdict)
    return json_path, png_path


SMOOTHING = 8  # steps in the running mean of the training loss


def plot(path: Path, *, title: str, losses: Sequence[tuple[int, float]], eval_losses: Sequence[tuple[int, float]],
         candidate: Scores, serving: Scores, verdict: Verdict) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no screen on a training node
    import matplotlib.pyplot as plt

    figure, (curve, bars) = plt.subplots(1, 2, figsize=(11, 4.2))
    if losses:
        curve.plot(*zip(*losses), color="#7aa6c2", linewidth=1, alpha=0.6, label="training loss")
        if len(losses) >= 2 * SMOOTHING:
            # Batches are grouped by length, so step-to-step loss swings with the batch; the
            # running mean shows the trend.
            steps, values = zip(*losses)
            smooth = [sum(values[i - SMOOTHING + 1:i + 1]) / SMOOTHING for i in range(SMOOTHING - 1, len(values))]
            curve.plot(steps[SMOOTHING - 1:], smooth, color="#1f4e79", linewidth=2,
                       label=f"training loss, mean of {SMOOTHING} steps")
    if eval_losses:
        curve.plot(*zip(*eval_losses), color="#c0392b", marker="o", label="validation loss")
    curve.set_xlabel("optimizer step")
    curve.set_ylabel("loss (scene tokens)")
    curve.set_title("loss curve", fontsize=10)
    curve.grid(alpha=0.3)
    if losses or eval_losses:
        curve.legend()

    measures = [("validation\nperplexity", candidate.validation_ppl, serving.validation_ppl),
                ("screenplay\nperplexity", candidate.screenplay_ppl, serving.screenplay_ppl),
                ("valid scenes\n(%)", _percent(candidate.validity), _percent(serving.validity))]
    measures = [m for m in measures if m[1] is not None and m[2] is not None]
    width = 0.38
    for offset, (label, values, colour) in enumerate(
            (("candidate", [m[1] for m in measures], "#2f6f99"),
             (f"serving: {serving.label}", [m[2] for m in measures], "#b0b0b0"))):
        positions = [i + (offset - 0.5) * width for i in range(len(measures))]
        drawn = bars.bar(positions, values, width, label=label, color=colour)
        bars.bar_label(drawn, labels=[f"{v:.1f}" for v in values], fontsize=8)
    bars.set_xticks(range(len(measures)), [m[0] for m in measures])
    bars.set_title("lower perplexity is better; more valid scenes is better", fontsize=10)
    bars.legend(fontsize=8)
    outcome = "PROMOTED" if verdict.promote else "KEPT, not promoted"
    figure.suptitle(f"{title}: {outcome}", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _percent(share: float | None) -> float | None:
    return None if share is None else 100.0 * share
