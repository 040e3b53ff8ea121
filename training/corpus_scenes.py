"""Dialogue excerpts of the bundled corpus as Fountain scenes with a /dialogue prompt.

    from training.corpus_scenes import heldout_scenes, training_scenes, feedback_records
    evaluation = heldout_scenes(64)           # fixed screenplay set for perplexity checks
    lines = feedback_records(training_scenes())  # import as if a room had approved them

Two uses need scenes no room has written yet: a fixed held-out set to measure an adapter
on, and a few hundred "approved" scenes for benchmarks. The bundled corpus has them: each
scene of its plays (and screenplays) is cut into excerpts of consecutive speeches, turned
into Fountain (a heading read from the stage set, see training.corpus_places; upper-case
cues, parentheticals, dialogue) and given the request a writer might have typed for it.

Every excerpt is checked with the validator generated scenes face
(``screenplay.form.validate_fountain``) and its prompt with the parser chat uses
(``parse_dialogue_request``); what fails either is dropped and counted, never patched.
Only English scripts are used (the TEI ``xml:lang``; Fountain carries none and the
bundled screenplays are English).

An excerpt is held out by a hash of its script id, heading and first line alone, so its
side never depends on other excerpts: adding a script moves nothing. Excerpts never
overlap and identical texts are kept once, so no text is on both sides. Note the
licences (retrieval/corpus/ATTRIBUTION.md): one bundled screenplay is CC BY 4.0.
"""

from __future__ import annotations

import hashlib
import logging
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from retrieval.document import (
    ACTION,
    CENTERED,
    CHARACTER,
    DIALOGUE,
    LYRIC,
    PARENTHETICAL,
    Scene,
    Script,
)
from retrieval.parse import SUPPORTED_SUFFIXES, NotAScript, ParseError, parse_file
from screenplay.form import HEADING_LINE, time_of_day, validate_fountain
from screenplay.prompting import parse_dialogue_request
from training.corpus_places import (
    Place,
    cast_words,
    clip,
    scene_place,
    strip_scene_word,
    title_place,
)
from training.feedback_format import content_hash, normalize_text, record

log = logging.getLogger(__name__)

AUTHOR = "corpus"
#: Share of excerpts (per mille) in the held-out evaluation set.
HELDOUT_PER_MILLE = 120
#: A stage direction inside a speech up to this long reads as a parenthetical; longer
#: ones are business, which screenplays write as action.
PARENTHETICAL_CHARS = 60
#: Stage directions are cut (at a sentence end) to this: set descriptions run to pages.
ACTION_CHARS = 300
MAX_PROMPT_CHARACTERS = 3
_SITUATION_WORDS = (6, 20)
# Group cues ("ALL", "BOTH") speak but are no one a writer would ask for by name.
_GROUP_CUES = frozenset({"ALL", "BOTH", "OMNES", "CHORUS", "OTHERS", "SEVERAL", "VOICE", "VOICES", "CROWD"})


@dataclass(frozen=True)
class CorpusScene:
    script_id: str
    title: str
    heading: str  # a Fountain scene heading, e.g. "INT. PARLOR - DAY"
    characters: tuple[str, ...]  # speakers in order of first line, as their cues read (upper case)
    text: str  # the excerpt as Fountain: heading, action, cues, (parentheticals), dialogue
    prompt: str  # what a writer would type to /dialogue for it, with "characters: A, B"
    content_hash: str  # training.feedback_format.content_hash(prompt, text)
    heldout: bool  # in the fixed evaluation set; never used as training material


@dataclass(frozen=True)
class CorpusBuild:
    """The excerpts of one corpus and what was left out on the way, for reports."""

    scenes: tuple[CorpusScene, ...]
    skipped_files: tuple[tuple[str, str], ...] = ()  # (path, reason): unreadable or not a script
    non_english: tuple[str, ...] = ()  # script ids
    dropped_invalid: int = 0  # failed validate_fountain
    dropped_prompt: int = 0  # fewer than two nameable speakers, or the prompt parsed otherwise
    duplicates: int = 0  # same text as an earlier excerpt
    stats: dict[str, Any] = field(default_factory=dict)


# --- public API ------------------------------------------------------------------------


def corpus_scenes(corpus_dir: Path | None = None, *, max_chars: int = 1100, min_speeches: int = 4) -> list[CorpusScene]:
    """All excerpts, sorted by script id and position in the script."""
    return list(build_corpus(corpus_dir, max_chars=max_chars, min_speeches=min_speeches).scenes)


def heldout_scenes(limit: int, corpus_dir: Path | None = None) -> list[CorpusScene]:
    """The fixed evaluation set: the first ``limit`` held-out excerpts, taken across the
    scripts in turn (``spread_over_scripts``), in a stable order."""
    return spread_over_scripts([scene for scene in corpus_scenes(corpus_dir) if scene.heldout])[:limit]


def spread_over_scripts(scenes: list[CorpusScene]) -> list[CorpusScene]:
    """``scenes`` reordered in rounds: each script's first excerpt, then each one's second, ...

    Excerpts come sorted by script, so any prefix of them is a few scripts' worth: a 32-scene
    evaluation set read two verse dramas for two thirds of its text. Rounds make every
    prefix a sample of the whole corpus; the order stays stable (scripts by id, then by
    position within each).
    """
    by_script: dict[str, list[CorpusScene]] = {}
    for scene in scenes:
        by_script.setdefault(scene.script_id, []).append(scene)
    queues = [by_script[key] for key in sorted(by_script)]
    rounds = max((len(queue) for queue in queues), default=0)
    return [queue[turn] for turn in range(rounds) for queue in queues if turn < len(queue)]


def training_scenes(corpus_dir: Path | None = None) -> list[CorpusScene]:
    """Every excerpt not held out; held-out ones past ``heldout_scenes``' limit are not
    here either, so the evaluation set can grow without ever having been trained on."""
    return [scene for scene in corpus_scenes(corpus_dir) if not scene.heldout]


def feedback_records(scenes: list[CorpusScene], *, room: str | None = None) -> list[dict[str, Any]]:
    """Lines of the feedback format (docs/feedback-format.md) for ``scenes``.

    ``characters`` are the prompt's, as chat records a request; the full cast of the
    excerpt is in the text's cues.
    """
    return [record(prompt=scene.prompt, text=scene.text, room=room, author=AUTHOR,
                   characters=parse_dialogue_request(scene.prompt).characters) for scene in scenes]


def build_corpus(corpus_dir: Path | None = None, *, max_chars: int = 1100, min_speeches: int = 4) -> CorpusBuild:
    """The excerpts with the counts of what was dropped (cached per process)."""
    if corpus_dir is None:
        from retrieval.bundled import bundled_corpus_dir

        corpus_dir = bundled_corpus_dir()
    return _build(str(Path(corpus_dir).resolve()), max_chars, min_speeches)


def clear_cache() -> None:
    """Forget the excerpts built so far (after the corpus changed on disk)."""
    _build.cache_clear()


# --- corpus -> excerpts ------------------------------------------------------------------


@lru_cache(maxsize=8)
def _build(corpus_dir: str, max_chars: int, min_speeches: int) -> CorpusBuild:
    skipped: list[tuple[str, str]] = []
    non_english: list[str] = []
    counts: Counter[str] = Counter()
    scenes: list[CorpusScene] = []
    seen_texts: set[str] = set()
    for script in _scripts(Path(corpus_dir), skipped, non_english):
        for scene in _script_excerpts(script, max_chars, min_speeches, counts):
            key = normalize_text(scene.text)
            if key in seen_texts:  # the same text twice could land in both sets
                counts["duplicates"] += 1
                continue
            seen_texts.add(key)
            scenes.append(scene)
    lengths = [len(scene.text) for scene in scenes]
    stats = {"excerpts": len(scenes), "heldout": sum(scene.heldout for scene in scenes),
             "median_chars": statistics.median(lengths) if lengths else 0,
             "scripts": len({scene.script_id for scene in scenes})}
    return CorpusBuild(tuple(scenes), tuple(skipped), tuple(non_english), counts["invalid"], counts["prompt"],
                       counts["duplicates"], stats)


def _scripts(corpus_dir: Path, skipped: list, non_english: list) -> list[Script]:
    """Every English script under ``corpus_dir``, sorted by id; broken files are skipped."""
    scripts = []
    for path in sorted(p for p in corpus_dir.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES):
        try:
            script = parse_file(path)
        except ParseError as exc:  # NotAScript too: a licence .txt beside the scripts, said quietly
            level = logging.DEBUG if isinstance(exc, NotAScript) else logging.WARNING
            log.log(level, "corpus scenes: skipping %s", exc)
            skipped.append((str(path), exc.reason))
            continue
        if script.language and not script.language.lower().startswith("en"):
            non_english.append(script.script_id)
            continue
        scripts.append(script)
    return sorted(scripts, key=lambda s: (s.script_id, s.source_path))


@dataclass
class _Speech:
    """One speech of the source with the stage directions that came before it."""

    speaker: str
    extension: str
    pieces: list[tuple[str, str]]  # ("paren" | "line" | "action", text) in order
    lead: list[str] = field(default_factory=list)  # action paragraphs before the speech


def _script_excerpts(script: Script, max_chars: int, min_speeches: int, counts: Counter) -> list[CorpusScene]:
    out: list[CorpusScene] = []
    scenes = [(scene, _speeches(scene)) for scene in script.scenes]
    scenes = [(scene, speeches) for scene, speeches in scenes if speeches]
    cast = cast_words(speech.speaker for _, speeches in scenes for speech in speeches)
    places = [scene_place(scene.heading, speeches[0].lead[0] if speeches[0].lead else "", cast)
              for scene, speeches in scenes]
    # A scene whose directions name no set plays where the last one did (French scenes
    # change with entrances, not places); before any set is named, in the play's first.
    place = next((p for p in places if p), None) or title_place(script.title)
    for (scene, speeches), own in zip(scenes, places):
        place = own or place
        heading = place.heading(time_of_day(f"{scene.heading}. {' '.join(speeches[0].lead)[:400]}"), scene.heading)
        for excerpt in _cut(speeches, heading, max_chars, min_speeches):
            made = _corpus_scene(script, heading, place, excerpt, counts)
            if made:
                out.append(made)
    return out


def _speeches(scene: Scene) -> list[_Speech]:
    """The scene's speeches; directions between them ride along as the next one's lead."""
    speeches: list[_Speech] = []
    lead: list[str] = []
    current: _Speech | None = None

    def close() -> None:
        nonlocal current
        if current is not None:
            if any(kind == "line" for kind, _ in current.pieces):
                speeches.append(current)
            else:  # a "speech" of stage directions only is business, not dialogue
                lead.extend(text for _, text in current.pieces)
        current = None

    for el in scene.elements:
        if el.kind == CHARACTER:
            close()
            current = _Speech(_clean_name(el.text), el.extension.upper(), [], lead)
            lead = []
        elif el.kind in (DIALOGUE, LYRIC) and current is not None:
            text = "\n".join(line for line in (_clean(l).lstrip("~!") for l in el.text.split("\n")) if line)
            if text:
                current.pieces.append(("line", text))
        elif el.kind == PARENTHETICAL and current is not None:
            direction = _clean(el.text).strip(" ()[]").replace("(", "").replace(")", "").rstrip(".")
            if direction:
                kind = "paren" if len(direction) <= PARENTHETICAL_CHARS else "action"
                current.pieces.append((kind, direction))
        elif el.kind in (ACTION, CENTERED):
            close()
            text = strip_scene_word(_clean(el.text))
            if text and not text.startswith("Figure:"):  # "[Figure: 109KB": a scan's image marker
                lead.append(text)
        # headings, transitions, notes, sections: not part of an excerpt's story
    close()
    return [s for s in speeches if s.speaker]


def _cut(speeches: list[_Speech], heading: str, max_chars: int, min_speeches: int) -> list[list[tuple[str, _Speech]]]:
    """Greedy runs of whole speeches that fit ``max_chars``; a run too short is passed over.

    Each run is a list of (rendered blocks, speech). Runs never overlap, so no speech is in
    two excerpts (and so never in both the held-out and the training set).
    """
    runs = []
    i = 0
    speech_cap = max_chars // 2  # one speech must leave room for the others
    while i < len(speeches):
        size = len(heading)
        run: list[tuple[str, _Speech]] = []
        j = i
        while j < len(speeches):
            speech = speeches[j]
            # the directions before the first speech (the set, for a scene's first excerpt)
            # open the excerpt as one paragraph; later ones keep their own paragraphs
            lead = _action(" ".join(speech.lead)) if j == i else "\n\n".join(
                action for action in map(_action, speech.lead) if action)
            body, cut = _render_speech(speech, speech_cap)
            block = f"{lead}\n\n{body}" if lead else body
            if not body or size + 2 + len(block) > max_chars:
                break  # it opens the next run (or, unsayable in speech_cap, is passed over)
            run.append((block, speech))
            size += 2 + len(block)
            j += 1
            if cut:  # the rest of that speech is not shown: nothing may answer it
                break
        if len(run) >= min_speeches and len({s.speaker for _, s in run}) >= 2:
            runs.append(run)
        i = max(j, i + 1)
    return runs


def _corpus_scene(script: Script, heading: str, place: Place, run: list[tuple[str, _Speech]],
                  counts: Counter) -> CorpusScene | None:
    text = "\n\n".join([heading, *(block for block, _ in run)])
    characters = tuple(dict.fromkeys(speech.speaker for _, speech in run))
    if not validate_fountain(text, characters).valid:
        counts["invalid"] += 1
        return None
    first_line = next(text for kind, text in run[0][1].pieces if kind == "line").split("\n", 1)[0]
    key = f"{script.script_id}\0{heading}\0{run[0][1].speaker}\0{first_line}"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    prompt = _prompt(run, place, heading, digest)
    if prompt is None:
        counts["prompt"] += 1
        return None
    return CorpusScene(script_id=script.script_id, title=script.title, heading=heading, characters=characters,
                       text=text, prompt=prompt, content_hash=content_hash(prompt, text),
                       heldout=int(digest[8:16], 16) % 1000 < HELDOUT_PER_MILLE)


# --- Fountain rendering ------------------------------------------------------------------


def _render_speech(speech: _Speech, budget: int) -> tuple[str, bool]:
    """The speech as Fountain blocks, and whether it had to be cut to fit ``budget``.

    A long direction in mid-speech becomes action, and the speech goes on under the cue
    again with (CONT'D), as a screenplay would write it. Too long a speech is cut at a
    sentence end; ("", False) when not even its first sentence fits.
    """
    cue = f"{speech.speaker} ({speech.extension})" if speech.extension else speech.speaker
    blocks: list[str] = []
    current = [cue]
    spoken = False  # has the cue block being built any dialogue yet?
    said = False  # has any cue block with dialogue been written?
    cut = False
    for kind, text in speech.pieces:
        if kind == "action":
            action = _action(text)
            if action and spoken:
                blocks.append("\n".join(current))
                current, spoken = [f"{speech.speaker} (CONT'D)"], False
            if action:
                blocks.append(action)  # before the cue block being built
            continue
        addition = [f"({text})"] if kind == "paren" else text.split("\n")
        if len(_join(blocks, current + addition)) > budget:
            clipped = clip(text, budget - len(_join(blocks, current)) - 1) if kind == "line" else ""
            if clipped:
                current += clipped.split("\n")
                spoken = True
            cut = True
            break
        current += addition
        spoken = spoken or kind == "line"
        said = said or spoken
    if spoken:
        blocks.append("\n".join(current))
        said = True
    elif len(current) > 1:  # directions after the last words read as action
        blocks.extend(_action(line.strip("()")) for line in current[1:])
    return ("\n\n".join(blocks).strip(), cut) if said else ("", False)


def _join(blocks: list[str], current: list[str]) -> str:
    return "\n\n".join([*blocks, "\n".join(current)])


def _action(text: str) -> str:
    """One action paragraph, cut to ACTION_CHARS at a sentence end; '!' where Fountain
    would read it as something else (a shouted line as a cue, 'EXT.' as a heading)."""
    text = " ".join(text.split())
    if len(text) > ACTION_CHARS:
        text = clip(text, ACTION_CHARS) or text[:ACTION_CHARS].rsplit(" ", 1)[0] + "..."
    if not text:
        return ""
    looks_other = text[0] in "!@#=~>.[(" or HEADING_LINE.match(text) or (
        text == text.upper() and any(c.isalpha() for c in text))
    return f"!{text}" if looks_other else text


def _clean(text: str) -> str:
    """Undo the TEI's print artefacts: '&.mp;c' for '&c', a space before punctuation."""
    text = text.replace("&.mp;", "&").replace("&.MP;", "&")
    text = re.sub(r"[ \t]+([.,;:!?)]|['’]s\b)", r"\1", text)
    text = re.sub(r"\([ \t]+", "(", text)
    return "\n".join(" ".join(line.split()) for line in text.split("\n")).strip()


def _clean_name(name: str) -> str:
    """A cue as Fountain wants it: upper case, no brackets, quotes or trailing punctuation,
    and nothing Fountain would read as markup ('^' dual dialogue, '@' forced cue)."""
    name = _clean(name).upper()
    name = re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", name)
    name = re.sub(r"[()\[\]\"“”^@#~=>!*_]", " ", name)
    name = re.sub(r"\s+,", ",", " ".join(name.split()))
    name = name.strip(" .,:;-—'’")
    return name if any(c.isalpha() for c in name) and not HEADING_LINE.match(name) else ""


# --- prompts ---------------------------------------------------------------------------------

_TIME_PHRASES = {"NIGHT": "at night", "DAWN": "at dawn", "DUSK": "at dusk", "MORNING": "in the morning",
                 "EVENING": "in the evening"}  # by day goes without saying
_PLAIN = ("{a} and {b} talk {where}", "{a} speaks with {b} {where}", "{a} and {b} have words {where}",
          "{where_cap}, {a} and {b} take up the matter between them")


def _prompt(run: list[tuple[str, _Speech]], place: Place, heading: str, digest: str) -> str | None:
    """'Mrs. Jenks presses Tom with questions in the parlor characters: Mrs. Jenks, Tom',
    or None when the excerpt has fewer than two speakers a writer could name, or the
    prompt would not parse back to them."""
    spoken = Counter(speech.speaker for _, speech in run)
    order = list(dict.fromkeys(speech.speaker for _, speech in run))
    ranked = [n for n in sorted(order, key=lambda n: (-spoken[n], order.index(n))) if _nameable(n)]
    # a third voice is named only if it speaks more than once: "DISTANT CRIES" is no role
    names = [_display(n) for i, n in enumerate(ranked[:MAX_PROMPT_CHARACTERS]) if i < 2 or spoken[n] > 1]
    if len(names) < 2:
        return None
    situation = _situation(run, names, place.phrase or "in a room", heading, int(digest[:8], 16))
    prompt = f"{situation} characters: {', '.join(names)}"
    parsed = parse_dialogue_request(prompt)
    if parsed.characters != tuple(n.upper() for n in names) or parsed.situation != situation:
        return None
    return prompt


def _nameable(cue: str) -> bool:
    # parse_dialogue_request splits names at commas and "and"; a group cue names no one
    return cue not in _GROUP_CUES and "," not in cue and "&" not in cue and not re.search(r"\bAND\b", cue) \
        and len(cue.split()) <= 4


def _display(cue: str) -> str:
    """'MRS. JENKS' -> 'Mrs. Jenks': how a writer types a name."""
    return " ".join(word[:1] + word[1:].lower() for word in cue.split())


def _situation(run: list[tuple[str, _Speech]], names: list[str], where: str, heading: str, seed: int) -> str:
    """6-20 words: who, a verb the dialogue suggests (many questions, many exclamations),
    where and, unless by day, when; the wording varies by the excerpt's hash."""
    lines = [text for _, speech in run for kind, text in speech.pieces if kind == "line"]
    if sum("?" in line for line in lines) >= 0.4 * len(lines):
        template = "{a} presses {b} with questions {where}"
    elif sum("!" in line for line in lines) >= 0.4 * len(lines):
        template = "{a} and {b} quarrel {where}"
    else:
        template = _PLAIN[seed % len(_PLAIN)]
    time = re.search(r"(\w+)\W*$", heading)
    when = _TIME_PHRASES.get(time.group(1) if time else "", "") if time_of_day(where) == "DAY" else ""
    fixed = len(template.format(a=names[0], b=names[1], where="", where_cap="").split()) + len(when.split())
    where = " ".join([*where.split()[:max(2, _SITUATION_WORDS[1] - fixed)], *when.split()])  # a long set gets cut
    situation = template.format(a=names[0], b=names[1], where=where, where_cap=where[:1].upper() + where[1:])
    if len(names) > 2:
        extra = f" while {names[2]} looks on" if seed % 2 else f" as {names[2]} joins in"
        if len((situation + extra).split()) <= _SITUATION_WORDS[1]:
            situation += extra
    while len(situation.split()) < _SITUATION_WORDS[0]:
        situation += " one day"
    # the words parse_dialogue_request reads as fields must not open one inside the situation
    situation = re.sub(r"\b(characters?|tone)\s*:", r"\1", situation, flags=re.IGNORECASE)
    return " ".join(situation.split()[:_SITUATION_WORDS[1]]).rstrip(" ,.;:")
