"""A blind pairwise preference between generators' scenes: which would a writer rather keep?

    python benchmarks/preference.py sheet --runs 'smollm2*__constrained-8speeches' 'gemma*__constrained-8speeches' ...
        [--prompts 10] [--skip 16] [--seed 7]
    (a rater fills in benchmarks/samples/scene_quality/preference_choices.txt, one line per pair:
     "<pair> A|B|= <why, in a few words>")
    python benchmarks/preference.py tally

Perplexity under a reference model rewards repetition and favours the reference's own family,
so the issue's other fluency measure is run here: for held-out prompts, every pair of runs'
kept scenes (the scene a writer would be shown) is put side by side as "A" and "B", in an
order drawn at random per pair, the pairs themselves shuffled, with no model named. ``sheet``
writes the sheet for the rater and, apart, the key; ``tally`` reads the rater's choices,
unblinds them with the key, and writes each model's share of the comparisons it won (a tie
counts half) to preference.json, which scene_quality.py's report shows beside the judge.

The prompts come after ``--skip`` (default 16): held-out prompts 1-16 were read while the
grammar was tuned, so they are left out of a judgment of quality.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import sys
from collections import defaultdict

from scene_quality import (  # the runs this compares, where and as that script keeps them
    SAMPLES_DIR,
    run_files,
    run_label,
)

SHEET = SAMPLES_DIR / "preference_sheet.md"
KEY = SAMPLES_DIR / "preference_key.json"
CHOICES = SAMPLES_DIR / "preference_choices.txt"
RESULT = SAMPLES_DIR / "preference.json"
CHOICE_LINE = re.compile(r"^\s*(\d+)\s+([AB=])(?:\s+(.*))?$")


def load_runs(patterns: list[str]) -> list[dict]:
    runs = []
    for pattern in patterns:
        found = run_files([pattern])
        if len(found) != 1:
            raise SystemExit(f"{pattern!r} names {len(found)} runs in {SAMPLES_DIR}; it must name one")
        runs.append(json.loads(found[0].read_text()))
    return runs


def sheet(args: argparse.Namespace) -> None:
    runs = load_runs(args.runs)
    common = min(len(run["rows"]) for run in runs)
    prompts = list(range(args.skip, min(common, args.skip + args.prompts)))
    draw = random.Random(args.seed)
    pairs = []
    for index in prompts:
        for first, second in itertools.combinations(range(len(runs)), 2):
            left, right = (first, second) if draw.random() < 0.5 else (second, first)
            pairs.append((index, left, right))
    draw.shuffle(pairs)
    instructions = ("For each pair: the same request, two scenes. Write one line per pair in "
                    f"{CHOICES.name}: `<pair> A`, `<pair> B` or `<pair> =` (no difference worth a choice), then a "
                    "few words why. Judge what a writer would keep: does it answer the request, do the people "
                    "sound like people, does it hold together. Form is already checked elsewhere.")
    lines = ["# Which scene would a writer rather keep?", "", instructions, ""]
    key = {}
    for number, (index, left, right) in enumerate(pairs, 1):
        prompt = runs[left]["rows"][index]["prompt"]
        key[str(number)] = {"prompt_index": index, "A": run_label(runs[left]["meta"]),
                            "B": run_label(runs[right]["meta"])}
        lines += [f"## Pair {number}", "", f"Request: {prompt}", ""]
        for side, run in (("A", runs[left]), ("B", runs[right])):
            lines += [f"### {side}", "", "```", run["rows"][index]["text"].strip(), "```", ""]
    SHEET.write_text("\n".join(lines))
    KEY.write_text(json.dumps({"runs": [run_label(run["meta"]) for run in runs], "prompts": prompts, "seed": args.seed,
                               "pairs": key}, indent=1) + "\n")
    print(f"{len(pairs)} pairs over {len(prompts)} prompts: {SHEET} (key apart: {KEY})")


def read_choices(text: str, pairs: int) -> dict[str, tuple[str, str]]:
    """pair number -> (A/B/=, reason); every pair must be judged once."""
    choices: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        found = CHOICE_LINE.match(line)
        if found:
            number, choice, why = found.groups()
            if number in choices:
                raise SystemExit(f"pair {number} is judged twice")
            choices[number] = (choice, (why or "").strip())
    missing = [str(n) for n in range(1, pairs + 1) if str(n) not in choices]
    if missing:
        raise SystemExit(f"no choice for pair(s) {', '.join(missing)}")
    return choices


def tally(args: argparse.Namespace) -> None:
    key = json.loads(KEY.read_text())
    choices = read_choices(CHOICES.read_text(), len(key["pairs"]))
    points: dict[str, float] = defaultdict(float)
    played: dict[str, int] = defaultdict(int)
    head_to_head: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for number, pair in key["pairs"].items():
        choice, _ = choices[number]
        a, b = pair["A"], pair["B"]
        won = {"A": {a: 1.0, b: 0.0}, "B": {a: 0.0, b: 1.0}, "=": {a: 0.5, b: 0.5}}[choice]
        for name, point in won.items():
            points[name] += point
            played[name] += 1
        head_to_head[a][b] += won[a]
        head_to_head[b][a] += won[b]
    shares = {name: round(points[name] / played[name], 3) for name in key["runs"]}
    RESULT.write_text(json.dumps({"prompts": key["prompts"], "pairs": len(key["pairs"]), "win_share": shares,
                                  "points": dict(points), "played": dict(played),
                                  "head_to_head": {k: dict(v) for k, v in head_to_head.items()}}, indent=1) + "\n")
    per_pair = len(key["prompts"])
    print("| run | comparisons | won (ties half) | share |\n|---|---|---|---|")
    for name in sorted(shares, key=shares.get, reverse=True):
        print(f"| {name} | {played[name]} | {points[name]:g} | {shares[name]:.0%} |")
    print(f"\nhead to head (points of the row's run against the column's, of {per_pair}):")
    for name in key["runs"]:
        print(f"  {name}: " + ", ".join(f"{other} {head_to_head[name][other]:g}"
                                        for other in key["runs"] if other != name))
    print(f"wrote {RESULT}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    sheet_parser = commands.add_parser("sheet", help="Write the blind sheet and its key.")
    sheet_parser.add_argument("--runs", nargs="+", required=True, help="Glob patterns, one run each (model__config).")
    sheet_parser.add_argument("--prompts", type=int, default=10)
    sheet_parser.add_argument("--skip", type=int, default=16, help="Held-out prompts to leave out first.")
    sheet_parser.add_argument("--seed", type=int, default=7)
    commands.add_parser("tally", help="Unblind the rater's choices and write preference.json.")
    args = parser.parse_args(argv)
    {"sheet": sheet, "tally": tally}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
