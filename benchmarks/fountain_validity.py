"""How often /dialogue yields valid Fountain with every requested character, on the real model.

    python benchmarks/fountain_validity.py [--prompts 100] [--max-tokens 200] [--attempts 3]
        [--batch 8] [--no-repeat-ngram-size N] [--exemplars 2] [--out benchmarks/RESULTS.md]
        [--chart benchmarks/fountain_validity.png] [--samples benchmarks/fountain_validity_samples.json]
        [--log run.jsonl]   # then, if the run had to be stopped: the same options plus --summarize run.jsonl

Run by hand (needs `writersroom models fetch`; matplotlib for the chart). Each prompt goes
through the same loop as the bot (bot.core.dialogue.generate_scene: prompt with prefill ->
model -> normalize -> validate -> repair -> retry -> copy guard) with SmolLM2-135M-Instruct
loaded in-process by transformers instead of over HTTP. Exemplars come from the bundled
corpus ranked by shared words (the FAISS index would need a 3-minute ingest first).
Prompts run concurrently and their requests are batched, as the backend's scheduler will.
Appends a dated section to RESULTS.md and saves a bar chart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODEL_DIR = Path.home() / ".writersroom" / "models" / "smollm2-135m-instruct"

# 100 requests: situations from many genres, 0-3 requested characters, with and without a tone.
PROMPTS = [
    "a detective corners her former partner in a rainy alley characters: Maya, Cole tone: tense",
    "two sisters argue about selling the family farm characters: June, Rose",
    "a chef confesses to burning the wedding cake characters: Luis, Priya tone: comic",
    "an astronaut talks to mission control as oxygen runs low characters: Dana, Hector tone: quiet dread",
    "a teenager asks his grandfather about the war characters: Sam tone: warm",
    "a landlord tries to evict a stubborn tenant who is a retired magician characters: Greta, Mr. Ives, Pip tone: farce",
    "a nurse and a patient play chess at midnight",
    "two thieves realise they robbed the same bank characters: Vic, Lou tone: comic",
    "a ghost asks a plumber to fix the pipes in an old mansion characters: Edith, Ray tone: whimsical",
    "a coach gives a halftime speech to a losing team in the locker room characters: Coach Burke tone: rousing",
    "a bride gets cold feet in the church vestry characters: Ella, Nora tone: tender",
    "a hacker negotiates with a ransomware gang over video call characters: Kit, Voss tone: tense",
    "a father teaches his daughter to drive on an empty highway characters: Dev, Anya tone: funny",
    "two soldiers share a cigarette in a trench before dawn characters: Tom, Harry tone: grim",
    "a waitress refuses to serve the mayor at a diner characters: Lorna, Mayor Pike",
    "a vampire applies for a night-shift job at a hospital characters: Vlad, Denise tone: deadpan",
    "an old couple plan a bank heist in their kitchen characters: Walt, Bea tone: comic",
    "a new intern discovers the company is a front for smugglers characters: Jess, Mr. Grant",
    "a fisherman finds a message in a bottle on the beach characters: Ike",
    "a queen interrogates a spy in the castle dungeon characters: Queen Maud, Fenn tone: cold",
    "two rival magicians meet backstage before a show characters: Zara, Lev tone: sly",
    "a lighthouse keeper hears a knock during a storm characters: Agnes, Stranger tone: eerie",
    "a teacher catches a student cheating on the final exam characters: Ms. Ortiz, Ben",
    "a robot asks its inventor what love is in the lab characters: Unit Nine, Dr. Hale tone: gentle",
    "a divorced couple meet at their son's school play characters: Mark, Ruth tone: bittersweet",
    "a pizza delivery guy is mistaken for a hitman characters: Gus, Sal tone: farce",
    "a jury foreman argues for acquittal in the jury room characters: Hal, Irene, Otto",
    "an explorer and her guide are lost in the jungle characters: Lucy, Mateo tone: desperate",
    "a comedian bombs on stage and argues with a heckler characters: Rita, Heckler",
    "a priest hears a confession from a famous thief characters: Father Quinn, Jojo tone: tense",
    "two kids build a fort and declare war on the neighbours characters: Milo, Tess tone: playful",
    "a ship's captain decides whether to abandon ship characters: Captain Reyes, Finch tone: urgent",
    "a widow meets her late husband's secret lover at the funeral characters: Clara, Simone",
    "a barber gives unwanted life advice to a customer characters: Sal, Kevin tone: comic",
    "a scientist reveals she cloned her cat characters: Dr. Ames, Paul",
    "an interviewer grills a politician live on air in a TV studio characters: Dana Cruz, Senator Bell tone: sharp",
    "two strangers are stuck in an elevator characters: Omar, Judy tone: awkward",
    "a knight refuses to fight a dragon characters: Sir Alden, Dragon tone: absurd",
    "a mother and son clean out her late father's attic characters: Carol, Jake tone: melancholy",
    "a cop pulls over a car driven by a dog characters: Officer Dunn tone: absurd",
    "a novelist confronts a fan who stole her manuscript characters: Iris, Wendell",
    "two astronauts argue over the last ration on a space station characters: Lee, Ola tone: quiet dread",
    "a wedding planner must calm two feuding families characters: Marco, Aunt Gloria, Uncle Sid tone: farce",
    "a boxer's trainer begs him to throw the fight characters: Rocco, Manny tone: gritty",
    "a little girl interviews a ghost for a school project characters: Poppy, Ghost tone: sweet",
    "an art forger is caught by the museum curator characters: Felix, Dr. Lang",
    "two old friends reunite at a train station after twenty years characters: Ada, Ruth tone: warm",
    "a talk show host realises his guest is his long-lost brother characters: Jim, Carl",
    "a farmer bargains with an alien in a cornfield characters: Earl, Zyx tone: comic",
    "a surgeon has doubts minutes before an operation characters: Dr. Patel, Nurse Kim tone: tense",
    "a bartender talks a customer out of revenge characters: Moe, Danny",
    "a chess prodigy refuses to play her father characters: Lina, Viktor tone: cold",
    "a movie star hides from paparazzi in a laundromat characters: Chase, Dot tone: comic",
    "two monks argue about a broken vow of silence characters: Brother Ansel, Brother Tobin tone: dry",
    "a journalist meets a whistleblower in a parking garage at night characters: Kate, Deep tone: paranoid",
    "a babysitter suspects the baby can talk characters: Molly tone: absurd",
    "a retired general writes his memoirs with a ghostwriter characters: General Shaw, Penny",
    "a couple argue about directions on a road trip characters: Nate, Leah tone: bickering",
    "a hostage negotiator talks to a bank robber on the phone characters: Sgt. Moss, Eddie tone: tense",
    "a prince swaps places with a stable boy characters: Prince Edmund, Hob",
    "two roommates discover they are dating the same person characters: Gina, Val tone: comic",
    "a lawyer cross-examines a lying witness in the courtroom characters: Ms. Fry, Mr. Doyle",
    "a grieving father talks to his son's empty room characters: Frank tone: sad",
    "a game show contestant realises the host is cheating characters: Beth, Chip tone: satirical",
    "a witch sells a cursed potion to a skeptical customer characters: Morgana, Ted",
    "two coworkers are locked in the office overnight characters: Pam, Raj tone: awkward",
    "a con artist sells a fake cure to a desperate mother characters: Doc Wheeler, Martha tone: dark",
    "an ambassador and a translator mistranslate on purpose characters: Ambassador Keel, Lia tone: comic",
    "a runaway teenager calls home from a pay phone characters: Casey, Mom",
    "a submarine crew detects an unknown signal characters: Captain Ross, Ensign Park tone: tense",
    "a tailor measures a man for his own funeral suit characters: Mr. Abel, Mr. Crane tone: dark comic",
    "two sisters run a failing bakery characters: Hannah, Dee",
    "a private eye is hired by the man she is investigating characters: Roz, Mr. Vance tone: noir",
    "a kid sells lemonade to a grumpy neighbour characters: Tim, Mr. Hobbs tone: sweet",
    "a pilot and co-pilot lose an engine over the ocean characters: Captain Ngata, First Officer Bray tone: urgent",
    "a poet and a banker fall for each other in a cafe characters: Jules, Henry tone: romantic",
    "an android bartender refuses to serve a drunk regular characters: Axel, Murph",
    "a mayor announces the town's river has turned to wine characters: Mayor Tuttle, Clerk Bea tone: absurd",
    "a painter argues with her subject about the portrait characters: Vera, Lord Ashby",
    "two firefighters wait out a blaze in a stairwell characters: Diaz, Kowalski tone: grim",
    "a student confesses to breaking the school's trophy case characters: Eli, Principal Ward",
    "a mafia boss teaches his nephew to make sauce characters: Don Vito, Sonny tone: comic",
    "a librarian catches someone sleeping in the library characters: Mrs. Penn, Drifter",
    "a cult leader's daughter tries to leave characters: Eden, Father Abel tone: chilling",
    "two detectives argue over the last donut at the precinct characters: Rizzo, Chen tone: comic",
    "a time traveler warns her younger self characters: Old May, Young May tone: urgent",
    "an estate agent shows a haunted house to a couple characters: Derek, Sue, Alan",
    "a sheriff and an outlaw share a jail cell characters: Sheriff Cobb, Kid Rio tone: wry",
    "two rival chefs are forced to cook together characters: Remy, Paula tone: heated",
    "a young doctor delivers bad news for the first time characters: Dr. Singh, Mrs. Lowe tone: gentle",
    "a dog walker finds a briefcase full of cash in the park characters: Benny tone: comic",
    "a band breaks up in the middle of a gig characters: Lou, Kat, Spike tone: chaotic",
    "a queen and her twin sister trade crowns characters: Queen Isolde, Brenna",
    "a man tries to return a haunted doll to the store characters: Phil, Clerk tone: deadpan",
    "two aging actors rehearse a love scene characters: Marjorie, Desmond tone: wistful",
    "a submarine cook plans a mutiny over the menu characters: Cookie, Lt. Hayes tone: comic",
    "an ex-con asks his parole officer for one favour characters: Dutch, Officer Lane",
    "a shy accountant finally stands up to his boss characters: Gerald, Ms. Thorne tone: triumphant",
    "a rainy bus stop conversation between strangers tone: quiet",
    "a chess club president accuses a member of cheating with an earpiece characters: Doris, Neil tone: petty",
]
assert len(PROMPTS) == 100, len(PROMPTS)


@dataclass
class _Pending:
    messages: list
    sampling: dict
    future: asyncio.Future


class LocalChat:
    """SmolLM2 in-process behind the ChatClient's `complete`, batching concurrent requests.

    Honours `continue_final_message` the way vLLM does: the last assistant message is left
    open and only the continuation comes back. One seed per batch (the first request's).
    """

    def __init__(self, model_dir: Path, *, batch: int, threads: int | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.tokenizer.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
        self.batch = batch
        self.queue: list[_Pending] = []
        self.tokens = 0
        self.generations = 0
        self._lock = threading.Lock()
        self._worker: asyncio.Task | None = None

    async def complete(self, *, model: str, messages: list[dict[str, str]], **sampling):
        future = asyncio.get_running_loop().create_future()
        self.queue.append(_Pending(messages, sampling, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self.queue:
            await asyncio.sleep(0.05)  # let the other prompts' requests arrive
            taken, self.queue = self.queue[: self.batch], self.queue[self.batch:]
            try:
                results = await asyncio.to_thread(self._generate, taken)
            except Exception as exc:  # noqa: BLE001 - hand the failure to every waiter
                for pending in taken:
                    pending.future.set_exception(exc)
                continue
            for pending, result in zip(taken, results):
                pending.future.set_result(result)

    def _encode(self, messages: list[dict[str, str]], cont: bool) -> list[int]:
        encoded = self.tokenizer.apply_chat_template(messages, continue_final_message=cont,
                                                     add_generation_prompt=not cont, tokenize=True)
        return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)

    def _generate(self, taken: list[_Pending]):
        import torch

        from bot.core.llm_client import Completion

        first = taken[0].sampling
        ids = [self._encode(p.messages, bool(p.sampling.get("continue_final_message"))) for p in taken]
        width = max(map(len, ids))
        pad = self.tokenizer.pad_token_id or self.tokenizer.eos_token_id
        inputs = torch.tensor([[pad] * (width - len(x)) + x for x in ids])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
        max_tokens = max(int(p.sampling.get("max_tokens", 200)) for p in taken)
        with self._lock, torch.inference_mode():
            if first.get("seed") is not None:
                torch.manual_seed(int(first["seed"]))
            output = self.model.generate(
                inputs, attention_mask=mask, max_new_tokens=max_tokens, do_sample=True,
                temperature=first.get("temperature", 0.7), top_p=first.get("top_p", 0.9),
                repetition_penalty=first.get("repetition_penalty", 1.0),
                no_repeat_ngram_size=first.get("no_repeat_ngram_size", 0), pad_token_id=pad,
            )
        results = []
        for row in output:
            new = row[width:].tolist()
            ended = self.tokenizer.eos_token_id in new
            if ended:
                new = new[: new.index(self.tokenizer.eos_token_id) + 1]
            self.tokens += len(new)
            self.generations += 1
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            results.append(Completion(text=text, model="smollm2-135m-instruct",
                                      finish_reason="stop" if ended else "length",
                                      prompt_tokens=width, completion_tokens=len(new)))
        return results


class BundledSearch:
    """The bundled corpus ranked by words shared with the query (no embedder, no index)."""

    def __init__(self) -> None:
        from retrieval.bundled import bundled_corpus_dir
        from retrieval.parse import parse_file
        from retrieval.types import SceneHit, SceneRef

        self.hits = []
        for path in sorted(bundled_corpus_dir().rglob("*")):
            if path.suffix.lower() not in (".fountain", ".xml"):
                continue
            try:
                script = parse_file(path)
            except Exception:  # noqa: BLE001 - a file the parsers refuse is just not in this library
                continue
            for scene in script.scenes:
                text = scene.text()
                self.hits.append(SceneHit(script.script_id, script.title, 0.0,
                                          SceneRef(scene.index, scene.heading, text[:300], text),
                                          f"{script.script_id}#{scene.index}", scene.characters))
        self.words = [set(re.findall(r"[a-z]+", hit.scene.text.lower())) for hit in self.hits]

    def search(self, query: str, *, k: int = 5):
        query_words = set(re.findall(r"[a-z]{4,}", query.lower()))
        ranked = sorted(range(len(self.hits)), key=lambda i: -len(query_words & self.words[i]))
        return [self.hits[i] for i in ranked[:k]]


async def run_prompts(chat: LocalChat, searcher: BundledSearch | None, prompts: list[str], *, sampling: dict,
                      exemplars: int, exemplar_chars: int, attempts: int, concurrency: int,
                      log: Path | None = None) -> list[dict]:
    from bot.core.dialogue import generate_scene
    from bot.core.prompting import build_messages, parse_dialogue_request

    gate = asyncio.Semaphore(concurrency)

    async def search(query: str, *, k: int):
        return searcher.search(query, k=k) if searcher else []

    async def one(number: int, prompt: str) -> dict:
        async with gate:
            request = parse_dialogue_request(prompt)
            shown = await search(request.situation, k=exemplars) if exemplars else []
            messages = build_messages(request, shown, exemplar_chars=exemplar_chars)
            started = time.perf_counter()
            result = await generate_scene(chat, model="smollm2-135m-instruct", request=request, messages=messages,
                                          sampling=sampling, exemplars=shown, search=search if searcher else None,
                                          max_attempts=attempts, seed=1000 * number)
            first = result.attempts[0]
            row = {
                "prompt": prompt, "seconds": round(time.perf_counter() - started, 1),
                "attempts": len(result.attempts), "valid_raw_first": first.before_repair.valid,
                "valid_repaired_first": first.report.valid, "valid_final": result.chosen.report.valid,
                "copy_final": bool(result.chosen.copy), "copy_any": any(a.copy for a in result.attempts),
                "problems": list(result.chosen.report.problems), "prefill": result.prefill,
                "raw_first": first.raw, "text": result.text,
            }
            if log:  # one line per finished prompt: a run stopped half way still has its numbers
                with log.open("a") as handle:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            print(f"[{number + 1:3d}] {'ok ' if row['valid_final'] else 'BAD'} attempts={row['attempts']} "
                  f"{row['seconds']:6.1f}s  {prompt[:70]}", flush=True)
            return row

    return list(await asyncio.gather(*(one(n, p) for n, p in enumerate(prompts))))


def share(rows: list[dict], key: str) -> float:
    return 100.0 * sum(1 for row in rows if row[key]) / len(rows)


def save_chart(rows: list[dict], path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart", file=sys.stderr)
        return False
    stages = ["first answer,\nnormalized", "after name\nrepair", "after retries"]
    values = [share(rows, "valid_raw_first"), share(rows, "valid_repaired_first"), share(rows, "valid_final")]
    figure, axis = plt.subplots(figsize=(6, 4))
    bars = axis.bar(stages, values, color=["#b0b0b0", "#7aa6c2", "#2f6f99"])
    axis.axhline(95, color="#c0392b", linestyle="--", linewidth=1, label="target 95%")
    axis.bar_label(bars, labels=[f"{v:.0f}%" for v in values])
    axis.set_ylim(0, 105)
    axis.set_ylabel("valid Fountain with all requested characters (%)")
    axis.set_title(title, fontsize=9)
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return True


def main(argv: list[str] | None = None) -> None:
    from bot.settings import load_settings

    generation = load_settings().generation
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=100, help="How many of the 100 prompts to run, from the first.")
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--attempts", type=int, default=None, help="Generations per prompt (default: MAX_ATTEMPTS).")
    parser.add_argument("--batch", type=int, default=8, help="Requests generated together.")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    parser.add_argument("--temperature", type=float, default=generation.temperature)
    parser.add_argument("--repetition-penalty", type=float, default=generation.repetition_penalty)
    parser.add_argument("--no-repeat-ngram-size", type=int, default=generation.no_repeat_ngram_size)
    parser.add_argument("--exemplars", type=int, default=generation.exemplars)
    parser.add_argument("--exemplar-chars", type=int, default=generation.exemplar_chars)
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    parser.add_argument("--chart", type=Path, default=Path(__file__).with_name("fountain_validity.png"))
    parser.add_argument("--samples", type=Path, default=None, help="Write every prompt's outcome and text as JSON.")
    parser.add_argument("--log", type=Path, default=None, help="Append each prompt's outcome as a JSON line as it ends.")
    parser.add_argument("--summarize", type=Path, default=None,
                        help="Only report the --log of a stopped run (give the run's other options again).")
    parser.add_argument("--wall-s", type=float, default=None, help="With --summarize: how long the run ran.")
    args = parser.parse_args(argv)

    from bot.core.dialogue import MAX_ATTEMPTS

    attempts = args.attempts or MAX_ATTEMPTS
    if args.summarize:
        summarize_log(args, attempts)
        return
    sampling = {"temperature": args.temperature, "top_p": generation.top_p,
                "repetition_penalty": args.repetition_penalty, "no_repeat_ngram_size": args.no_repeat_ngram_size,
                "max_tokens": args.max_tokens}
    started = time.perf_counter()
    chat = LocalChat(args.model_dir, batch=args.batch, threads=args.threads)
    searcher = BundledSearch() if args.exemplars else None
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    rows = asyncio.run(run_prompts(chat, searcher, PROMPTS[: args.prompts], sampling=sampling, exemplars=args.exemplars,
                                   exemplar_chars=args.exemplar_chars, attempts=attempts, concurrency=args.batch,
                                   log=args.log))
    wall_s = time.perf_counter() - started

    timing = (f"{wall_s:.0f} s for {chat.generations} generations, {chat.tokens} tokens "
              f"({chat.tokens / wall_s:.1f} tok/s batched); {wall_s / len(rows):.1f} s per prompt; model load {load_s:.1f} s")
    write_report(rows, args, attempts=attempts, timing=timing)


def write_report(rows: list[dict], args: argparse.Namespace, *, attempts: int, timing: str, note: str = "") -> None:
    """Append the section to RESULTS.md, save the chart and (optionally) the samples."""
    from bot.core.dialogue import CONTINUATION_TRIES

    attempt_counts = [row["attempts"] for row in rows]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, CPU only"
    setup = (f"SmolLM2-135M-Instruct, max_tokens {args.max_tokens}, temperature {args.temperature}, "
             f"repetition_penalty {args.repetition_penalty}, no_repeat_ngram_size {args.no_repeat_ngram_size}, "
             f"{args.exemplars} exemplar(s) from the bundled corpus, up to {attempts} whole scene(s) per prompt, a scene "
             f"whose only flaw is a silent requested character continued with that cue written (up to "
             f"{CONTINUATION_TRIES} tries per character), batch {args.batch}")
    table = [
        ("prompts", f"{len(rows)} ({sum(1 for r in rows if 'characters:' in r['prompt'].lower())} with 1-3 "
                    "requested characters)"),
        ("valid, first answer normalized (before repair)", f"{share(rows, 'valid_raw_first'):.0f}%"),
        ("valid, first answer after name repair", f"{share(rows, 'valid_repaired_first'):.0f}%"),
        (f"valid after continuations and retries (up to {attempts} scenes)", f"{share(rows, 'valid_final'):.0f}%"),
        ("requests per prompt", f"mean {statistics.mean(attempt_counts):.2f}, max {max(attempt_counts)} "
                                f"(continuations and copy-guard regenerations included)"),
        ("copy guard", f"{sum(r['copy_any'] for r in rows)} prompt(s) hit, {sum(r['copy_final'] for r in rows)} "
                       f"still copying at the end"),
        ("time", timing),
    ]
    section = [f"\n## Fountain validity — {stamp} — {machine}\n", setup + "." + (f" {note}" if note else "") + "\n",
               "| measure | result |", "|---|---|"]
    section += [f"| {name} | {value} |" for name, value in table]
    failures = [row for row in rows if not row["valid_final"]]
    if failures:
        section.append("\nStill invalid: " + "; ".join(f"`{row['prompt'][:50]}` ({', '.join(row['problems'])})"
                                                       for row in failures[:8]) + ("; …" if len(failures) > 8 else ""))
    text = "\n".join(section) + "\n"
    print(text)
    if not args.out.exists():
        args.out.write_text("# Benchmark results\n\nEach section: what ran, on which machine, when.\n")
    with args.out.open("a") as handle:
        handle.write(text)
    save_chart(rows, args.chart, f"/dialogue Fountain validity, {len(rows)} prompts ({stamp})")
    if args.samples:
        args.samples.write_text(json.dumps(rows, indent=1, ensure_ascii=False))


def summarize_log(args: argparse.Namespace, attempts: int) -> None:
    """Report a run that was stopped: the longest run of prompts, from the first, that all finished
    (later ones finished out of order, and the quick ones first, which would flatter the numbers)."""
    finished = {}
    for line in args.summarize.read_text().splitlines():
        row = json.loads(line)
        finished[row["prompt"]] = row
    rows = []
    for prompt in PROMPTS:
        if prompt not in finished:
            break
        rows.append(finished[prompt])
    if not rows:
        raise SystemExit("no prompt finished in order; nothing to report")
    note = (f"PARTIAL: stopped by hand; {len(rows)} of {len(PROMPTS)} prompts counted (the first {len(rows)}, "
            f"all finished; {len(finished)} had finished in all).")
    timing = (f"{args.wall_s:.0f} s wall for {len(finished)} finished prompts "
              f"({args.wall_s / len(finished):.0f} s per prompt; 2 shared cores)" if args.wall_s else
              f"mean {statistics.mean(r['seconds'] for r in rows):.0f} s per prompt, {args.batch} at a time")
    write_report(rows, args, attempts=attempts, timing=timing, note=note)


if __name__ == "__main__":
    main()
