"""Grammar-constrained decoding and degeneration guards, on the tiny model.

Its weights are random, so what it writes unconstrained is noise: whatever form the text
has below, the grammar gave it. Measured here (2-core CPU, one torch thread, the scene
grammar below with every guard on and no_repeat_ngram_size 4), what a constrained row adds
per step over the same row unconstrained (constraint_cost_ms, median): ~0.06 ms with the
tiny tokenizer, ~0.13-0.16 ms with SmolLM2's 49k vocabulary (mean of the parts ~0.23 ms:
bitmask ~0.04, applying it to the logits ~0.13, guard checks ~0.05, consuming ~0.01);
building llguidance's view of SmolLM2's tokenizer, once, ~0.4 s; checking the scene
grammar when a request is mapped ~3 ms.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import threading

import httpx
import openai
import pytest

from backend.app import create_app
from backend.batching import Scheduler
from backend.constraints import (
    DegenerationGuard,
    GrammarVocabulary,
    RowConstraint,
    cue_of,
    loops_within,
    normalised,
)
from backend.engine import BatchEngine, Row
from backend.generator import ChatGenerator
from backend.requests import MAX_GRAMMAR_BYTES, ConstraintError, sampling_params
from backend.sampling import SamplingParams
from backend.schemas import ChatCompletionRequest
from emulators.servers import serve_asgi

PROMPT = [{"role": "user", "content": "Scene: a detective corners her partner."}]

SCENE_LARK = r"""start: "INT. " PLACE " - " ("DAY"|"NIGHT") "\n\n" block+
block: CUE "\n" LINE "\n\n"
CUE: "MAYA" | "COLE"
LINE: /[A-Z][a-z ,.']{1,40}[.!?]/
PLACE: /[A-Z][A-Z ]{1,20}/
"""
SCENE = re.compile(r"INT\. [A-Z][A-Z ]{1,20} - (DAY|NIGHT)\n\n((MAYA|COLE)\n[A-Z][a-z ,.']{1,40}[.!?]\n\n)+")
# Lines a model may say again and again: the guards' test bed.
REPEATABLE = r'start: ("The fire.\n" | "Run now.\n" | "Stay here.\n" | "MAYA\n")+'
CUES_AND_LINES = r"""start: (CUE "\n" LINE "\n")+
CUE: "MAYA" | "COLE"
LINE: /[A-Z][a-z ]{1,30}[.!?]/
"""
MOOD_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["name", "mood"],
               "properties": {"name": {"type": "string", "maxLength": 12}, "mood": {"enum": ["calm", "angry"]}}}


def params_for(**fields) -> SamplingParams:
    """The engine's settings for a request with these fields, as the HTTP route maps them."""
    fields.setdefault("max_tokens", 200)
    return sampling_params(ChatCompletionRequest(model="tiny", messages=PROMPT, **fields))


def raw_text(generator, row: Row) -> str:
    """A finished row's text as generated, stop token off, nothing stripped."""
    ids = row.generated[:-1] if row.generated and row.generated[-1] in generator.stop_ids else row.generated
    return generator.tokenizer.decode(ids, skip_special_tokens=True)


def decode_rows(generator, params: list[SamplingParams], *, join_at: dict[int, int] | None = None) -> list[Row]:
    """Decode rows in one engine; join_at maps a row to the step it joins at (default 0)."""
    join_at = join_at or {}
    engine = BatchEngine(generator)
    rows = [Row(generator.encode_prompt(PROMPT, p.max_tokens), p) for p in params]
    step = 0
    while step == 0 or engine.rows or any(join_at.get(i, 0) >= step for i in range(len(rows))):
        joining = [row for i, row in enumerate(rows) if join_at.get(i, 0) == step]
        if joining:
            engine.admit(joining)
        engine.step()
        step += 1
    return rows


def decode_one(generator, params: SamplingParams) -> Row:
    return decode_rows(generator, [params])[0]


def lines_in_tokens(generator, row: Row) -> list[int]:
    """Tokens per line: a token holding a newline ends its line."""
    counts, open_tokens = [], 0
    for token in row.generated:
        open_tokens += 1
        if "\n" in generator.tokenizer.decode([token]):
            counts.append(open_tokens - 1)  # the ending token is not the line's
            open_tokens = 0
    return counts


# -- grammars force form ----------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 4, 5, 6])  # seeds whose scenes end within max_tokens
def test_a_lark_grammar_gives_random_weights_screenplay_form(tiny_generator, seed):
    row = decode_one(tiny_generator, params_for(seed=seed, temperature=1.0, max_tokens=220,
                                                structured_outputs={"grammar": SCENE_LARK}))
    assert row.generated[-1] in tiny_generator.stop_ids  # the grammar was complete, then the model stopped
    assert SCENE.fullmatch(raw_text(tiny_generator, row)), raw_text(tiny_generator, row)


def test_without_the_grammar_the_same_model_writes_no_scene(tiny_generator):
    row = decode_one(tiny_generator, params_for(seed=0, temperature=1.0, max_tokens=60))
    assert not SCENE.fullmatch(raw_text(tiny_generator, row))


def test_a_constrained_row_depends_on_its_seed_only_not_on_its_company(tiny_generator):
    scene = params_for(seed=11, temperature=0.9, max_tokens=200, structured_outputs={"grammar": SCENE_LARK})
    alone = decode_one(tiny_generator, scene).generated
    assert decode_one(tiny_generator, scene).generated == alone
    company = [
        params_for(seed=5, temperature=1.0, max_tokens=30),  # unconstrained
        scene,
        params_for(seed=6, temperature=0.7, max_tokens=80, guided_regex=r"[0-9]{3}-[0-9]{4}"),
        params_for(seed=7, temperature=1.0, max_tokens=60, guided_grammar=REPEATABLE,
                   degeneration_guard={"no_repeated_lines": True}),
    ]
    rows = decode_rows(tiny_generator, company, join_at={0: 0, 1: 2, 2: 0, 3: 5})
    assert rows[1].generated == alone
    other_seed = params_for(seed=12, temperature=0.9, max_tokens=200, structured_outputs={"grammar": SCENE_LARK})
    assert decode_one(tiny_generator, other_seed).generated != alone


@pytest.mark.parametrize("jump_forward", [True, False])
def test_forced_text_is_taken_without_a_step_per_token(tiny_generator, jump_forward):
    # The heading and both cues are forced: after the first letters the grammar leaves no choice.
    grammar = r"""start: "INT. THE OLD LIGHTHOUSE ON THE NORTH POINT - NIGHT\n\nDEPUTY MARSH\n" LINE "\n\nAGNES\n" LINE
LINE: /[A-Z][a-z ]{1,20}[.!?]/
"""
    engine = BatchEngine(tiny_generator, jump_forward=jump_forward)
    params = params_for(seed=3, temperature=1.0, max_tokens=120, structured_outputs={"grammar": grammar})
    row = Row(tiny_generator.encode_prompt(PROMPT, params.max_tokens), params)
    emitted = engine.admit([row])
    while engine.rows:
        emitted += engine.step()
    text = raw_text(tiny_generator, row)
    assert text.startswith("INT. THE OLD LIGHTHOUSE ON THE NORTH POINT - NIGHT\n\nDEPUTY MARSH\n")
    assert "\n\nAGNES\n" in text
    assert [item.token for item in emitted] == row.generated  # every token reaches the stream, in order
    if jump_forward:  # one prefill, then a step per drawn token: the forced ones rode along
        assert engine.forward_passes < len(row.generated) / 2, (engine.forward_passes, len(row.generated))
    else:  # the setting's way back: one step per token
        assert engine.forward_passes == len(row.generated)


def test_rows_with_forced_text_and_rows_without_share_steps_as_they_would_run_alone(tiny_generator):
    forced = params_for(seed=21, temperature=1.0, max_tokens=120, structured_outputs={
        "grammar": r'start: "EXT. HARBOUR WALL - DAWN\n\n" (("MAYA" | "COLE") "\n" /[A-Z][a-z ]{1,20}[.!?]/ "\n\n")+'})
    plain = params_for(seed=22, temperature=1.0, max_tokens=40)
    alone = [decode_one(tiny_generator, forced).generated, decode_one(tiny_generator, plain).generated]
    together = decode_rows(tiny_generator, [forced, plain, forced], join_at={0: 0, 1: 0, 2: 3})
    assert [row.generated for row in together] == [alone[0], alone[1], alone[0]]


def test_in_a_batch_forced_text_is_fed_a_token_a_step_without_widening_the_step(tiny_generator):
    scene = params_for(seed=4, temperature=1.0, max_tokens=120, structured_outputs={
        "grammar": r'start: "INT. THE OLD LIGHTHOUSE ON THE NORTH POINT - NIGHT\n\n" ("MAYA\n" /[A-Z][a-z ]{1,20}[.!?]/ "\n\n")+'})
    engine = BatchEngine(tiny_generator)
    rows = [Row(tiny_generator.encode_prompt(PROMPT, scene.max_tokens), scene) for _ in range(2)]
    engine.admit(rows)
    columns = engine._mask.shape[1]
    steps = 0
    while len(engine.rows) == 2:
        engine.step()
        steps += 1
        if len(engine.rows) == 2:
            assert engine._mask.shape[1] == columns + steps  # one column a step: no masked padding piles up
    # Two rows, one column a step: each row's every token took a step, forced ones included.
    assert steps >= min(len(row.generated) for row in rows) - 1
    assert all(raw_text(tiny_generator, row).startswith("INT. THE OLD LIGHTHOUSE ON THE NORTH POINT") for row in rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_regex_constrains_the_whole_output(tiny_generator, seed):
    result = tiny_generator.generate(PROMPT, params_for(seed=seed, temperature=1.0,
                                                        structured_outputs={"regex": r"[0-9]{3}-[0-9]{4}"}))
    assert result.finish_reason == "stop"
    assert re.fullmatch(r"[0-9]{3}-[0-9]{4}", result.text)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_json_schema_response_format_gives_json_that_fits_it(tiny_generator, seed):
    params = params_for(seed=seed, temperature=1.0, max_tokens=200,
                        response_format={"type": "json_schema", "json_schema": {"name": "mood", "schema": MOOD_SCHEMA}})
    result = tiny_generator.generate(PROMPT, params)
    assert result.finish_reason == "stop"
    value = json.loads(result.text)
    assert set(value) == {"name", "mood"}
    assert value["mood"] in ("calm", "angry")
    assert isinstance(value["name"], str) and len(value["name"]) <= 12


def test_a_choice_gives_one_of_the_choices(tiny_generator):
    choices = ["MAYA", "COLE", "the rain"]
    texts = {tiny_generator.generate(PROMPT, params_for(seed=seed, guided_choice=choices)).text for seed in range(6)}
    assert texts <= set(choices)


def test_the_stop_token_is_allowed_only_where_the_grammar_is_complete(tiny_generator):
    constraint = RowConstraint(tiny_generator.grammar_vocabulary(), params_for(guided_regex="[0-9]{2,3}").grammar)
    (stop,) = tiny_generator.stop_ids
    for digit in "12":
        assert not bool(constraint.allowed_tokens()[stop])
        assert not constraint.consume(tiny_generator.tokenizer.convert_tokens_to_ids(digit))
    assert bool(constraint.allowed_tokens()[stop])  # "12" is a whole match: the row may stop
    assert constraint.consume(stop)
    assert constraint.finish_cause == "grammar complete"


def test_an_ngram_ban_never_blocks_what_the_grammar_forces(tiny_generator):
    forced = "MAYA\nRun.\n" * 3
    result = tiny_generator.generate(PROMPT, params_for(seed=1, no_repeat_ngram_size=2, repetition_penalty=1.5,
                                                        guided_grammar=f"start: {json.dumps(forced)}"))
    assert result.finish_reason == "stop"
    assert result.text == forced.strip()


def test_max_tokens_still_ends_a_constrained_row_with_length(tiny_generator):
    result = tiny_generator.generate(PROMPT, params_for(seed=0, temperature=1.0, max_tokens=8,
                                                        guided_grammar=SCENE_LARK))
    assert result.finish_reason == "length"
    assert result.completion_tokens == 8


def test_a_grammar_that_cannot_go_on_ends_the_row_without_a_stop_token(tiny_generator):
    # The regex leaves no choice after its last character: llguidance stops the matcher, the row stops.
    row = decode_one(tiny_generator, params_for(seed=0, guided_regex="COLE", no_repeat_ngram_size=1))
    assert raw_text(tiny_generator, row) == "COLE"
    assert row.constraint.finish_cause == "grammar complete"


def test_a_broken_matcher_ends_its_row_with_stop_and_spares_the_others(tiny_generator, caplog):
    params = [params_for(seed=1, temperature=1.0, max_tokens=40, guided_regex="[0-9]{20}"),
              params_for(seed=2, temperature=1.0, max_tokens=12)]
    engine = BatchEngine(tiny_generator)
    rows = [Row(tiny_generator.encode_prompt(PROMPT, p.max_tokens), p) for p in params]
    engine.admit(rows)
    matcher = rows[0].constraint.matcher
    letter = tiny_generator.tokenizer.convert_tokens_to_ids("a")

    class Breaking:  # consumes a letter the digits-only grammar refuses, whatever it is given
        def __getattr__(self, name):
            return getattr(matcher, name)

        def consume_token(self, token):
            return matcher.consume_token(letter)

    rows[0].constraint.matcher = Breaking()
    finished = {}
    with caplog.at_level(logging.WARNING, logger="backend.constraints"):
        while engine.rows:
            for item in engine.step():
                if item.finish_reason:
                    finished[id(item.row)] = item.finish_reason
    assert finished[id(rows[0])] == "stop" and len(rows[0].generated) == 2
    assert rows[0].constraint.finish_cause == "grammar error"
    assert "grammar matcher failed" in caplog.text
    assert finished[id(rows[1])] == "length" and len(rows[1].generated) == 12


# -- guards -----------------------------------------------------------------------------------

def spoken_lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip() and cue_of(line, frozenset({"MAYA", "COLE"})) is None]


def test_without_a_guard_the_model_repeats_lines_and_with_it_never(tiny_generator):
    repeated_unguarded = 0
    for seed in range(6):
        free = tiny_generator.generate(PROMPT, params_for(seed=seed, temperature=1.0, max_tokens=60,
                                                          guided_grammar=REPEATABLE))
        lines = spoken_lines(free.text)
        repeated_unguarded += len(lines) - len(set(lines))
        guarded = tiny_generator.generate(PROMPT, params_for(
            seed=seed, temperature=1.0, max_tokens=60, guided_grammar=REPEATABLE,
            degeneration_guard={"speakers": ["MAYA"], "no_repeated_lines": True}))
        lines = spoken_lines(guarded.text)
        assert len(lines) == len(set(lines)), guarded.text
    assert repeated_unguarded > 0  # the guard had something to do


def test_repeated_lines_are_refused_at_temperature_zero_too(tiny_generator):
    params = params_for(temperature=0.0, max_tokens=60, guided_grammar=REPEATABLE,
                        degeneration_guard={"no_repeated_lines": True, "max_speaker_run": 1})
    result = tiny_generator.generate(PROMPT, params)
    lines = spoken_lines(result.text)
    assert len(lines) == len(set(lines))
    assert "MAYA\nMAYA" not in result.text
    assert result.guard_interventions > 0


def test_max_speaker_run_one_means_no_cue_twice_in_a_row(tiny_generator):
    repeated_unguarded, guarded_cues = 0, 0
    def cues(seed: int, guard: dict | None) -> list[str]:
        params = params_for(seed=seed, temperature=1.0, max_tokens=120, guided_grammar=CUES_AND_LINES,
                            **({"degeneration_guard": guard} if guard else {}))
        return [line for line in tiny_generator.generate(PROMPT, params).text.split("\n") if line in ("MAYA", "COLE")]

    for seed in range(4):
        free = cues(seed, None)
        repeated_unguarded += sum(a == b for a, b in itertools.pairwise(free))
        guarded = cues(seed, {"speakers": ["MAYA", "COLE"], "max_speaker_run": 1})
        guarded_cues += len(guarded)
        assert all(a != b for a, b in itertools.pairwise(guarded)), guarded
    assert repeated_unguarded > 0
    assert guarded_cues > 8  # the guarded scenes went on, taking turns


def test_max_line_tokens_caps_every_line_without_a_grammar(tiny_generator):
    for seed in range(3):
        row = decode_one(tiny_generator, params_for(seed=seed, temperature=1.0, max_tokens=80,
                                                    degeneration_guard={"max_line_tokens": 4}))
        counts = lines_in_tokens(tiny_generator, row)
        assert len(counts) > 10 and max(counts) <= 4
        assert row.constraint.interventions > 0


def test_max_line_tokens_ends_a_grammar_line_at_its_next_sentence_end(tiny_generator):
    grammar = r"""start: (LINE "\n")+
LINE: /[A-Z][a-z ]{1,200}[.!?]/
"""
    free, capped = [], []
    for seed in range(4):
        params = {"seed": seed, "temperature": 1.0, "max_tokens": 120, "guided_grammar": grammar}
        free += lines_in_tokens(tiny_generator, decode_one(tiny_generator, params_for(**params)))
        capped += lines_in_tokens(tiny_generator, decode_one(tiny_generator, params_for(
            **params, degeneration_guard={"max_line_tokens": 6})))
    assert max(free) > 20
    assert len(capped) > 10
    assert max(capped) <= 6 + 1  # the sentence's end, then the newline the grammar forces


def test_line_guard_rules():
    speakers = frozenset({"MAYA", "DEPUTY MARSH"})
    assert normalised("  Run, now!  ") == normalised("run now") == "run now"
    assert normalised("...") == ""
    # As the strict judge sees lines (a dash is a space, an apostrophe nothing), so the guard
    # refuses what the judge would call the same line said again.
    assert normalised("Stop—now!") == normalised("stop now") and normalised("It's over.") == "its over"
    assert cue_of("DEPUTY MARSH", speakers) == "DEPUTY MARSH"
    assert cue_of("MAYA (V.O.)", speakers) == "MAYA"
    assert cue_of("JOHN", speakers) == "JOHN"  # an invented speaker is still a cue
    for not_a_cue in ("INT. KITCHEN - NIGHT", "CUT TO:", "NO!", "She runs.", "The fire."):
        assert cue_of(not_a_cue, speakers) is None


def test_stutters_within_a_line_are_loops_and_a_double_word_is_speech():
    for stutter in ("No, no no", "the fire the fire the fire", "Odile . . . .", "I said it, I said it", "What?!?!"):
        assert loops_within(stutter.encode()), stutter
    for speech in ("No, no, you're leaving.", "Well... maybe.", "What?!", "I know, I know.", "The fire is out."):
        assert not loops_within(speech.encode()), speech


def guarded_text(tiny_generator, text: str, guard: DegenerationGuard) -> tuple[RowConstraint, list[int]]:
    """A constraint that has consumed ``text``, and the tokens of it that it would have refused."""
    constraint = RowConstraint(tiny_generator.grammar_vocabulary(), None, guard)
    refused = []
    for token in tiny_generator.tokenizer.encode(text, add_special_tokens=False):
        if constraint.refuses(token):
            refused.append(token)
        constraint.consume(token)
    return constraint, refused


def test_a_four_word_phrase_may_come_twice_in_a_scene_not_three_times(tiny_generator):
    guard = DegenerationGuard(speakers=("MAYA", "COLE"), no_phrase_loops=True)
    twice = "MAYA\nYou are going to leave it.\nCOLE\nNo, you are going to stay.\n"
    constraint, refused = guarded_text(tiny_generator, twice, guard)
    assert refused == []
    third = tiny_generator.tokenizer.encode("MAYA\nBut you are going to", add_special_tokens=False)
    verdicts = []
    for token in third:
        verdicts.append(constraint.refuses(token))
        constraint.consume(token)
    assert verdicts[-1] and not any(verdicts[:-1])  # the word that completes the third "you are going to"


def test_a_three_word_phrase_may_come_three_times_not_four(tiny_generator):
    guard = DegenerationGuard(speakers=("MAYA", "COLE"), no_phrase_loops=True)
    thrice = "MAYA\nBridget is a liar.\nCOLE\nBridget is a saint.\nMAYA\nSo Bridget is a mystery.\n"
    constraint, refused = guarded_text(tiny_generator, thrice, guard)
    assert refused == []
    verdicts = []
    for token in tiny_generator.tokenizer.encode("COLE\nBridget is a", add_special_tokens=False):
        verdicts.append(constraint.refuses(token))
        constraint.consume(token)
    assert verdicts[-1] and not any(verdicts[:-1])


def test_a_guard_sees_the_line_the_grammar_forces_after_a_token(tiny_generator):
    """Where "T" can only go on as "he fire.\\n", it is "T" that repeats the line."""
    vocabulary = tiny_generator.grammar_vocabulary()
    constraint = RowConstraint(vocabulary, params_for(guided_grammar=REPEATABLE).grammar,
                               DegenerationGuard(no_repeated_lines=True))
    for token in tiny_generator.tokenizer.encode("The fire.\n", add_special_tokens=False):
        assert not constraint.refuses(token)
        assert not constraint.consume(token)
    first = tiny_generator.tokenizer.encode("T", add_special_tokens=False)[0]
    assert constraint.refuses(first)
    assert not constraint.refuses(tiny_generator.tokenizer.encode("R", add_special_tokens=False)[0])
    assert constraint.interventions == 1


# -- the request fields -----------------------------------------------------------------------

@pytest.mark.parametrize("fields", [
    {"structured_outputs": {"grammar": SCENE_LARK}},
    {"structured_outputs": {"regex": "[0-9]+"}},
    {"structured_outputs": {"json": MOOD_SCHEMA}},
    {"structured_outputs": {"json": json.dumps(MOOD_SCHEMA)}},
    {"structured_outputs": {"choice": ["a", "b"]}},
    {"structured_outputs": {"json_object": True}},
    {"guided_grammar": SCENE_LARK},
    {"guided_regex": "[0-9]+"},
    {"guided_json": MOOD_SCHEMA},
    {"guided_choice": ["a", "b"]},
    {"response_format": {"type": "json_schema", "json_schema": {"name": "m", "schema": MOOD_SCHEMA}}},
    {"response_format": {"type": "json_object"}},
])
def test_every_way_to_ask_for_a_constraint_maps_to_a_grammar(fields):
    params = params_for(**fields)
    assert params.grammar and params.constrained
    assert params.guard is None


def test_no_constraint_and_text_format_map_to_none():
    assert params_for().grammar is None
    assert params_for(response_format={"type": "text"}).grammar is None
    assert not params_for(degeneration_guard={"speakers": ["MAYA"]}).constrained  # a guard with nothing on


def test_the_guard_maps_to_a_frozen_guard():
    params = params_for(degeneration_guard={"speakers": [" MAYA ", "COLE"], "max_speaker_run": 2,
                                            "no_repeated_lines": True, "max_line_tokens": 48})
    assert params.guard == DegenerationGuard(speakers=("MAYA", "COLE"), max_speaker_run=2, no_repeated_lines=True,
                                             max_line_tokens=48)


@pytest.mark.parametrize("fields, param, fragment", [
    ({"structured_outputs": {"grammar": "start: foo"}}, "structured_outputs.grammar", "unknown name"),
    ({"guided_grammar": "start: ("}, "guided_grammar", ""),
    ({"guided_regex": "[a-"}, "guided_regex", "unclosed character class"),
    ({"guided_json": {"type": "strin"}}, "guided_json", "strin"),
    ({"guided_json": "{not json"}, "guided_json", "not valid JSON"),
    ({"guided_json": "[1, 2]"}, "guided_json", "JSON object"),
    ({"guided_choice": ["a", ""]}, "guided_choice", "empty"),
    ({"guided_regex": "a" * (MAX_GRAMMAR_BYTES + 1)}, "guided_regex", "KiB"),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema", "schema"),
    ({"structured_outputs": {"regex": "a"}, "guided_regex": "b"}, "guided_regex", "conflict"),
    ({"structured_outputs": {"regex": "a", "grammar": "start: \"a\""}}, "structured_outputs.regex", "conflict"),
    ({"guided_json": MOOD_SCHEMA, "response_format": {"type": "json_object"}}, "response_format", "conflict"),
])
def test_a_constraint_that_cannot_apply_is_refused_naming_its_field(fields, param, fragment):
    with pytest.raises(ConstraintError) as error:
        params_for(**fields)
    assert error.value.param == param
    assert fragment in str(error.value)


# -- the worker builds the vocabulary, once, and only when asked ------------------------------

def test_the_vocabulary_is_built_once_in_the_worker_and_never_for_unconstrained_rows(tiny_model_dir, monkeypatch):
    generator = ChatGenerator(tiny_model_dir, name="tiny", device="cpu")
    built_on = []
    original = GrammarVocabulary.from_hf.__func__

    def recording(cls, *args, **kwargs):
        built_on.append(threading.current_thread().name)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(GrammarVocabulary, "from_hf", classmethod(recording))

    async def scenario():
        scheduler = Scheduler(generator, batch_wait_ms=0)
        try:
            async def ask(params):
                return await scheduler.submit(generator.encode_prompt(PROMPT, params.max_tokens), params).wait()

            await ask(params_for(seed=1, max_tokens=8))
            assert built_on == []
            await asyncio.gather(*(ask(params_for(seed=seed, guided_regex="[0-9]{4}")) for seed in range(3)))
        finally:
            scheduler.close()

    asyncio.run(scenario())
    assert built_on == ["writersroom-scheduler"]


# -- over HTTP, with the official client ------------------------------------------------------

@pytest.fixture(scope="module")
def server(tiny_generator):
    with serve_asgi(create_app(tiny_generator)) as url:
        yield url


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=60)


def test_structured_outputs_grammar_over_http(server):
    completion = client(server).chat.completions.create(
        model="tiny", messages=PROMPT, max_tokens=220, temperature=1.0,
        extra_body={"seed": 2, "structured_outputs": {"grammar": SCENE_LARK},
                    "degeneration_guard": {"speakers": ["MAYA", "COLE"], "max_speaker_run": 2,
                                           "no_repeated_lines": True}})
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert SCENE.fullmatch(choice.message.content + "\n\n")  # the reply is stripped


def test_response_format_json_schema_over_http(server):
    completion = client(server).chat.completions.create(
        model="tiny", messages=PROMPT, max_tokens=200, temperature=1.0, extra_body={"seed": 1},
        response_format={"type": "json_schema", "json_schema": {"name": "mood", "schema": MOOD_SCHEMA}})
    assert json.loads(completion.choices[0].message.content)["mood"] in ("calm", "angry")


def test_a_constrained_stream_ends_with_stop_when_the_grammar_is_complete(server):
    ask = {"model": "tiny", "messages": PROMPT, "max_tokens": 220, "temperature": 1.0,
           "extra_body": {"seed": 4, "structured_outputs": {"grammar": SCENE_LARK}}}
    whole = client(server).chat.completions.create(**ask).choices[0].message.content
    chunks = list(client(server).chat.completions.create(**ask, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert SCENE.fullmatch(streamed + "\n\n")
    assert streamed == whole


def test_a_bad_grammar_is_a_400_naming_the_field(server):
    with pytest.raises(openai.BadRequestError) as error:
        client(server).chat.completions.create(model="tiny", messages=PROMPT,
                                               extra_body={"structured_outputs": {"grammar": "start: foo"}})
    body = error.value.body
    assert body["param"] == "structured_outputs.grammar"
    assert "unknown name" in body["message"]
    assert body["type"] == "invalid_request_error"


@pytest.mark.parametrize("payload, param", [
    ({"guided_regex": "[0-9]+", "response_format": {"type": "json_object"}}, "response_format"),
    ({"structured_outputs": {"regex": "a", "choice": ["a"]}}, "structured_outputs.choice"),
    ({"structured_outputs": {"structural_tag": "{}"}}, "structured_outputs.structural_tag"),
    ({"degeneration_guard": {"max_speaker_run": 0}}, "degeneration_guard.max_speaker_run"),
])
def test_conflicting_or_unsupported_constraints_are_400(server, payload, param):
    response = httpx.post(f"{server}/v1/chat/completions", json={"model": "tiny", "messages": PROMPT, **payload})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_the_in_process_client_takes_the_same_fields(tiny_generator):
    from backend.inprocess import InProcessChat

    chat = InProcessChat(tiny_generator, max_batch=4)

    async def scenario():
        with pytest.raises(ConstraintError):
            await chat.complete(model="tiny", messages=PROMPT, max_tokens=40, guided_regex="[a-")
        return await chat.complete(model="tiny", messages=PROMPT, max_tokens=40, seed=1,
                                   structured_outputs={"regex": "[0-9]{4}"})

    try:
        completion = asyncio.run(scenario())
    finally:
        chat.close()
    assert re.fullmatch("[0-9]{4}", completion.text)
    assert completion.finish_reason == "stop"
