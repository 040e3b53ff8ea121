"""The house adapter: a LoRA trained on the bundled public-domain scenes in the form the scene
grammar decodes; every room's starting point when, and only when, it beats the base model.

    writersroom train house [--no-promote] [--json]

1. Examples: the corpus's training excerpts (training.corpus_scenes; never a held-out one),
   each recast in the structured form (``house_scene``): the heading, at most one opening
   action, then CUE / line speeches (parentheticals, action between speeches and line breaks
   inside a speech left out), at most ``generation.max_speeches`` of them, and kept only when
   the strict judge passes it. Each is asked as a room's own training asks for a scene
   (screenplay.prompting.build_messages, without the worked example).
2. Training: the room's LoRA settings (training.trainer.train_adapter) in
   HOME/training/house/<version>; the version is named by the data hash, those settings and
   the base model, so the same recipe gives the same version (and is refused a second time).
3. Judging: the rooms' evaluation gate (training.gate) against the base model: perplexity on
   the examples' validation split and on held-out corpus scenes, and the strict judge's valid
   share on held-out prompts under the decoding writers get.
4. Publishing: registry version ``house-<recipe hash>`` with the data hash, the example count,
   both models' scores and the verdict in its manifest (``training.kind = "house"``); promoted
   for every room without a version of its own only when the gate passes (a room's own
   promoted version still wins). A room's retraining then starts from it (training.run).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from screenplay.grammar import MAX_BLOCKS, MIN_BLOCKS, Scene, Speech, render_fountain
from screenplay.judge import judge_scene
from screenplay.prompting import build_messages, parse_dialogue_request

log = logging.getLogger(__name__)

HOUSE_KIND = "house"
VERSION_PREFIX = "house-"
_HEADING = re.compile(r"^(INT|EXT)\. [^\n]+ - [A-Z ]+$")
_CUE = re.compile(r"^[A-Z][A-Z0-9 '’.-]*$")
_PAREN = re.compile(r"^\(.*\)$")


@dataclass(frozen=True)
class HouseData:
    """The house adapter's examples (chats whose last message is the scene) and what was left out."""

    chats: list[list[dict[str, str]]]
    hashes: list[str]  # each example's content hash (training.feedback_format.content_hash)
    data_hash: str
    considered: int
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> count

    def split(self, validation_share: float) -> tuple[list, list]:
        """(train, validation) chats, by content hash as a room's examples are split."""
        from training.dataset import bucket

        cut = round(validation_share * 1000)
        order = sorted(range(len(self.chats)), key=lambda index: (bucket(self.hashes[index]), self.hashes[index]))
        held = {index for index in order if bucket(self.hashes[index]) < cut}
        if not held and len(order) >= 2:  # as a room's split: at least one of each
            held = {order[0]}
        train = [chat for index, chat in enumerate(self.chats) if index not in held]
        validation = [chat for index, chat in enumerate(self.chats) if index in held]
        return train, validation


def house_scene(text: str, *, max_speeches: int = MAX_BLOCKS) -> str | None:
    """A corpus excerpt (Fountain) recast in the grammar's form; None when it does not fit it:
    no heading, fewer than four speeches, or a speech with no words."""
    paragraphs = [block.strip("\n") for block in re.split(r"\n{2,}", text.strip()) if block.strip()]
    if not paragraphs or not _HEADING.match(paragraphs[0]):
        return None
    heading, rest = paragraphs[0], paragraphs[1:]
    opening = None
    if rest and not _is_speech(rest[0]):
        opening = " ".join(rest.pop(0).split())
    speeches = []
    for block in rest:
        if not _is_speech(block):
            continue  # action between speeches: the grammar has none
        cue, *lines = block.split("\n")
        words = " ".join(" ".join(line.split()) for line in lines if not _PAREN.match(line.strip()))
        if not words:
            return None
        speeches.append(Speech(character=cue.strip(), line=words))
        if len(speeches) == max_speeches:
            break
    if len(speeches) < MIN_BLOCKS:
        return None
    return render_fountain(Scene(heading=heading, opening_action=opening, speeches=tuple(speeches)))


def _is_speech(block: str) -> bool:
    first, _, rest = block.partition("\n")
    return bool(rest.strip()) and bool(_CUE.match(first.strip()))


def house_data(scenes: Sequence[Any], *, max_speeches: int = MAX_BLOCKS, exemplar_chars: int = 600) -> HouseData:
    """The examples from corpus excerpts (training.corpus_scenes.CorpusScene), with counts of
    what was dropped and why; the hash names the data (the prompts and scenes, in order)."""
    from training.feedback_format import content_hash

    chats, dropped, hashes = [], {"not in the grammar's form": 0, "failed the strict judge": 0}, []
    for scene in scenes:
        text = house_scene(scene.text, max_speeches=max_speeches)
        if text is None:
            dropped["not in the grammar's form"] += 1
            continue
        request = parse_dialogue_request(scene.prompt)
        if not judge_scene(text, requested=request.characters).valid:
            dropped["failed the strict judge"] += 1
            continue
        messages = build_messages(request, [], exemplar_chars=exemplar_chars, worked_example=False)
        chats.append([*messages, {"role": "assistant", "content": text}])
        hashes.append(content_hash(scene.prompt, text))
    digest = hashlib.sha256("\n".join(hashes).encode()).hexdigest()
    return HouseData(chats, hashes, f"sha256:{digest}", len(scenes), dropped)


@dataclass
class HouseResult:
    version: str
    promoted: bool
    reasons: list[str]
    examples: int
    train_examples: int
    validation_examples: int
    dropped: dict[str, int]
    data_hash: str
    candidate: dict[str, Any]
    base: dict[str, Any]
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"version": self.version, "promoted": self.promoted, "reasons": self.reasons,
                "examples": self.examples, "train_examples": self.train_examples,
                "validation_examples": self.validation_examples, "dropped": self.dropped,
                "data_hash": self.data_hash, "candidate": self.candidate, "base": self.base,
                "seconds": round(self.seconds, 1)}


def build_house_adapter(settings, *, promote: bool = True, progress: bool = True, phase=lambda text: None,
                        scenes: Sequence[Any] | None = None) -> HouseResult:
    """Train, judge, publish and (when it pays and ``promote``) promote the house adapter.
    ``scenes``: corpus excerpts to learn from (default: the bundled corpus's training ones)."""
    import shutil
    import time

    from registry import versions as registry
    from training.base import FINAL_EVAL, base_model, training_settings_json
    from training.trainer import train_adapter

    started = time.perf_counter()
    t, g = settings.training, settings.generation
    if scenes is None:
        from training.corpus_scenes import training_scenes

        phase("reading the bundled corpus")
        scenes = training_scenes()
    data = house_data(scenes, max_speeches=g.max_speeches, exemplar_chars=g.exemplar_chars)
    train, validation = data.split(t.validation_share)
    if len(train) < t.min_examples:
        raise ValueError(f"{len(train)} corpus scenes fit the grammar's form; the house adapter needs at least "
                         f"{t.min_examples} (training.min_examples)")
    model_dir, base_name = base_model(settings)
    # Named by what makes it: the examples, the settings that shape it and the base model.
    recipe = json.dumps([data.data_hash, training_settings_json(settings), base_name], sort_keys=True)
    version = f"{VERSION_PREFIX}{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    if version in {found.version for found in registry.list_versions(settings.adapter_dir)}:
        raise ValueError(f"{version} is in the registry already (same corpus, settings and base model); "
                         "`writersroom adapters list` shows it")
    work_dir = settings.home / "training" / "house" / version
    phase(f"training on {len(train)} corpus scenes ({len(validation)} held for validation) in {work_dir}")
    outcome = train_adapter(train, validation, base_model_dir=model_dir, work_dir=work_dir, settings=t,
                            device=settings.model.device, progress=progress, final_eval=FINAL_EVAL)
    phase("judging it against the base model")
    candidate, base, verdict = _judge(settings, validation, outcome.adapter_dir, model_dir=model_dir,
                                      base_name=base_name, work_dir=work_dir)
    training = {**training_settings_json(settings), "kind": HOUSE_KIND, "corpus": "bundled public-domain corpus",
                "dropped": data.dropped}
    metrics = {"candidate": candidate.as_json(), "serving": base.as_json(), "promote": verdict.promote,
               "reasons": verdict.reasons, "training": {k: v for k, v in outcome.as_json().items()
                                                        if k not in ("losses", "eval_losses")}}
    phase(f"publishing {version}")
    registry.write_adapter_version(settings.adapter_dir, version, source=outcome.adapter_dir, base_model=base_name,
                                   training=training, data_hash=data.data_hash, example_count=len(data.chats),
                                   metrics=metrics)
    promoted = bool(verdict.promote and promote)
    reasons = list(verdict.reasons)
    if promoted:
        phase(f"promoting {version} for every room without a version of its own")
        registry.promote(settings.adapter_dir, version)
    elif verdict.promote:
        reasons.append("not promoted: --no-promote")
    shutil.rmtree(work_dir, ignore_errors=True)
    return HouseResult(version, promoted, reasons, len(data.chats), len(train), len(validation), data.dropped,
                       data.data_hash, candidate.as_json(), base.as_json(), time.perf_counter() - started)


def house_start(settings, *, base_name: str):
    """The house adapter a room's training starts from: the registry version every room without
    its own serves, when it is a house adapter of this base model (training.house); else None."""
    from registry import versions as registry

    version = registry.serving(settings.adapter_dir).version_for(None)
    if not version:
        return None
    try:
        found = registry.get_version(settings.adapter_dir, version)
    except registry.RegistryError:
        return None
    manifest = found.manifest
    if manifest.training.get("kind") != HOUSE_KIND or manifest.base_model != base_name:
        return None
    return found


def _judge(settings, validation: list, adapter_dir, *, model_dir, base_name: str, work_dir):
    """(candidate, base model, verdict) by the rooms' gate, on the same held-out material."""
    from training.corpus_scenes import heldout_scenes
    from training.gate import run_gate

    t, g = settings.training, settings.generation
    # The held-out corpus scenes in the same form as the examples: what the adapter is for.
    heldout = house_data(heldout_scenes(t.eval_screenplay_scenes), max_speeches=g.max_speeches,
                         exemplar_chars=g.exemplar_chars).chats if t.eval_screenplay_scenes else []
    return run_gate(settings, model_dir=model_dir, base_name=base_name, candidate_dir=adapter_dir, serving_dir=None,
                    serving_label="base model", validation_chats=validation, screenplay_chats=heldout,
                    work_dir=work_dir)
